package ztsfake

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/athenz-injector/athenz-injector/pkg/tokens"
)

// Defaults of Options.
const (
	// DefaultAddr is the default of Options.Addr: a free loopback port.
	DefaultAddr = "127.0.0.1:0"
	// DefaultCertLifetime is the default of Options.CertLifetime.
	DefaultCertLifetime = time.Hour
	// DefaultRoleTokenLifetime is the default of Options.RoleTokenDefault,
	// as ZTS (7200 s).
	DefaultRoleTokenLifetime = 2 * time.Hour
	// DefaultAccessTokenLifetime is the default of Options.AccessTokenDefault.
	DefaultAccessTokenLifetime = time.Hour
	// DefaultMaxTokenLifetime is the default of Options.MaxTokenLifetime,
	// as ZTS (30 days).
	DefaultMaxTokenLifetime = 30 * 24 * time.Hour
	// DefaultNTokenLifetime is the default of Options.NTokenLifetime, as
	// ZTS's athenz.zts.instance_token_timeout (86400 s).
	DefaultNTokenLifetime = 24 * time.Hour
)

// apiPrefix is the path of the ZTS API under the server's root.
const apiPrefix = "/zts/v1"

// maxBodyBytes bounds request bodies; ZTS requests are small.
const maxBodyBytes = 1 << 20

// Options configure a fake ZTS. The zero value works: RSA signing key, only
// Grant()ed roles, 1 h certificates, 2 h role tokens, 1 h access tokens.
type Options struct {
	// Addr is the address to listen on. Default "127.0.0.1:0" (a free
	// loopback port). Tests must stay on loopback.
	Addr string
	// AllowAll grants every authenticated principal every role in every
	// domain, and every domain exists (dev mode). Default false: only roles
	// given with Grant, in domains made by AddDomain or Grant.
	AllowAll bool
	// KeyType is the type of the key that signs role tokens, access tokens
	// and the N-tokens the fake issues: "rsa" (default; RS256, RSA PKCS#1
	// v1.5 with SHA-256) or "ec" (ES256, ECDSA P-256 with SHA-256).
	KeyType string
	// CertLifetime is the default and the maximum lifetime of issued
	// certificates (instance, key-refresh, role and IssueIdentity
	// certificates). Default 1 h.
	CertLifetime time.Duration
	// RoleTokenDefault is the role token lifetime when the request sets
	// neither maxExpiryTime nor a minExpiryTime above it. Default 2 h.
	RoleTokenDefault time.Duration
	// AccessTokenDefault is the access token lifetime when the request has
	// no expires_in. Default 1 h.
	AccessTokenDefault time.Duration
	// MaxTokenLifetime caps role and access token lifetimes. Default 30
	// days, as ZTS.
	MaxTokenLifetime time.Duration
	// NTokenLifetime is the lifetime of the N-token that instance register
	// and refresh return with the certificate ("token": true), whatever
	// the certificate's lifetime. Default 24 h, as ZTS's
	// athenz.zts.instance_token_timeout.
	NTokenLifetime time.Duration
	// Now is the clock for token times, certificate validity and N-token
	// and client certificate checks. Default time.Now. SetClockOffset
	// moves ZTS's clock away from it.
	Now func() time.Time
	// Attest, if set, is called on instance register and refresh with the
	// InstanceConfirmation ZTS would send to the provider service; an error
	// refuses the request (403 with the error's text). The returned
	// attributes may set "certExpiryTime" (minutes, caps the certificate
	// lifetime) and "certRefresh" ("false" refuses later refreshes), as a
	// provider's may. Default: accept a register with non-empty
	// attestationData, and every refresh.
	Attest func(ctx context.Context, c InstanceConfirmation) (map[string]string, error)
	// HTTP2 lets clients speak HTTP/2. ZTS's Jetty speaks HTTP/1.1 only
	// (docs/zts-api-facts.md); a proxy in front of it may not. Default
	// false.
	HTTP2 bool
	// NoKeepAlive closes every connection after its answer: each call is
	// a new TLS handshake, as for a sidecar whose calls to ZTS come
	// minutes apart (its transport closes connections idle for 90 s). A
	// fleet of thousands of clients in one process (test/load/fleet) then
	// holds no idle connection, and no file descriptor, per client.
	// Default false.
	NoKeepAlive bool
	// K8SProvider, if set, makes the fake act as ZTS's built-in Kubernetes
	// provider for register and refresh requests of K8SProvider.Provider
	// (JSON attestation data {"identityToken":...}, refresh refused); see
	// K8SProvider. Attest is not asked for those requests. Default nil.
	K8SProvider *K8SProvider
}

