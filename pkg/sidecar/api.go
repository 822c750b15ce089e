package sidecar

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/athenz-injector/athenz-injector/pkg/tokens"
)

// MaxBodyBytes bounds the JSON body of a token request.
const MaxBodyBytes = 64 << 10

// Header names of the Athenz protocol and of the proxy's control headers.
const (
	headerPrincipalAuth  = "Athenz-Principal-Auth"
	headerRoleAuth       = "Athenz-Role-Auth"
	headerDomain         = "Athenz-Domain"
	headerRole           = "Athenz-Role"
	headerProxyPrincipal = "Athenz-Proxy-Principal"
)

// roleTokenRequest is the body of POST /roletoken; field names are the
// seed's contract.
type roleTokenRequest struct {
	Domain            string `json:"domain"`
	Role              string `json:"role"`
	ProxyForPrincipal string `json:"proxy_for_principal"`
	MinExpiry         int64  `json:"min_expiry"`
	MaxExpiry         int64  `json:"max_expiry"`
}

// accessTokenRequest is the body of POST /access-token and /accesstoken.
type accessTokenRequest struct {
	Domain            string `json:"domain"`
	Role              string `json:"role"`
	ProxyForPrincipal string `json:"proxy_for_principal"`
	Expiry            int64  `json:"expiry"`
}

// key validates the request and returns its cache key.
func (req roleTokenRequest) key() (tokens.Key, error) {
	minExpiry, err := seconds("min_expiry", req.MinExpiry)
	if err != nil {
		return tokens.Key{}, err
	}
	maxExpiry, err := seconds("max_expiry", req.MaxExpiry)
	if err != nil {
		return tokens.Key{}, err
	}
	return tokens.RoleTokenKey(req.Domain, req.Role, req.ProxyForPrincipal, minExpiry, maxExpiry)
}

// key validates the request and returns its cache key (MaxExpiry is the
// requested expiry).
func (req accessTokenRequest) key() (tokens.Key, error) {
	expiry, err := seconds("expiry", req.Expiry)
	if err != nil {
		return tokens.Key{}, err
	}
	return tokens.AccessTokenKey(req.Domain, req.Role, req.ProxyForPrincipal, expiry)
}

const (
	roleTokenFields   = "domain, role, proxy_for_principal, min_expiry, max_expiry"
	accessTokenFields = "domain, role, proxy_for_principal, expiry"
)

func (h *handler) roleToken(w http.ResponseWriter, r *http.Request) error {
	outcome := outcomeRejected
	defer func() { h.metrics.countToken(tokenRoleToken, outcome) }()
	var key tokens.Key
	var err error
	switch r.Method {
	case http.MethodPost:
		key, err = h.bodyKey(w, r, &h.roleBodies, roleTokenFields, func(data []byte) (tokens.Key, error) {
			var req roleTokenRequest
			if err := decodeJSON(data, &req, roleTokenFields); err != nil {
				return tokens.Key{}, err
			}
			return req.key()
		})
	case http.MethodGet:
		var req roleTokenRequest
		q, qerr := queryParams(r.URL.RawQuery, roleTokenFields)
		if qerr != nil {
			return qerr
		}
		req.Domain, req.Role, req.ProxyForPrincipal = q["domain"], q["role"], q["proxy_for_principal"]
		if req.MinExpiry, err = queryInt(q, "min_expiry"); err != nil {
			return err
		}
		if req.MaxExpiry, err = queryInt(q, "max_expiry"); err != nil {
			return err
		}
		key, err = req.key()
	default:
		return methodNotAllowed(r.Method, "GET, POST")
	}
	if err != nil {
		return err
	}
	tok, outcome, err := h.cache.GetOutcome(r.Context(), key)
	if err != nil {
		return err
	}
	sc := h.getScratch()
	defer h.putScratch(sc)
	out := append(sc.buf.AvailableBuffer(), `{"token":`...)
	out = appendJSONString(out, tok.Value)
	out = append(out, `,"expiryTime":`...)
	out = strconv.AppendInt(out, tok.Expiry.Unix(), 10)
	out = append(out, "}\n"...)
	h.writeToken(w, out)
	return nil
}

