package sidecar

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/athenz-injector/athenz-injector/pkg/tokens"
)

// proxyKind is the kind of token a proxy listener adds.
type proxyKind uint8

const (
	// proxyAuto picks by the Athenz-Domain header (the token API listener).
	proxyAuto proxyKind = iota
	proxyNToken
	proxyRoleToken
)

func (k proxyKind) String() string {
	switch k {
	case proxyNToken:
		return "ntoken"
	case proxyRoleToken:
		return "roletoken"
	}
	return "auto"
}

// proxyCall is what the handler decided about one proxied request, passed
// to the Rewrite and the transport through the request's context: the
// header to add, and how to reach the upstream.
type proxyCall struct {
	authHeader, authValue string
	// tls, when set, originates TLS with that client certificate.
	tls *tlsOrigin
	// hostport is the address to dial; host, when set, replaces the Host
	// header (an http:// request sent to port 443).
	hostport, host string
}

type proxyCallKey struct{}

// newUpstreamTransports returns the transport of plain upstream requests
// and the originator of TLS ones, which share their settings: an upstream
// gets to.proxyDial to accept the connection (and finish TLS) and
// to.proxy to start its answer; either timeout answers the app 504.
func newUpstreamTransports(to timeouts, roots *tlsRoots, roleCerts []tokens.Target) upstreamTransport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	// Upstream requests go direct: an HTTP_PROXY in the sidecar's
	// environment could point back at the sidecar.
	t.Proxy = nil
	t.MaxIdleConnsPerHost = 32
	t.DialContext = (&net.Dialer{Timeout: to.proxyDial, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = to.proxyDial
	t.ResponseHeaderTimeout = to.proxy
	u := upstreamTransport{plain: t}
	if roots != nil {
		u.origin = newOriginator(roots, t, to.proxy, roleCerts)
	}
	return u
}

// newReverseProxy returns the proxy that forwards absolute-form requests
// over transport. ReverseProxy drops hop-by-hop headers (Connection and
// what it names, Proxy-Authorization, Proxy-Connection, Keep-Alive, TE,
// Upgrade unless upgrading); Rewrite adds the token, drops the control
// headers and points TLS-originated requests at their upstream.
func newReverseProxy(log logr.Logger, to timeouts, transport upstreamTransport, roots string) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			h := pr.Out.Header
			h.Del(headerDomain)
			h.Del(headerRole)
			h.Del(headerProxyPrincipal)
			h.Del(headerUpstreamTLS)
			h.Del(headerUpstreamRoleCert)
			call, ok := pr.In.Context().Value(proxyCallKey{}).(*proxyCall)
			if !ok {
				return
			}
			h.Set(call.authHeader, call.authValue)
			if call.tls != nil {
				pr.Out.URL.Scheme = "https"
				pr.Out.URL.Host = call.hostport
				if call.host != "" {
					pr.Out.Host = call.host
				}
			}
		},
		Transport:  transport,
		BufferPool: newCopyBuffers(),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
				return // the client went away
			}
			writeError(w, r, log, upstreamError(r.URL.Host, err, to, roots))
		},
		ErrorLog: newStdLogger(log),
	}
}

// copyBuffers lends ReverseProxy the buffers it copies answers with, which
// it would otherwise allocate for every request (32 KiB each: most of
// what a proxied request allocated, and of the GC's work under load).
type copyBuffers struct {
	pool sync.Pool // of *[]byte, copyBufferSize long
}

const copyBufferSize = 32 << 10

func newCopyBuffers() *copyBuffers {
	return &copyBuffers{pool: sync.Pool{New: func() any { b := make([]byte, copyBufferSize); return &b }}}
}

func (c *copyBuffers) Get() []byte { return *c.pool.Get().(*[]byte) }

func (c *copyBuffers) Put(b []byte) {
	if cap(b) == copyBufferSize {
		b = b[:copyBufferSize]
		c.pool.Put(&b)
	}
}

// upstreamError is the answer to the app when the upstream failed: 504
// for a timeout, naming the setting that bounds it, else 502; a TLS
// failure says what was wrong with the upstream's certificate.
func upstreamError(host string, err error, to timeouts, roots string) *HTTPError {
	cause := unwrapURLError(err)
	if msg, ok := tlsFailure(err, roots); ok {
		return &HTTPError{Code: http.StatusBadGateway, Msg: fmt.Sprintf("upstream %s over TLS: %s", host, msg), Err: cause}
	}
	ne, ok := errors.AsType[net.Error](err)
	if !ok || !ne.Timeout() {
		return &HTTPError{Code: http.StatusBadGateway, Msg: fmt.Sprintf("upstream %s: %v", host, cause), Err: cause}
	}
	msg := fmt.Sprintf("upstream %s timed out: no answer within ATHENZ_PROXY_TIMEOUT (%v)", host, to.proxy)
	if op, ok := errors.AsType[*net.OpError](err); (ok && op.Op == "dial") || strings.Contains(err.Error(), "TLS handshake timeout") {
		msg = fmt.Sprintf("upstream %s timed out: connecting took more than ATHENZ_PROXY_DIAL_TIMEOUT (%v)", host, to.proxyDial)
	}
	return &HTTPError{Code: http.StatusGatewayTimeout, Msg: msg, Err: cause}
}