// TB is the part of testing.TB that NewTest uses.
type TB interface {
	Helper()
	Cleanup(func())
	Fatalf(format string, args ...any)
}

// Server is a running fake ZTS. All methods are safe for concurrent use.
type Server struct {
	opts    Options
	ts      *httptest.Server
	url     string
	ca      *authority
	key     *signingKey
	knobs   *knobs
	conns   *gateListener // RefuseConnections
	closing chan struct{}
	once    sync.Once

	// clockOffset is added to Options.Now (SetClockOffset), in nanoseconds.
	clockOffset atomic.Int64
	// refreshIPs restricts certificate-authenticated key refresh
	// (RestrictCertRefresh); nil: no restriction.
	refreshIPs atomic.Pointer[[]netip.Prefix]

	// mu guards the Athenz data below.
	mu          sync.Mutex
	domains     map[string]map[string]map[string]bool // domain -> role -> member
	proxyUsers  map[string]bool
	serviceKeys map[serviceKeyRef]*publicKey
	instances   map[instanceRef]*instanceRecord
}

// Start starts a fake ZTS with TLS on opts.Addr. The server certificate is
// valid for 127.0.0.1, ::1 and localhost (and the host of Addr), signed by
// the fake's CA (CACertPEM). Client certificates are requested and, when
// given, verified against that CA. Close stops it.
func Start(opts Options) (*Server, error) {
	opts, err := withDefaults(opts)
	if err != nil {
		return nil, err
	}
	now := opts.Now()
	ca, err := newAuthority(now)
	if err != nil {
		return nil, fmt.Errorf("creating CA: %w", err)
	}
	key, err := newSigningKey(opts.KeyType)
	if err != nil {
		return nil, fmt.Errorf("creating signing key: %w", err)
	}
	s := &Server{
		opts:        opts,
		ca:          ca,
		key:         key,
		knobs:       newKnobs(),
		closing:     make(chan struct{}),
		domains:     map[string]map[string]map[string]bool{},
		proxyUsers:  map[string]bool{},
		serviceKeys: map[serviceKeyRef]*publicKey{},
		instances:   map[instanceRef]*instanceRecord{},
	}

	ts := httptest.NewUnstartedServer(s.routes())
	if opts.Addr != DefaultAddr {
		l, err := net.Listen("tcp", opts.Addr)
		if err != nil {
			ts.Close()
			return nil, fmt.Errorf("listening on %s: %w", opts.Addr, err)
		}
		ts.Listener.Close()
		ts.Listener = l
	}
	hosts := []string{"127.0.0.1", "::1", "localhost"}
	if h, _, err := net.SplitHostPort(opts.Addr); err == nil && h != "" {
		hosts = append(hosts, h)
	}
	serverCert, err := ca.serverCert(hosts)
	if err != nil {
		ts.Close()
		return nil, fmt.Errorf("creating server certificate: %w", err)
	}
	ts.TLS = &tls.Config{
		Certificates: []tls.Certificate{serverCert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    ca.pool,
		Time:         s.now,
		MinVersion:   tls.VersionTLS12,
	}
	ts.EnableHTTP2 = opts.HTTP2
	ts.Config.SetKeepAlivesEnabled(!opts.NoKeepAlive)
	s.conns = newGateListener(ts.Listener)
	ts.Listener = s.conns
	s.url = "https://" + ts.Listener.Addr().String() + apiPrefix
	s.ts = ts
	ts.StartTLS()
	return s, nil
}

// NewTest starts a fake ZTS for a test, fails the test if it cannot, and
// closes it in t.Cleanup.
func NewTest(t TB, opts Options) *Server {
	t.Helper()
	s, err := Start(opts)
	if err != nil {
		t.Fatalf("starting fake ZTS: %v", err)
		return nil
	}
	t.Cleanup(s.Close)
	return s
}

func withDefaults(o Options) (Options, error) {
	if o.Addr == "" {
		o.Addr = DefaultAddr
	}
	switch strings.ToLower(o.KeyType) {
	case "", "rsa":
		o.KeyType = "rsa"
	case "ec":
		o.KeyType = "ec"
	default:
		return o, fmt.Errorf("KeyType %q: want \"rsa\" or \"ec\"", o.KeyType)
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"CertLifetime", &o.CertLifetime, DefaultCertLifetime},
		{"RoleTokenDefault", &o.RoleTokenDefault, DefaultRoleTokenLifetime},
		{"AccessTokenDefault", &o.AccessTokenDefault, DefaultAccessTokenLifetime},
		{"MaxTokenLifetime", &o.MaxTokenLifetime, DefaultMaxTokenLifetime},
		{"NTokenLifetime", &o.NTokenLifetime, DefaultNTokenLifetime},
	} {
		if *d.v < 0 {
			return o, fmt.Errorf("%s %v: must not be negative", d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if p := o.K8SProvider; p != nil && p.Provider != "" {
		if err := tokens.ValidateCompoundName(p.Provider); err != nil {
			return o, fmt.Errorf("K8SProvider.Provider: %w", err)
		}
	}
	return o, nil
}

// URL returns the base URL of the ZTS API, "https://127.0.0.1:<port>/zts/v1",
// as zts.NewClient expects it.
func (s *Server) URL() string { return s.url }

// CACertPEM returns the PEM of the CA that signs the server certificate and
// every certificate the fake issues.
func (s *Server) CACertPEM() []byte { return append([]byte(nil), s.ca.certPEM...) }

// CAPool returns a pool holding only the fake's CA.
func (s *Server) CAPool() *x509.CertPool { return s.ca.pool.Clone() }

// Close stops the server. Hanging and delayed requests end at once; Close
// waits for the handlers to return. It is safe to call more than once.
func (s *Server) Close() {
	s.once.Do(func() {
		close(s.closing)
		s.ts.Close()
	})
}

// now is ZTS's clock: Options.Now moved by SetClockOffset.
func (s *Server) now() time.Time {
	return s.opts.Now().Add(time.Duration(s.clockOffset.Load()))
}

// SetClockOffset sets ZTS's clock to Options.Now plus d: positive, ZTS's
// clock is ahead of the caller's; negative, behind. Everything the fake
// dates (token issue and expiry times, certificate validity, N-token and
// client certificate checks) follows ZTS's clock, as on a real ZTS whose
// clock disagrees with the node's. Default 0.
func (s *Server) SetClockOffset(d time.Duration) { s.clockOffset.Store(int64(d)) }

// handlerFunc serves one endpoint after the knobs; body is the request
// body, already read. An error is answered as {"code","message"}.
type handlerFunc func(w http.ResponseWriter, r *http.Request, body []byte) error

// keyFunc computes the CallsFor key of a request.
type keyFunc func(r *http.Request, body []byte) string

type methodRoute struct {
	ep     Endpoint
	key    keyFunc
	handle handlerFunc
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	handle := func(pattern string, methods map[string]methodRoute) {
		mux.Handle(apiPrefix+pattern, s.dispatch(methods))
	}
	noKey := func(*http.Request, []byte) string { return "" }
	handle("/domain/{domain}/token", map[string]methodRoute{
		http.MethodGet: {EndpointRoleToken, roleTokenKey, s.handleRoleToken},
	})
	handle("/oauth2/token", map[string]methodRoute{
		http.MethodPost: {EndpointAccessToken, accessTokenKey, s.handleAccessToken},
	})
	handle("/oauth2/keys", map[string]methodRoute{
		http.MethodGet: {EndpointJWKS, noKey, s.handleJWKS},
	})
	handle("/domain/{domain}/service/{service}/publickey/{keyId}", map[string]methodRoute{
		http.MethodGet: {EndpointPublicKey, publicKeyKey, s.handlePublicKey},
	})
	handle("/instance", map[string]methodRoute{
		http.MethodPost: {EndpointInstanceRegister, registerKey, s.handleRegister},
	})
	handle("/instance/{provider}/{domain}/{service}/{instanceId}", map[string]methodRoute{
		http.MethodPost:   {EndpointInstanceRefresh, pathServiceKey, s.handleRefresh},
		http.MethodDelete: {EndpointInstanceDelete, pathServiceKey, s.handleDelete},
	})
	handle("/instance/{domain}/{service}/refresh", map[string]methodRoute{
		http.MethodPost: {EndpointKeyRefresh, pathServiceKey, s.handleKeyRefresh},
	})
	handle("/rolecert", map[string]methodRoute{
		http.MethodPost: {EndpointRoleCert, roleCertKey, s.handleRoleCert},
	})
	handle("/status", map[string]methodRoute{
		http.MethodGet: {EndpointStatus, noKey, s.handleStatus},
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &apiError{status: http.StatusNotFound,
			msg: fmt.Sprintf("ztsfake: no ZTS endpoint %s %s", r.Method, r.URL.Path)})
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Real ZTS sends no Date header (Jetty's is off unless
		// athenz.http_send_date_header=true), so a client cannot read
		// ZTS's clock from it; nil suppresses net/http's.
		w.Header()["Date"] = nil
		mux.ServeHTTP(w, r)
	})
}

// dispatch picks the route of the request method, reads the body, counts
// the call, applies the knobs and runs the handler.
func (s *Server) dispatch(methods map[string]methodRoute) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rt, ok := methods[r.Method]
		if !ok {
			allow := make([]string, 0, len(methods))
			for m := range methods {
				allow = append(allow, m)
			}
			slices.Sort(allow)
			w.Header().Set("Allow", strings.Join(allow, ", "))
			writeError(w, &apiError{status: http.StatusMethodNotAllowed,
				msg: fmt.Sprintf("method %s not allowed on %s", r.Method, r.URL.Path)})
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
		if err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				writeError(w, &apiError{status: http.StatusRequestEntityTooLarge,
					msg: fmt.Sprintf("request body larger than %d bytes", maxBodyBytes)})
				return
			}
			writeError(w, badRequest("reading request body: %v", err))
			return
		}
		s.knobs.record(rt.ep, rt.key(r, body))
		if s.applyKnobs(w, r, rt.ep) {
			return
		}
		if err := rt.handle(w, r, body); err != nil {
			writeError(w, err)
		}
	})
}

