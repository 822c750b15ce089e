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

// proxyAuth is the header the Rewrite adds, passed through the request
// context from the handler that fetched the token.
type proxyAuth struct{ header, value string }

type proxyAuthKey struct{}

// newReverseProxy returns the proxy that forwards absolute-form requests.
// ReverseProxy drops hop-by-hop headers (Connection and what it names,
// Proxy-Authorization, Proxy-Connection, Keep-Alive, TE, Upgrade unless
// upgrading); Rewrite adds the token and drops the control headers. An
// upstream gets to.proxyDial to accept the connection (and finish TLS)
// and to.proxy to start its answer; either timeout answers the app 504.
func newReverseProxy(log logr.Logger, to timeouts) *httputil.ReverseProxy {
	t := http.DefaultTransport.(*http.Transport).Clone()
	// Upstream requests go direct: an HTTP_PROXY in the sidecar's
	// environment could point back at the sidecar.
	t.Proxy = nil
	t.MaxIdleConnsPerHost = 32
	t.DialContext = (&net.Dialer{Timeout: to.proxyDial, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = to.proxyDial
	t.ResponseHeaderTimeout = to.proxy
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			h := pr.Out.Header
			h.Del(headerDomain)
			h.Del(headerRole)
			h.Del(headerProxyPrincipal)
			if a, ok := pr.In.Context().Value(proxyAuthKey{}).(proxyAuth); ok {
				h.Set(a.header, a.value)
			}
		},
		Transport: t,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
				return // the client went away
			}
			writeError(w, r, log, upstreamError(r.URL.Host, err, to))
		},
		ErrorLog: newStdLogger(log),
	}
}

// upstreamError is the answer to the app when the upstream failed: 504
// for a timeout, naming the setting that bounds it, else 502.
func upstreamError(host string, err error, to timeouts) *HTTPError {
	cause := unwrapURLError(err)
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
	if !h.hosts.allowed(r.URL.Scheme, r.URL.Host) {
		return httpErrorf(http.StatusForbidden, "proxy: upstream %q is not in ATHENZ_PROXY_ALLOWED_HOSTS; no token was sent", truncate(r.URL.Host))
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
	var auth proxyAuth
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
		auth = proxyAuth{header: headerPrincipalAuth, value: tok}
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
		auth = proxyAuth{header: headerRoleAuth, value: tok.Value}
	}
	h.reverse.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), proxyAuthKey{}, auth)))
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
		Msg: "CONNECT not supported: the proxy adds an Athenz header, which it cannot do inside a TLS tunnel; send the request to the upstream's http:// URL through the proxy, or get a token from /roletoken or /ntoken and call the https:// upstream yourself"}
}