// unwrapURLError drops the *url.Error wrapper, whose text repeats the URL
// with its query.
func unwrapURLError(err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		return ue.Err
	}
	return err
}

// proxy forwards an absolute-form request (GET http://upstream/path) with
// the token its kind calls for. kind proxyAuto chooses by Athenz-Domain:
// absent, an N-token in Athenz-Principal-Auth; present, a role token for
// Athenz-Domain, Athenz-Role and Athenz-Proxy-Principal in Athenz-Role-Auth.
func (h *handler) proxy(w http.ResponseWriter, r *http.Request, kind proxyKind) error {
	outcome := outcomeRejected
	defer func() { h.metrics.countToken(tokenProxy, outcome) }()
	if r.URL.Scheme != "http" && r.URL.Scheme != "https" {
		return httpErrorf(http.StatusBadRequest, "proxy: scheme %q not supported; want http or https", r.URL.Scheme)
	}
	if r.URL.Host == "" {
		return httpErrorf(http.StatusBadRequest, "proxy: request URL has no host")
	}
	up, err := h.target(r)
	if err != nil {
		return err
	}
	if !h.hosts.allowed(up.scheme(), up.hostport) {
		return httpErrorf(http.StatusForbidden, "proxy: upstream %q is not in ATHENZ_PROXY_ALLOWED_HOSTS; no token was sent", truncate(up.hostport))
	}
	call := &proxyCall{hostport: up.hostport, host: up.host}
	if up.tls {
		if call.tls, err = h.clientCertificate(up.role); err != nil {
			return err
		}
	}
	_, hasDomain := r.Header[headerDomain]
	_, hasRole := r.Header[headerRole]
	_, hasProxy := r.Header[headerProxyPrincipal]
	if kind == proxyAuto {
		kind = proxyNToken
		if hasDomain {
			kind = proxyRoleToken
		}
	}
	switch kind {
	case proxyNToken:
		if hasDomain {
			return httpErrorf(http.StatusBadRequest, "proxy: this listener adds N-tokens only (ATHENZ_PROXY_NTOKEN_LISTEN); remove %s or use the role token proxy", headerDomain)
		}
		if hasRole || hasProxy {
			return httpErrorf(http.StatusBadRequest, "proxy: %s and %s need %s (the role token's domain); without it the proxy adds an N-token", headerRole, headerProxyPrincipal, headerDomain)
		}
		tok, err := h.ntokenValue()
		if err != nil {
			outcome = tokens.OutcomeError
			return err
		}
		outcome = tokens.OutcomeHit
		call.authHeader, call.authValue = headerPrincipalAuth, tok
	case proxyRoleToken:
		if !hasDomain {
			return httpErrorf(http.StatusBadRequest, "proxy: header %s is required for a role token (with %s and optionally %s)", headerDomain, headerRole, headerProxyPrincipal)
		}
		key, err := tokens.RoleTokenKey(r.Header.Get(headerDomain), r.Header.Get(headerRole), r.Header.Get(headerProxyPrincipal), 0, 0)
		if err != nil {
			return headerFieldError(err)
		}
		var tok tokens.Token
		tok, outcome, err = h.cache.GetOutcome(r.Context(), key)
		if err != nil {
			return err
		}
		call.authHeader, call.authValue = headerRoleAuth, tok.Value
	}
	h.reverse.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), proxyCallKey{}, call)))
	return nil
}

// headerFieldError names the proxy control header instead of the JSON field.
func headerFieldError(err error) error {
	fe, ok := errors.AsType[*tokens.FieldError](err)
	if !ok {
		return err
	}
	name := map[string]string{"domain": headerDomain, "role": headerRole, "proxy_for_principal": headerProxyPrincipal}[fe.Field]
	if name == "" {
		return err
	}
	return &HTTPError{Code: http.StatusBadRequest, Msg: fmt.Sprintf("proxy: invalid header %s: %v", name, fe.Err), Err: err}
}

// proxyHowTo answers a plain request for /proxy/ntoken or /proxy/roletoken:
// they name no upstream, because the paths are meant as proxy URLs.
func proxyHowTo(r *http.Request) error {
	extra := ""
	if r.URL.Path == "/proxy/roletoken" {
		extra = fmt.Sprintf(" and the headers %s, %s (and optionally %s) on each request", headerDomain, headerRole, headerProxyPrincipal)
	}
	return httpErrorf(http.StatusBadRequest,
		"%s is not an endpoint to call: set http://%s%s as your HTTP client's proxy (Go: http.Transport{Proxy: http.ProxyURL(u)}; curl: -x http://%s) and request the upstream's http:// URL%s; the sidecar adds the Athenz header",
		r.URL.Path, r.Host, r.URL.Path, r.Host, extra)
}

// errConnect answers CONNECT: inside a TLS tunnel the sidecar cannot add a
// header.
func errConnect() error {
	return &HTTPError{Code: http.StatusMethodNotAllowed, Allow: "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
		Msg: "CONNECT not supported: the proxy adds an Athenz header, which it cannot do inside a TLS tunnel; send the request to the upstream's http:// URL through the proxy with the header Athenz-Upstream-TLS: true (or list the host in ATHENZ_PROXY_TLS_HOSTS): the sidecar then calls it over TLS with the Pod's certificate"}
}
