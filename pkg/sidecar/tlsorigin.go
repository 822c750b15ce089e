package sidecar

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/athenz-injector/athenz-injector/pkg/tokens"
)

// Control headers of TLS origination; the proxy removes them.
const (
	// headerUpstreamTLS "true" asks the proxy to call the upstream of an
	// http:// request over TLS.
	headerUpstreamTLS = "Athenz-Upstream-Tls"
	// headerUpstreamRoleCert names a role certificate of
	// ATHENZ_ROLE_CERTS to present instead of the identity certificate;
	// it implies TLS.
	headerUpstreamRoleCert = "Athenz-Upstream-Role-Cert"
)

// tlsOrigin is how the proxy calls one upstream over TLS: the client
// certificate to present (the identity's, or a role certificate's), read
// when the request arrived.
type tlsOrigin struct {
	role *tokens.Target // nil: the identity certificate
	cert *tls.Certificate
}

// poolName is the connection pool of the certificate: "" for the
// identity, the role's target for a role certificate.
func (o *tlsOrigin) poolName() string {
	if o.role == nil {
		return ""
	}
	return o.role.String()
}

// originator holds the proxy's TLS connections to upstreams: one pool per
// client certificate (the identity's and each role certificate's), each
// replaced by a new one when its certificate rotates or the trusted CAs
// change, since a TLS connection presents the certificate of its
// handshake for as long as it lives. The old pool gets no new requests;
// its idle connections close now and once requests under way had
// ATHENZ_PROXY_TIMEOUT to end.
type originator struct {
	roots *tlsRoots
	// base is the transport settings every pool copies (timeouts, limits).
	base  *http.Transport
	drain time.Duration
	// pools is fixed at construction (the identity and ATHENZ_ROLE_CERTS),
	// so it is read without a lock; swaps take mu.
	pools map[string]*atomic.Pointer[certPool]
	mu    sync.Mutex
}

// certPool is the connection pool of one client certificate and one
// generation of the trusted CAs.
type certPool struct {
	cert *tls.Certificate
	gen  uint64
	t    *http.Transport
}

func newOriginator(roots *tlsRoots, base *http.Transport, drain time.Duration, roleCerts []tokens.Target) *originator {
	o := &originator{roots: roots, base: base, drain: drain, pools: map[string]*atomic.Pointer[certPool]{"": {}}}
	for _, t := range roleCerts {
		o.pools[t.String()] = &atomic.Pointer[certPool]{}
	}
	return o
}

// transport returns the transport that presents origin's certificate,
// starting a new pool when the certificate or the CAs changed.
func (o *originator) transport(origin *tlsOrigin) (*http.Transport, error) {
	slot := o.pools[origin.poolName()]
	if slot == nil {
		return nil, fmt.Errorf("no connection pool for %q", origin.poolName()) // prevented by the header check
	}
	roots := o.roots.current()
	if p := slot.Load(); p != nil && p.cert == origin.cert && p.gen == roots.gen {
		return p.t, nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	old := slot.Load()
	if old != nil && old.cert == origin.cert && old.gen == roots.gen {
		return old.t, nil
	}
	t := o.base.Clone()
	cert := origin.cert
	t.TLSClientConfig = &tls.Config{
		RootCAs:    roots.pool,
		MinVersion: tls.VersionTLS12,
		// The pool's certificate, at every handshake: a pool's
		// connections all present the certificate it is keyed by.
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil },
	}
	// HTTP/2 where the upstream offers it (ALPN); a custom TLS
	// configuration turns it off unless asked for.
	t.ForceAttemptHTTP2 = true
	slot.Store(&certPool{cert: cert, gen: roots.gen, t: t})
	if old != nil {
		old.t.CloseIdleConnections()
		time.AfterFunc(o.drain+time.Second, old.t.CloseIdleConnections)
	}
	return t, nil
}

// upstreamTransport carries the proxy's requests: over the originator's
// TLS pools when the request is to be originated, else over plain.
type upstreamTransport struct {
	plain  *http.Transport
	origin *originator
}

func (u upstreamTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	call, _ := req.Context().Value(proxyCallKey{}).(*proxyCall)
	if call == nil || call.tls == nil {
		return u.plain.RoundTrip(req)
	}
	t, err := u.origin.transport(call.tls)
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	return t.RoundTrip(req)
}

// upstreamTarget is how the proxy reaches a request's upstream.
type upstreamTarget struct {
	// tls: originate TLS, presenting role's certificate (nil: the
	// identity's).
	tls  bool
	role *tokens.Target
	// hostport is the address to dial; host, when set, replaces the Host
	// header (an http:// request called on port 443).
	hostport, host string
}

// scheme is the scheme the upstream is called with.
func (u upstreamTarget) scheme() string {
	if u.tls {
		return "https"
	}
	return "http"
}

