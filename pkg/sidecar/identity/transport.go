package identity

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/AthenZ/athenz/clients/go/zts"
	"github.com/ardielle/ardielle-go/rdl"

	"github.com/athenz-injector/athenz-injector/pkg/tokens"
)

// NTokenSource gives out N-tokens. It is an alias of an unnamed interface
// so that a method returning it has the same signature as one returning
// any other alias of that interface (pkg/sidecar's NTokenSource).
type NTokenSource = interface {
	// Token returns a valid N-token and its expiry.
	Token() (string, time.Time, error)
}

// headerPrincipalAuth carries an N-token.
const headerPrincipalAuth = "Athenz-Principal-Auth"

// newBaseTransport returns a transport for ZTS that trusts roots (nil: the
// system roots) and presents, at every TLS handshake, the certificate that
// clientCert returns.
func newBaseTransport(roots *x509.CertPool, clientCert func(*tls.CertificateRequestInfo) (*tls.Certificate, error), timeout time.Duration) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{
		RootCAs:              roots,
		MinVersion:           tls.VersionTLS12,
		GetClientCertificate: clientCert,
	}
	t.TLSHandshakeTimeout = timeout
	t.MaxIdleConnsPerHost = 16
	return t
}

// ntokenTransport adds an N-token to every request.
type ntokenTransport struct {
	base http.RoundTripper
	src  NTokenSource
}

func (t ntokenTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	tok, _, err := t.src.Token()
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, fmt.Errorf("signing n-token: %w", err)
	}
	out := req.Clone(req.Context()) // a RoundTripper must not change the caller's request
	out.Header.Set(headerPrincipalAuth, tok)
	return t.base.RoundTrip(out)
}

// ctxTransport attaches a context to every request of an Athenz client,
// which takes none of its own.
type ctxTransport struct {
	ctx  context.Context
	base http.RoundTripper
}

func (t ctxTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return t.base.RoundTrip(req.WithContext(t.ctx))
}

// ztsClient returns an Athenz client whose calls carry ctx and time out
// after timeout.
func ztsClient(ctx context.Context, base string, rt http.RoundTripper, timeout time.Duration) (zts.ZTSClient, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	zc := zts.NewClient(base, ctxTransport{ctx: ctx, base: rt})
	zc.DisableRedirect = true
	return zc, cancel
}

// convertError turns the Athenz client's errors into *tokens.ZTSError (an
// answer from ZTS, its message kept and shortened) or errors wrapping
// tokens.ErrZTSTimeout or tokens.ErrZTSUnavailable.
func convertError(ctx context.Context, err error) error {
	var re rdl.ResourceError
	if errors.As(err, &re) {
		return &tokens.ZTSError{Status: re.Code, Message: shortMessage(re.Message)}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %v", tokens.ErrZTSTimeout, err)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%w: %v", tokens.ErrZTSTimeout, err)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = fmt.Errorf("%s %s: %w", ue.Op, ue.URL, ue.Err)
	}
	return fmt.Errorf("%w: %w", tokens.ErrZTSUnavailable, err)
}

// permanent reports whether err is an answer from ZTS that trying again
// will not change by itself: a 4xx other than 408 and 429.
func permanent(err error) bool {
	var ze *tokens.ZTSError
	return errors.As(err, &ze) && ze.Status >= 400 && ze.Status < 500 &&
		ze.Status != http.StatusRequestTimeout && ze.Status != http.StatusTooManyRequests
}

// shortMessage bounds a ZTS message (the client puts a non-JSON error body
// there as it is).
func shortMessage(s string) string {
	const limit = 300
	if len(s) > limit {
		return s[:limit] + "..."
	}
	return s
}

// ztsNToken is the N-token ZTS returned with the certificate.
type ztsNToken struct {
	value  string
	expiry time.Time
}

// ztsNTokenSource serves the latest N-token from ZTS while it is valid.
type ztsNTokenSource struct {
	current *atomic.Pointer[ztsNToken]
	clock   tokens.Clock
}

func (s ztsNTokenSource) Token() (string, time.Time, error) {
	t := s.current.Load()
	switch {
	case t == nil:
		return "", time.Time{}, errors.New("no n-token from ZTS yet")
	case !s.clock.Now().Before(t.expiry):
		return "", time.Time{}, fmt.Errorf("the n-token from ZTS expired at %s and was not renewed", t.expiry.UTC().Format(time.RFC3339))
	}
	return t.value, t.expiry, nil
}
