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

// rotatingTransport carries the calls of Transport() on a connection pool
// of the current certificate. A TLS connection presents the client
// certificate of its handshake for as long as it lives, and closing the
// idle connections at a rotation misses the busy ones, which go back to
// the pool when their answer is read and are reused with the old
// certificate (until it expires, and ZTS refuses them). So each rotation
// starts a new pool; the old one gets no new requests, and its
// connections are closed now if idle and once their requests had time to
// end.
type rotatingTransport struct {
	cur   atomic.Pointer[http.Transport]
	new   func() *http.Transport
	drain time.Duration // how long a request may take: ATHENZ_ZTS_TIMEOUT
}

func newRotatingTransport(newTransport func() *http.Transport, drain time.Duration) *rotatingTransport {
	r := &rotatingTransport{new: newTransport, drain: drain}
	r.cur.Store(newTransport())
	return r
}

func (r *rotatingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return r.cur.Load().RoundTrip(req)
}

// rotate moves new requests to a new connection pool.
func (r *rotatingTransport) rotate() {
	old := r.cur.Swap(r.new())
	old.CloseIdleConnections()
	// Real time, not the Manager's clock: it is about connections.
	time.AfterFunc(r.drain+time.Second, old.CloseIdleConnections)
}

// CloseIdleConnections closes the idle connections of the current pool.
func (r *rotatingTransport) CloseIdleConnections() { r.cur.Load().CloseIdleConnections() }

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

// certRefused reports whether err is ZTS refusing a certificate: a 4xx
// answer other than 401 (the credentials were not accepted), 408 and 429
// (which pass).
func certRefused(err error) bool {
	var ze *tokens.ZTSError
	return permanent(err) && errors.As(err, &ze) && ze.Status != http.StatusUnauthorized
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
	value string
	// expiry is on the node's clock: ZTS's lifetime for it (e= less t=)
	// from when it was asked for.
	expiry time.Time
	// renewAt is when to ask for the next one.
	renewAt time.Time
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