// target decides how a proxied request reaches its upstream: over TLS
// for an https:// URL, a host of ATHENZ_PROXY_TLS_HOSTS or a control
// header asking for it; on port 443 for an http:// URL without a port or
// with 80. A bad control header is a 400 naming it.
func (h *handler) target(r *http.Request) (upstreamTarget, error) {
	u := upstreamTarget{hostport: r.URL.Host}
	if v := r.Header.Get(headerUpstreamTLS); v != "" {
		var err error
		if u.tls, err = strconv.ParseBool(v); err != nil {
			return u, httpErrorf(http.StatusBadRequest, "proxy: invalid header Athenz-Upstream-TLS: %q: want true or false", truncate(v))
		}
	}
	if v := r.Header.Get(headerUpstreamRoleCert); v != "" {
		t, err := tokens.ParseTarget(v)
		if err == nil && t.Role == "" {
			err = fmt.Errorf("want <domain>:role.<role>")
		}
		if err != nil {
			return u, &HTTPError{Code: http.StatusBadRequest, Msg: fmt.Sprintf("proxy: invalid header %s: %v", headerUpstreamRoleCert, err), Err: err}
		}
		if h.origin == nil || h.origin.pools[t.String()] == nil {
			return u, httpErrorf(http.StatusBadRequest, "proxy: header %s: %s is not in ATHENZ_ROLE_CERTS; the sidecar has no such role certificate", headerUpstreamRoleCert, t)
		}
		u.tls, u.role = true, &t
	}
	switch {
	case r.URL.Scheme == "https":
		u.tls = true
		return u, nil
	case !u.tls && !h.tlsHosts.match(r.URL.Scheme, r.URL.Host):
		return u, nil
	}
	u.tls = true
	name, port, err := net.SplitHostPort(r.URL.Host)
	switch {
	case err != nil: // no port
		u.hostport, u.host = net.JoinHostPort(trimBrackets(r.URL.Host), "443"), r.URL.Host
	case port == "80":
		u.hostport, u.host = net.JoinHostPort(name, "443"), bracketIPv6(name)
	}
	return u, nil
}

func trimBrackets(h string) string {
	if len(h) > 1 && h[0] == '[' && h[len(h)-1] == ']' {
		return h[1 : len(h)-1]
	}
	return h
}

func bracketIPv6(h string) string {
	if ip := net.ParseIP(h); ip != nil && ip.To4() == nil {
		return "[" + h + "]"
	}
	return h
}

// clientCertificate returns the certificate to present for a
// TLS-originated request, or a 503 saying why there is none valid now.
func (h *handler) clientCertificate(role *tokens.Target) (*tlsOrigin, error) {
	var (
		cert *tls.Certificate
		err  error
	)
	if role == nil {
		cert, err = h.identity.ClientCertificate()
	} else {
		cert, err = h.identity.RoleCertificate(*role)
	}
	if err != nil {
		return nil, &HTTPError{Code: http.StatusServiceUnavailable, Msg: "proxy: no certificate to present to the upstream: " + err.Error(), Err: err}
	}
	return &tlsOrigin{role: role, cert: cert}, nil
}

// tlsFailure describes an upstream's TLS failure for the app: the
// certificate the upstream showed is not trusted, expired or for another
// host, or the upstream refused the handshake. ok is false for other
// errors.
func tlsFailure(err error, roots string) (msg string, ok bool) {
	var (
		unknown  x509.UnknownAuthorityError
		invalid  x509.CertificateInvalidError
		hostname x509.HostnameError
		remote   *net.OpError
		record   tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &unknown):
		return fmt.Sprintf("its certificate is not signed by a CA the proxy trusts (ATHENZ_PROXY_TLS_CA=%s): %v; no request was sent", roots, unknown), true
	case errors.As(err, &invalid):
		return fmt.Sprintf("its certificate is not valid now (expired or not yet valid): %v; no request was sent", invalid), true
	case errors.As(err, &hostname):
		return fmt.Sprintf("its certificate is for another host: %v; no request was sent", hostname), true
	case errors.As(err, &remote) && remote.Op == "remote error":
		return fmt.Sprintf("it ended the TLS connection (%v): does it accept the certificate the proxy presented?", remote.Err), true
	case errors.As(err, &record):
		return "it does not speak TLS on that port (the proxy called it over TLS: ATHENZ_PROXY_TLS_HOSTS or Athenz-Upstream-TLS)", true
	}
	return "", false
}

// upstreamOptionsOf builds the proxy's upstream settings from cfg.
func upstreamOptionsOf(cfg Config, devCA []byte) (upstreamOptions, error) {
	allowed, err := newHostMatcher(cfg.ProxyAllowedHosts)
	if err != nil {
		return upstreamOptions{}, fmt.Errorf("ATHENZ_PROXY_ALLOWED_HOSTS: %w", err)
	}
	tlsHosts, err := newHostMatcher(cfg.ProxyTLSHosts)
	if err != nil {
		return upstreamOptions{}, fmt.Errorf("ATHENZ_PROXY_TLS_HOSTS: %w", err)
	}
	roots, err := newTLSRoots(cfg, devCA)
	if err != nil {
		return upstreamOptions{}, err
	}
	return upstreamOptions{allowed: allowed, tls: tlsHosts, roots: roots, roleCerts: cfg.Certificate.RoleCerts}, nil
}