func (h *handler) accessToken(w http.ResponseWriter, r *http.Request) error {
	outcome := outcomeRejected
	defer func() { h.metrics.countToken(tokenAccessToken, outcome) }()
	var key tokens.Key
	var err error
	switch r.Method {
	case http.MethodPost:
		key, err = h.bodyKey(w, r, &h.accessBodies, accessTokenFields, func(data []byte) (tokens.Key, error) {
			var req accessTokenRequest
			if err := decodeJSON(data, &req, accessTokenFields); err != nil {
				return tokens.Key{}, err
			}
			return req.key()
		})
	case http.MethodGet:
		var req accessTokenRequest
		q, qerr := queryParams(r.URL.RawQuery, accessTokenFields)
		if qerr != nil {
			return qerr
		}
		req.Domain, req.Role, req.ProxyForPrincipal = q["domain"], q["role"], q["proxy_for_principal"]
		if req.Expiry, err = queryInt(q, "expiry"); err != nil {
			return err
		}
		key, err = req.key()
	default:
		return methodNotAllowed(r.Method, "GET, POST")
	}
	if err != nil {
		return err
	}
	tok, outcome, err := h.cache.GetOutcome(r.Context(), key)
	if err != nil {
		return err
	}
	// expires_in is what is left now, not the lifetime ZTS gave: a cached
	// token has been ageing.
	left := tok.Expiry.Sub(h.clock.Now())
	if expiry := key.MaxExpiry; expiry > 0 && left > expiry {
		left = expiry
	}
	sc := h.getScratch()
	defer h.putScratch(sc)
	out := append(sc.buf.AvailableBuffer(), `{"access_token":`...)
	out = appendJSONString(out, tok.Value)
	out = append(out, `,"token_type":"Bearer","expires_in":`...)
	out = strconv.AppendInt(out, int64(left/time.Second), 10)
	if tok.Scope != "" {
		out = append(out, `,"scope":`...)
		out = appendJSONString(out, tok.Scope)
	}
	out = append(out, "}\n"...)
	h.writeToken(w, out)
	return nil
}

// v1Token is GET /v1/token?domain=&role=, the contract's way for an app to
// ask for a credential: an access token, the modern default; the same
// query as GET /accesstoken.
func (h *handler) v1Token(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		h.metrics.countToken(tokenAccessToken, outcomeRejected)
		return methodNotAllowed(r.Method, "GET")
	}
	return h.accessToken(w, r)
}

func (h *handler) ntoken(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		h.metrics.countToken(tokenNToken, outcomeRejected)
		return methodNotAllowed(r.Method, "GET")
	}
	tok, err := h.ntokenValue()
	if err != nil {
		h.metrics.countToken(tokenNToken, tokens.OutcomeError)
		return err
	}
	h.metrics.countToken(tokenNToken, tokens.OutcomeHit)
	sc := h.getScratch()
	defer h.putScratch(sc)
	out := append(sc.buf.AvailableBuffer(), `{"token":`...)
	out = appendJSONString(out, tok)
	out = append(out, "}\n"...)
	h.writeToken(w, out)
	return nil
}

// ntokenValue returns the identity's N-token: 501 when it has none, 503
// while it has none yet.
func (h *handler) ntokenValue() (string, error) {
	src := h.identity.NTokenSource()
	if src == nil {
		return "", &HTTPError{Code: http.StatusNotImplemented,
			Msg: "this sidecar has no N-token: files mode has no service key, and copper-argos mode gets one from ZTS only with ATHENZ_NTOKEN=true (the default)"}
	}
	tok, _, err := src.Token()
	if err != nil {
		return "", &HTTPError{Code: http.StatusServiceUnavailable, Msg: "no N-token yet: " + err.Error(), Err: err}
	}
	return tok, nil
}

// svccert serves the identity certificate chain as PEM.
func (h *handler) svccert(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return methodNotAllowed(r.Method, "GET, HEAD")
	}
	chain := h.identity.CertificateChainPEM()
	if err := h.identity.CertificateError(); len(chain) == 0 || err != nil {
		return &HTTPError{Code: http.StatusServiceUnavailable, Msg: "no valid identity certificate: " + errString(err)}
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	_, _ = w.Write(chain) // an error here means the client left
	return nil
}

func errString(err error) string {
	if err == nil {
		return "none"
	}
	return err.Error()
}

