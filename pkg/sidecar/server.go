package sidecar

import (
	"context"
	"errors"
	"fmt"
	stdlog "log"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"

	"github.com/go-logr/logr"

	"github.com/athenz-injector/athenz-injector/pkg/tokens"
	"github.com/athenz-injector/athenz-injector/pkg/version"
)

// Addrs are the addresses a Server listens on; empty when not configured.
type Addrs struct {
	API, Health, Socket, NTokenProxy, RoleTokenProxy string
	// ZTS is the ZTS base URL in use (the fake's in dev mode).
	ZTS string
}

// Server is a running sidecar: its listeners, token cache and identity.
// Start starts one; it shuts down when the context given to Start ends.
type Server struct {
	log       logr.Logger
	cfg       Config
	handler   *handler
	metrics   *metrics
	cache     *tokens.Cache
	identity  Identity
	listeners []*listener
	addrs     Addrs
	closeDev  func()

	ctx    context.Context
	cancel context.CancelCauseFunc
	tasks  sync.WaitGroup // identity.Run, prefetch, Serve loops
	done   chan struct{}

	failOnce sync.Once
	err      error // the first fatal error; written once, read after done
}

type listener struct {
	name string // the setting it comes from, e.g. ATHENZ_LISTEN
	srv  *http.Server
	ln   net.Listener
}

// Run serves the sidecar until ctx ends, then drains in-flight requests for
// at most cfg.ShutdownTimeout and returns nil. It returns an error when the
// configuration is invalid, a listener cannot be opened, or the sidecar
// cannot go on (a listener fails, the identity is lost).
func Run(ctx context.Context, cfg Config, log logr.Logger) error {
	if cfg.Mode == ModeInit {
		return RunInit(ctx, cfg, log)
	}
	s, err := Start(ctx, cfg, log)
	if err != nil {
		return err
	}
	return s.Wait()
}

