package sidecar

import (
	"bytes"
	"net/http"
	"net/http/httputil"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/athenz-injector/athenz-injector/pkg/tokens"
)

// handler holds what the token API, the proxies and the health endpoints
// share. Its methods that return an error leave the answer to the caller,
// which writes it with writeError.
type handler struct {
	log      logr.Logger
	cache    *tokens.Cache
	identity Identity
	clock    tokens.Clock
	hosts    hostMatcher // ATHENZ_PROXY_ALLOWED_HOSTS
	tlsHosts hostMatcher // ATHENZ_PROXY_TLS_HOSTS
	origin   *originator // nil: no TLS origination (tests)
	reverse  *httputil.ReverseProxy
	ready    *readiness
	metrics  *metrics
	timeouts timeouts

	scratch sync.Pool // of *scratch

	// The cache keys of request bodies seen before, by endpoint.
	roleBodies, accessBodies bodyMemo

	// Header values set on every token answer, shared and never modified.
	hdrJSON, hdrNoStore []string
}

// timeouts are the settings that bound the handler's waits.
type timeouts struct {
	proxy, proxyDial, read time.Duration
}

func timeoutsOf(cfg Config) timeouts {
	cfg = cfg.withDefaults()
	return timeouts{proxy: cfg.ProxyTimeout, proxyDial: cfg.ProxyDialTimeout, read: cfg.ReadTimeout}
}

// upstreamOptions are the proxy's settings about upstreams.
type upstreamOptions struct {
	allowed, tls hostMatcher
	// roots are the CAs trusted for upstreams; nil: no TLS origination.
	roots     *tlsRoots
	roleCerts []tokens.Target
}

func newHandler(log logr.Logger, cache *tokens.Cache, id Identity, clock tokens.Clock, up upstreamOptions, ready *readiness, m *metrics, t timeouts) *handler {
	transport := newUpstreamTransports(t, up.roots, up.roleCerts)
	rootsDesc := ""
	if up.roots != nil {
		rootsDesc = up.roots.desc
	}
	return &handler{
		log: log, cache: cache, identity: id, clock: clock, hosts: up.allowed, tlsHosts: up.tls, origin: transport.origin,
		ready: ready, metrics: m, timeouts: t,
		reverse:    newReverseProxy(log, t, transport, rootsDesc),
		scratch:    sync.Pool{New: func() any { return &scratch{buf: *bytes.NewBuffer(make([]byte, 0, 1024))} }},
		hdrJSON:    []string{"application/json"},
		hdrNoStore: []string{"no-store"},
	}
}

// scratch is per-request working memory, pooled so that a cached token
// answer allocates little: the request body, and the answer.
type scratch struct {
	buf bytes.Buffer
}

func (h *handler) getScratch() *scratch { return h.scratch.Get().(*scratch) }

func (h *handler) putScratch(s *scratch) {
	if s.buf.Cap() > 2*MaxBodyBytes {
		return // let an outsized buffer go
	}
	s.buf.Reset()
	h.scratch.Put(s)
}

// apiHandler serves the token API listener (and the Unix socket): the
// forward proxy for absolute-form requests, then the token endpoints by
// path. The proxy check comes first: an upstream's path may be anything,
// /roletoken included.
type apiHandler struct{ h *handler }

func (a apiHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := a.h
	var err error
	switch {
	case r.Method == http.MethodConnect:
		h.metrics.countToken(tokenProxy, outcomeRejected)
		err = errConnect()
	case r.URL.IsAbs():
		err = h.proxy(w, r, proxyAuto)
	default:
		switch r.URL.Path {
		case "/roletoken":
			err = h.roleToken(w, r)
		case "/accesstoken", "/access-token":
			err = h.accessToken(w, r)
		case "/v1/token":
			err = h.v1Token(w, r)
		case "/ntoken":
			err = h.ntoken(w, r)
		case "/svccert":
			err = h.svccert(w, r)
		case "/healthz":
			err = h.healthz(w, r)
		case "/readyz":
			err = h.readyz(w, r)
		case "/proxy/ntoken", "/proxy/roletoken":
			err = proxyHowTo(r)
		default:
			err = httpErrorf(http.StatusNotFound, "no endpoint %s; the token API has GET /v1/token, GET /ntoken, GET /svccert, GET|POST /roletoken, GET|POST /accesstoken and /access-token, GET /healthz, GET /readyz, and proxies absolute-form requests", truncate(r.URL.Path))
		}
	}
	if err != nil {
		writeError(w, r, h.log, err)
	}
}

// proxyHandler serves a dedicated proxy listener of one kind.
type proxyHandler struct {
	h    *handler
	kind proxyKind
}

func (p proxyHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var err error
	switch {
	case r.Method == http.MethodConnect:
		p.h.metrics.countToken(tokenProxy, outcomeRejected)
		err = errConnect()
	case r.URL.IsAbs():
		err = p.h.proxy(w, r, p.kind)
	default:
		err = httpErrorf(http.StatusBadRequest,
			"this is the sidecar's %s proxy: set http://%s as your HTTP client's proxy (Go: http.Transport{Proxy: http.ProxyURL(u)}; curl: -x http://%s) and request the upstream's http:// URL",
			p.kind, r.Host, r.Host)
	}
	if err != nil {
		writeError(w, r, p.h.log, err)
	}
}

// healthHandler serves the health listener: /healthz, /readyz and
// /metrics only; it hands out no credentials.
type healthHandler struct{ h *handler }

func (hh healthHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var err error
	switch r.URL.Path {
	case "/healthz":
		err = hh.h.healthz(w, r)
	case "/readyz":
		err = hh.h.readyz(w, r)
	case "/metrics":
		err = hh.h.serveMetrics(w, r)
	default:
		err = httpErrorf(http.StatusNotFound, "no endpoint %s; the health listener has GET /healthz, GET /readyz and GET /metrics", truncate(r.URL.Path))
	}
	if err != nil {
		writeError(w, r, hh.h.log, err)
	}
}

func (h *handler) healthz(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return methodNotAllowed(r.Method, "GET, HEAD")
	}
	w.Header()["Content-Type"] = h.hdrJSON
	_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
	return nil
}

// readyz answers the readiness probe. The reason it is not ready names
// ZTS's errors, roles and the ZTS URL: it goes to callers in the Pod
// (loopback, the Unix socket) and to the log; a caller from the network
// (the health listener is on every interface) gets the status code and no
// more.
func (h *handler) readyz(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return methodNotAllowed(r.Method, "GET, HEAD")
	}
	err := h.ready.check()
	h.ready.observe(err)
	if err != nil {
		if !fromLoopback(r) {
			return &HTTPError{Code: http.StatusServiceUnavailable, Msg: "not ready (the reason is in the sidecar's log, and in /readyz from inside the Pod)"}
		}
		return &HTTPError{Code: http.StatusServiceUnavailable, Msg: "not ready: " + err.Error()}
	}
	w.Header()["Content-Type"] = h.hdrJSON
	_, _ = w.Write([]byte(`{"status":"ready"}` + "\n"))
	return nil
}