func (s *Server) handleStatus(w http.ResponseWriter, _ *http.Request, _ []byte) error {
	writeJSON(w, http.StatusOK, map[string]any{"code": http.StatusOK, "message": "OK"})
	return nil
}

// apiError is an error answered with its status and message.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &apiError{status: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

func unauthorized(format string, args ...any) error {
	return &apiError{status: http.StatusUnauthorized, msg: fmt.Sprintf(format, args...)}
}

func forbidden(format string, args ...any) error {
	return &apiError{status: http.StatusForbidden, msg: fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) error {
	return &apiError{status: http.StatusNotFound, msg: fmt.Sprintf(format, args...)}
}

// writeError answers err as ZTS does: {"code":<status>,"message":"..."}
// with that status. Errors that are not *apiError are 500s.
func writeError(w http.ResponseWriter, err error) {
	status, msg := http.StatusInternalServerError, err.Error()
	var ae *apiError
	if errors.As(err, &ae) {
		status, msg = ae.status, ae.msg
	}
	if status < 100 || status > 999 {
		status = http.StatusInternalServerError
	}
	writeJSON(w, status, map[string]any{"code": status, "message": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"code":500,"message":"ztsfake: encoding response"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// StartDev starts the fake ZTS of the sidecar's dev mode (sidecar --dev,
// built with the "dev" tag): every authenticated principal gets every role
// in every domain, tokens are signed with an EC key, and now is its clock
// (nil: the wall clock). It generates a service key for domain.service
// and registers it as keyVersion; keyPEM is the private key.
func StartDev(domain, service, keyVersion string, now func() time.Time) (s *Server, keyPEM []byte, err error) {
	if s, err = Start(Options{AllowAll: true, KeyType: "ec", Now: now}); err != nil {
		return nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err == nil {
		var der []byte
		if der, err = x509.MarshalECPrivateKey(key); err == nil {
			keyPEM = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
			err = s.RegisterServiceKey(domain, service, keyVersion, keyPEM)
		}
	}
	if err != nil {
		s.Close()
		return nil, nil, fmt.Errorf("the dev service key: %w", err)
	}
	return s, keyPEM, nil
}