// Start validates cfg, builds the identity, the ZTS client and the cache,
// opens every listener and starts serving. It returns once the sidecar
// accepts connections (it reports ready on /readyz later, when the identity
// and the prefetched tokens are there). The sidecar stops when ctx ends;
// Wait waits for that.
func Start(ctx context.Context, cfg Config, log logr.Logger) (_ *Server, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Mode == ModeInit {
		return nil, fmt.Errorf("--mode=%s does not serve: use Run or RunInit", ModeInit)
	}
	cfg = cfg.withDefaults()
	s := &Server{log: log, cfg: cfg, done: make(chan struct{}), closeDev: func() {}}
	defer func() {
		if err != nil {
			s.closeAll()
		}
	}()

	s.metrics = newMetrics(cfg.Clock)
	// One measurement of ZTS's clock, fed by tokens and the identity's
	// N-tokens, used by both.
	skew := tokens.NewClockSkew(log.WithName("clock"))
	s.metrics.skew = skew
	idOpts := IdentityOptions{Logger: log.WithName("identity"), Clock: cfg.Clock, Skew: skew}
	var devCA []byte // dev mode's fake ZTS CA, standing for ATHENZ_ZTS_CA_FILE
	if cfg.Dev {
		d, err := startDev(&cfg, log)
		if err != nil {
			return nil, err
		}
		s.closeDev = d.close
		idOpts.RootCAs, idOpts.KeyPEM = d.zts.CAPool(), d.keyPEM
		devCA = d.zts.CACertPEM()
	}
	ztsURL, err := url.Parse(cfg.ZTSURL)
	if err != nil {
		return nil, fmt.Errorf("ATHENZ_ZTS_URL: %w", err)
	}
	observe := s.metrics.zts.observeTransport(ztsURL.Path)
	idOpts.WrapTransport = observe
	id, err := NewIdentity(cfg, idOpts)
	if err != nil {
		return nil, err
	}
	s.identity = id
	client, err := tokens.NewClient(tokens.ClientOptions{
		URL: cfg.ZTSURL, Transport: observe(s.identity.Transport()), Timeout: cfg.ZTSTimeout, Clock: cfg.Clock, Skew: skew,
	})
	if err != nil {
		return nil, fmt.Errorf("ATHENZ_ZTS_URL: %w", err)
	}
	// A fetch waits for the identity's first attempt (at most a ZTS
	// call's time), rather than ask ZTS without credentials while the
	// sidecar starts.
	gate := &identityGate{id: s.identity, attempted: func() bool {
		st := id.Status()
		return st.Renewals > 0 || st.FailuresTotal > 0
	}}
	fetch := func(ctx context.Context, key tokens.Key) (tokens.Token, error) {
		if err := gate.waitFirstAttempt(ctx, cfg.ZTSTimeout); err != nil {
			return tokens.Token{}, err
		}
		return client.Fetch(ctx, key)
	}
	s.cache = tokens.NewCache(fetch, tokens.CacheOptions{Clock: cfg.Clock})
	s.metrics.cacheLen, s.metrics.refreshes, s.metrics.identity = s.cache.Len, s.cache.Refreshes, id.Status
	up, err := upstreamOptionsOf(cfg, devCA)
	if err != nil {
		return nil, err
	}
	items, err := prefetchItems(cfg.Prefetch, cfg.PrefetchRoleTokens, cfg.TokenFiles)
	if err != nil {
		return nil, err
	}
	ready := newReadiness(s.identity, gate, items, s.cache, cfg.Clock, log.WithName("readiness"))
	if len(cfg.TokenFiles) > 0 {
		if ready.files, err = newTokenFiles(cfg.identityDir(), cfg.TokenFiles, cfg.tokenFileMode(), s.cache, cfg.Clock, log.WithName("tokenfiles")); err != nil {
			return nil, err
		}
	}
	s.metrics.ready = ready
	s.handler = newHandler(log, s.cache, s.identity, cfg.Clock, up, ready, s.metrics, timeoutsOf(cfg))
	if err := s.listen(); err != nil {
		return nil, err
	}
	s.addrs.ZTS = cfg.ZTSURL

	s.ctx, s.cancel = context.WithCancelCause(ctx)
	s.tasks.Go(func() {
		if err := s.identity.Run(s.ctx); err != nil {
			s.fail(fmt.Errorf("identity: %w", err))
		}
	})
	s.tasks.Go(func() { ready.run(s.ctx, log.WithName("prefetch")) })
	if ready.files != nil {
		s.tasks.Go(func() { ready.files.run(s.ctx) })
	}
	for _, l := range s.listeners {
		s.tasks.Go(func() {
			if err := l.srv.Serve(l.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.fail(fmt.Errorf("%s: %w", l.name, err))
			}
		})
	}
	go s.shutdownWhenDone(ready)
	log.Info("sidecar serving", "version", version.Version, "api", s.addrs.API, "health", s.addrs.Health, "socket", s.addrs.Socket,
		"ntokenproxy", s.addrs.NTokenProxy, "roletokenproxy", s.addrs.RoleTokenProxy,
		"zts", cfg.ZTSURL, "identitymode", string(cfg.EffectiveIdentityMode()),
		"domain", cfg.Domain, "service", cfg.Service, "prefetch", len(items), "tokenfiles", len(cfg.TokenFiles))
	return s, nil
}

// Addrs returns the addresses the server listens on, with the ports the
// system chose for ":0".
func (s *Server) Addrs() Addrs { return s.addrs }

// Wait blocks until the server has shut down and returns the error that
// stopped it, or nil when its context ended.
func (s *Server) Wait() error {
	<-s.done
	return s.err
}

func (s *Server) fail(err error) {
	s.failOnce.Do(func() {
		s.err = err
		s.cancel(err)
	})
}