// writeToken sends a 200 JSON answer that carries a credential.
func (h *handler) writeToken(w http.ResponseWriter, body []byte) {
	hdr := w.Header()
	// Shared, never modified slices: setting a header this way allocates
	// nothing, which matters on the hot path.
	hdr["Content-Type"] = h.hdrJSON
	hdr["Cache-Control"] = h.hdrNoStore
	_, _ = w.Write(body) // an error here means the client left
}

// bodyKey reads a JSON body of at most MaxBodyBytes and returns the cache
// key that parse makes of it, or the one it made of the same bytes before
// (memo). A wrong content type or a body too large, and parse's errors
// (unknown fields, trailing data: decodeJSON), are client mistakes and
// answered 4xx naming the problem.
func (h *handler) bodyKey(w http.ResponseWriter, r *http.Request, memo *bodyMemo, fields string, parse func([]byte) (tokens.Key, error)) (tokens.Key, error) {
	formEncoded, err := checkContentType(r.Header.Get("Content-Type"))
	if err != nil {
		return tokens.Key{}, err
	}
	if r.ContentLength > MaxBodyBytes {
		return tokens.Key{}, tooLarge()
	}
	sc := h.getScratch()
	defer h.putScratch(sc)
	body := r.Body
	if r.ContentLength < 0 {
		// Chunked: nothing bounds the body but this. (With a
		// Content-Length, net/http stops at it, and it was checked above.)
		body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	}
	// The server bounds the headers (ReadHeaderTimeout); a token request's
	// body gets the same time, on the real clock (a connection's deadline).
	// Not a Server.ReadTimeout: that would also bound proxied bodies.
	// (http.ResponseController would cost an allocation per request.)
	// (net/http lifts the deadline once the body is read to its end, when
	// it starts reading in the background for a client that goes away.)
	if d, ok := w.(interface{ SetReadDeadline(time.Time) error }); ok {
		_ = d.SetReadDeadline(time.Now().Add(h.timeouts.read))
	}
	if _, err := sc.buf.ReadFrom(body); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return tokens.Key{}, tooLarge()
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return tokens.Key{}, &HTTPError{Code: http.StatusRequestTimeout, Msg: fmt.Sprintf("request body not received within ATHENZ_READ_TIMEOUT (%v)", h.timeouts.read), Err: err}
		}
		return tokens.Key{}, &HTTPError{Code: http.StatusBadRequest, Msg: "reading request body failed", Err: err}
	}
	data := bytes.TrimSpace(sc.buf.Bytes())
	if len(data) == 0 {
		return tokens.Key{}, httpErrorf(http.StatusBadRequest, `empty request body: send a JSON object with %s, e.g. {"domain":"sports","role":"reader"}`, fields)
	}
	if formEncoded && data[0] != '{' {
		return tokens.Key{}, httpErrorf(http.StatusUnsupportedMediaType,
			"Content-Type application/x-www-form-urlencoded with a form body: send JSON with Content-Type: application/json, or use the GET query form")
	}
	if key, ok := memo.get(data); ok {
		return key, nil
	}
	key, err := parse(data)
	if err == nil {
		memo.put(data, key)
	}
	return key, err
}

// decodeJSON decodes one JSON object into dst. Unknown fields and data
// after the object are errors naming the problem.
func decodeJSON(data []byte, dst any, fields string) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonError(err, fields)
	}
	if dec.More() {
		return httpErrorf(http.StatusBadRequest, "malformed JSON: data after the object")
	}
	return nil
}

// Bounds of a bodyMemo: apps ask for a handful of tokens, again and again.
const (
	memoMaxBodies = 256
	memoMaxBody   = 512 // bytes
)

// bodyMemo remembers the cache keys made of request bodies seen before,
// so that a request with the same bytes as an earlier one is answered
// without decoding its JSON and checking its names again: about a
// kilobyte of garbage and a sixth of the sidecar's own CPU time per
// request (docs/design/2026-12-02-sidecar-p99-tail.md). Only bodies that
// parsed are kept, at most memoMaxBodies of at most memoMaxBody bytes,
// for the sidecar's life: a client sending other bodies only misses the
// memo.
type bodyMemo struct {
	mu   sync.RWMutex
	keys map[string]tokens.Key
}

func (m *bodyMemo) get(data []byte) (tokens.Key, bool) {
	m.mu.RLock()
	k, ok := m.keys[string(data)] // no allocation: a map index
	m.mu.RUnlock()
	return k, ok
}

