package sidecar

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/go-logr/logr"

	"github.com/athenz-injector/athenz-injector/pkg/tokens"
)

// HTTPError is an answer other than success: the status and the message the
// client sees, kept apart from the cause that is logged.
type HTTPError struct {
	Code int
	// Msg is what the client reads in {"code","message"}.
	Msg string
	// Err is the cause, for the log only; may be nil.
	Err error
	// Allow is the Allow header of a 405.
	Allow string
}

func (e *HTTPError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%d %s: %v", e.Code, e.Msg, e.Err)
	}
	return fmt.Sprintf("%d %s", e.Code, e.Msg)
}

func (e *HTTPError) Unwrap() error { return e.Err }

func httpErrorf(code int, format string, args ...any) *HTTPError {
	return &HTTPError{Code: code, Msg: fmt.Sprintf(format, args...)}
}

func methodNotAllowed(method, allow string) *HTTPError {
	return &HTTPError{Code: http.StatusMethodNotAllowed, Msg: fmt.Sprintf("method %s not allowed; use %s", method, allow), Allow: allow}
}

// toHTTPError maps an error to what the client is told:
//   - *HTTPError as it is;
//   - *tokens.FieldError (a bad request field): 400 naming the field;
//   - *tokens.ZTSError: a 4xx from ZTS passes on with ZTS's message, a 5xx
//     becomes 502;
//   - tokens.ErrZTSTimeout: 504; tokens.ErrZTSUnavailable and
//     tokens.ErrTokenExpired: 502;
//   - tokens.ErrCacheClosed (shutting down): 503;
//   - anything else is our fault: 500 without details.
func toHTTPError(err error) *HTTPError {
	var he *HTTPError
	if errors.As(err, &he) {
		return he
	}
	var fe *tokens.FieldError
	if errors.As(err, &fe) {
		return &HTTPError{Code: http.StatusBadRequest, Msg: fe.Error(), Err: err}
	}
	var ze *tokens.ZTSError
	if errors.As(err, &ze) {
		if ze.Status >= 400 && ze.Status < 500 {
			msg := ze.Message
			if msg == "" {
				msg = http.StatusText(ze.Status)
			}
			return &HTTPError{Code: ze.Status, Msg: "zts: " + msg, Err: err}
		}
		return &HTTPError{Code: http.StatusBadGateway, Msg: fmt.Sprintf("zts answered %d: %s", ze.Status, ze.Message), Err: err}
	}
	switch {
	case errors.Is(err, tokens.ErrZTSTimeout):
		return &HTTPError{Code: http.StatusGatewayTimeout, Msg: err.Error(), Err: err}
	case errors.Is(err, tokens.ErrZTSUnavailable):
		msg := err.Error()
		if untrustedZTS(err) {
			msg += "; TLS: ZTS's certificate is not trusted: ATHENZ_ZTS_CA_FILE must hold the CA that signed it, for the host of ATHENZ_ZTS_URL"
		}
		return &HTTPError{Code: http.StatusBadGateway, Msg: msg, Err: err}
	case errors.Is(err, tokens.ErrTokenExpired):
		// A bad answer from ZTS: a token that expired before it could be
		// used (by the node's clock, ZTS's issue time unknown).
		return &HTTPError{Code: http.StatusBadGateway, Msg: err.Error(), Err: err}
	case errors.Is(err, tokens.ErrCacheClosed):
		return &HTTPError{Code: http.StatusServiceUnavailable, Msg: "sidecar is shutting down"}
	case errors.Is(err, context.DeadlineExceeded):
		return &HTTPError{Code: http.StatusGatewayTimeout, Msg: "timed out waiting for zts", Err: err}
	case errors.Is(err, context.Canceled):
		// The client went away; nobody reads this.
		return &HTTPError{Code: 499, Msg: "request canceled", Err: err}
	}
	return &HTTPError{Code: http.StatusInternalServerError, Msg: "internal error", Err: err}
}

// untrustedZTS reports whether err is a failure to verify ZTS's server
// certificate: most likely the wrong ATHENZ_ZTS_CA_FILE.
func untrustedZTS(err error) bool {
	var (
		verify    *tls.CertificateVerificationError
		unknownCA x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
	)
	return errors.As(err, &verify) || errors.As(err, &unknownCA) || errors.As(err, &hostname) || errors.As(err, &invalid)
}

// writeError answers err as {"code","message"} and logs it: a 5xx with a
// cause (our fault, ZTS or an upstream failing) as an error, everything
// else (client mistakes, not-ready answers) at V(1).
func writeError(w http.ResponseWriter, r *http.Request, log logr.Logger, err error) {
	he := toHTTPError(err)
	switch {
	case he.Code >= 500 && he.Err != nil:
		log.Error(he.Err, "request failed", "method", r.Method, "path", logPath(r), "code", he.Code)
	case log.V(1).Enabled():
		log.V(1).Info("request refused", "method", r.Method, "path", logPath(r), "code", he.Code, "reason", he.Msg)
	}
	if he.Allow != "" {
		w.Header().Set("Allow", he.Allow)
	}
	writeErrorBody(w, he.Code, he.Msg)
}

func writeErrorBody(w http.ResponseWriter, code int, msg string) {
	body, err := json.Marshal(struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}{code, msg})
	if err != nil { // cannot happen for an int and a string
		body = []byte(`{"code":` + strconv.Itoa(code) + `,"message":"error"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Del("Content-Length")
	w.WriteHeader(code)
	_, _ = w.Write(append(body, '\n'))
}

// logPath is the request path without the query (which may name
// principals); for proxied requests only the upstream's scheme and host
// (the upstream's paths are none of our business and may hold secrets).
func logPath(r *http.Request) string {
	if r.URL.IsAbs() {
		return r.URL.Scheme + "://" + r.URL.Host
	}
	return r.URL.Path
}