func (s *Server) listen() error {
	api := apiHandler{s.handler}
	specs := []struct {
		name, network, addr string
		handler             http.Handler
		out                 *string
	}{
		{"ATHENZ_LISTEN", "tcp", s.cfg.Listen, api, &s.addrs.API},
		{"ATHENZ_SOCKET", "unix", s.cfg.Socket, api, &s.addrs.Socket},
		{"ATHENZ_PROXY_NTOKEN_LISTEN", "tcp", s.cfg.ProxyNTokenListen, proxyHandler{s.handler, proxyNToken}, &s.addrs.NTokenProxy},
		{"ATHENZ_PROXY_ROLETOKEN_LISTEN", "tcp", s.cfg.ProxyRoleTokenListen, proxyHandler{s.handler, proxyRoleToken}, &s.addrs.RoleTokenProxy},
		{"ATHENZ_HEALTH_LISTEN", "tcp", s.cfg.HealthListen, healthHandler{s.handler}, &s.addrs.Health},
	}
	for _, sp := range specs {
		if sp.addr == "" || sp.addr == ListenOff {
			continue
		}
		var ln net.Listener
		var err error
		if sp.network == "unix" {
			ln, err = listenUnix(sp.addr)
		} else {
			ln, err = net.Listen(sp.network, sp.addr)
		}
		if err != nil {
			return fmt.Errorf("%s=%s: %w", sp.name, sp.addr, err)
		}
		*sp.out = ln.Addr().String()
		s.listeners = append(s.listeners, &listener{name: sp.name, ln: newLimitListener(ln, s.cfg.MaxConnections), srv: &http.Server{
			Handler: sp.handler,
			// A token request's body has its own deadline (decodeBody);
			// a proxied body streams to the upstream for as long as it
			// takes, so there is no ReadTimeout for the whole request.
			ReadHeaderTimeout: s.cfg.ReadTimeout,
			IdleTimeout:       s.cfg.IdleTimeout,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          newStdLogger(s.log),
		}})
	}
	return nil
}

// listenUnix listens on a Unix socket, replacing a stale socket file from a
// previous run. The socket is world-writable: as with loopback, the
// boundary is who can reach it (the containers that mount its volume).
func listenUnix(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o666); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// shutdownWhenDone stops the server once its context ends: /readyz turns
// 503, listeners stop accepting, in-flight requests get ShutdownTimeout to
// finish, then the rest is closed.
func (s *Server) shutdownWhenDone(ready *readiness) {
	<-s.ctx.Done()
	ready.draining.Store(true)
	s.log.Info("shutting down", "timeout", s.cfg.ShutdownTimeout.String())
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, l := range s.listeners {
		wg.Go(func() {
			if err := l.srv.Shutdown(ctx); err != nil {
				s.log.Info("requests still in flight at the shutdown timeout; closing them", "listener", l.name)
				l.srv.Close()
			}
		})
	}
	wg.Wait()
	s.tasks.Wait()
	s.closeAll()
	s.log.Info("sidecar stopped")
	close(s.done)
}

// closeAll releases what Start opened; listeners that never served are
// closed here too.
func (s *Server) closeAll() {
	for _, l := range s.listeners {
		l.ln.Close()
	}
	if s.cache != nil {
		s.cache.Close()
	}
	s.closeDev()
}

// newStdLogger routes net/http's own messages (TLS handshake and accept
// errors, panics) to the logger at V(1).
func newStdLogger(log logr.Logger) *stdlog.Logger {
	return stdlog.New(logWriter{log.V(1)}, "", 0)
}

type logWriter struct{ log logr.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	w.log.Info("net/http message", "detail", strings.TrimSpace(string(p)))
	return len(p), nil
}

// limitListener accepts at most n connections at once: Accept waits for
// one to close, and the rest wait in the kernel's backlog. It bounds the
// memory and goroutines a flood of connections can take.
type limitListener struct {
	net.Listener
	sem       chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

func newLimitListener(l net.Listener, n int) *limitListener {
	return &limitListener{Listener: l, sem: make(chan struct{}, n), done: make(chan struct{})}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

func (l *limitListener) Close() error {
	err := l.Listener.Close()
	l.closeOnce.Do(func() { close(l.done) })
	return err
}

// limitConn gives its slot back once, when closed.
type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