func (m *bodyMemo) put(data []byte, k tokens.Key) {
	if len(data) > memoMaxBody {
		return
	}
	m.mu.Lock()
	if m.keys == nil {
		m.keys = make(map[string]tokens.Key)
	}
	if len(m.keys) < memoMaxBodies {
		m.keys[string(data)] = k
	}
	m.mu.Unlock()
}

func tooLarge() error {
	return httpErrorf(http.StatusRequestEntityTooLarge, "request body larger than %d bytes (64 KiB)", MaxBodyBytes)
}

// checkContentType accepts application/json and no content type. It also
// accepts application/x-www-form-urlencoded, which `curl -d` sends, when
// the body is JSON (the caller checks); it reports that case.
func checkContentType(ct string) (formEncoded bool, err error) {
	if ct == "" {
		return false, nil
	}
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.TrimSpace(mt)
	switch {
	case strings.EqualFold(mt, "application/json"):
		return false, nil
	case strings.EqualFold(mt, "application/x-www-form-urlencoded"):
		return true, nil
	}
	return false, httpErrorf(http.StatusUnsupportedMediaType, "Content-Type %q: want application/json", truncate(ct))
}

// jsonError turns a decoding error into a 400 naming the problem.
func jsonError(err error, fields string) error {
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return &HTTPError{Code: http.StatusBadRequest, Msg: fmt.Sprintf("malformed JSON at byte %d: %v", se.Offset, se), Err: err}
	}
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		if te.Field == "" {
			return &HTTPError{Code: http.StatusBadRequest, Msg: fmt.Sprintf("request body is a JSON %s: want an object with %s", te.Value, fields), Err: err}
		}
		want := "a string"
		if te.Type != nil && te.Type.Kind() == reflect.Int64 {
			want = "a whole number of seconds"
		}
		return &HTTPError{Code: http.StatusBadRequest, Msg: fmt.Sprintf("invalid %s: want %s, got %s", te.Field, want, te.Value), Err: err}
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return &HTTPError{Code: http.StatusBadRequest, Msg: "malformed JSON: unexpected end of the body", Err: err}
	}
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return &HTTPError{Code: http.StatusBadRequest, Msg: fmt.Sprintf("unknown field %s: the fields are %s", name, fields), Err: err}
	}
	return &HTTPError{Code: http.StatusBadRequest, Msg: "malformed JSON: " + strings.TrimPrefix(msg, "json: "), Err: err}
}

// queryParams parses the query of a GET token request. Unknown and repeated
// parameters are errors, as unknown JSON fields are.
func queryParams(raw string, fields string) (map[string]string, error) {
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return nil, httpErrorf(http.StatusBadRequest, "malformed query: %v", err)
	}
	out := make(map[string]string, len(vals))
	known := strings.Split(fields, ", ")
	for k, v := range vals {
		if !slices.Contains(known, k) {
			return nil, httpErrorf(http.StatusBadRequest, "unknown query parameter %q: the parameters are %s", truncate(k), fields)
		}
		if len(v) > 1 {
			return nil, httpErrorf(http.StatusBadRequest, "query parameter %q given %d times (roles go in one comma-separated list)", k, len(v))
		}
		out[k] = v[0]
	}
	return out, nil
}

func queryInt(q map[string]string, name string) (int64, error) {
	v, ok := q[name]
	if !ok || v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, &tokens.FieldError{Field: name, Err: fmt.Errorf("%q is not a whole number of seconds", truncate(v))}
	}
	return n, nil
}

// seconds converts a request's seconds to a Duration, refusing values that
// would overflow (tokens checks the 30-day maximum of the rest).
func seconds(field string, s int64) (time.Duration, error) {
	const maxSeconds = int64(tokens.MaxTokenLifetime / time.Second)
	if s > maxSeconds {
		return 0, &tokens.FieldError{Field: field, Err: fmt.Errorf("%d s is more than the 30-day maximum", s)}
	}
	if s < 0 {
		return 0, &tokens.FieldError{Field: field, Err: errors.New("must not be negative")}
	}
	return time.Duration(s) * time.Second, nil
}

// appendJSONString appends s as a JSON string. Tokens are ASCII, but the
// function escapes whatever it gets.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' && c < 0x7f {
			continue
		}
		if c >= 0x80 { // UTF-8 passes through
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
