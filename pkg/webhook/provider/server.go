package provider

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	stdlog "log"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
)

// Server timeouts. ZTS gives a provider 30 s by default.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 60 * time.Second
	idleTimeout       = 2 * time.Minute
	shutdownTimeout   = 10 * time.Second
)

// ServerOptions configure a Server.
type ServerOptions struct {
	// Addr is the address Start listens on, e.g. ":8443"
	// (--provider-bind-address). Required by Start; Serve takes a listener.
	Addr string
	// Handler serves the requests, normally a *Handler. Required.
	Handler http.Handler
	// GetCertificate returns the serving certificate, e.g. a
	// certwatcher's, so that a rotated certificate is served without a
	// restart. Note that ZTS accepts the provider's certificate only if
	// its common name is the provider service's name (see docs/provider.md).
	// Required.
	GetCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// ClientCAFile, if set, is a PEM bundle (--provider-client-ca-file):
	// clients must present a certificate that chains to it, as ZTS does
	// with its own certificate. The file is read again when it changes.
	// Default: no client certificate is asked for.
	ClientCAFile string
	// Logger for start, stop and CA reloads. Default: discard.
	Logger logr.Logger
}

// Server serves the provider callback over TLS on its own address. It is a
// controller-runtime manager.Runnable that runs on every replica (not only
// the leader).
type Server struct {
	o       ServerOptions
	log     logr.Logger
	tls     *tls.Config
	ca      *caFile // nil without ClientCAFile
	started atomic.Bool
}

// NewServer checks o and, with ClientCAFile, reads the CA bundle once so
// that a wrong path fails at start. The error names the option.
func NewServer(o ServerOptions) (*Server, error) {
	if o.Handler == nil {
		return nil, errors.New("provider server: ServerOptions.Handler is required")
	}
	if o.GetCertificate == nil {
		return nil, errors.New("provider server: ServerOptions.GetCertificate is required")
	}
	log := o.Logger
	if log.GetSink() == nil {
		log = logr.Discard()
	}
	s := &Server{o: o, log: log}
	s.tls = &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: o.GetCertificate,
		// HTTP/1.1 only, as the webhook server: ZTS does not need HTTP/2.
		NextProtos: []string{"http/1.1"},
	}
	if o.ClientCAFile != "" {
		ca, err := loadCAFile(o.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("provider server: ClientCAFile (--provider-client-ca-file): %w", err)
		}
		s.ca = ca
		s.tls.ClientAuth = tls.RequireAndVerifyClientCert
		s.tls.GetConfigForClient = s.configForClient
	}
	return s, nil
}

// NeedLeaderElection is false: every replica answers ZTS.
func (s *Server) NeedLeaderElection() bool { return false }

// Start listens on ServerOptions.Addr and serves until ctx is done.
func (s *Server) Start(ctx context.Context) error {
	if s.o.Addr == "" {
		return errors.New("provider server: ServerOptions.Addr is required (--provider-bind-address)")
	}
	l, err := net.Listen("tcp", s.o.Addr)
	if err != nil {
		return fmt.Errorf("provider server: listening on %s: %w", s.o.Addr, err)
	}
	return s.Serve(ctx, l)
}

// Serve serves on l until ctx is done, then shuts down gracefully. It
// closes l.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	srv := &http.Server{
		Handler:           s.o.Handler,
		TLSConfig:         s.tls,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		// Not nil and empty: no HTTP/2.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
		// TLS handshake failures (a client without the certificate) are
		// debug messages, not lines on stderr.
		ErrorLog: stdlog.New(logWriter{s.log}, "", 0),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			s.log.Error(err, "provider callback did not shut down cleanly")
		}
	}()
	s.log.Info("serving the provider callback", "address", l.Addr().String(), "clientCAFile", s.o.ClientCAFile)
	s.started.Store(true)
	err := srv.ServeTLS(l, "", "")
	s.started.Store(false)
	if errors.Is(err, http.ErrServerClosed) {
		<-done
		return nil
	}
	return fmt.Errorf("provider server: %w", err)
}

// Started is a readiness check (healthz.Checker): nil once Serve runs.
func (s *Server) Started(*http.Request) error {
	if !s.started.Load() {
		return errors.New("provider callback not serving yet")
	}
	return nil
}

// logWriter turns net/http's server messages into V(1) log lines.
type logWriter struct{ log logr.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	w.log.V(1).Info("http server message", "message", strings.TrimSpace(string(p)))
	return len(p), nil
}

// configForClient serves the client CA bundle as it is now on disk.
func (s *Server) configForClient(*tls.ClientHelloInfo) (*tls.Config, error) {
	pool, reloaded, err := s.ca.current()
	if err != nil {
		s.log.Error(err, "cannot reload the client CA bundle, keeping the previous one", "file", s.o.ClientCAFile)
	} else if reloaded {
		s.log.Info("client CA bundle reloaded", "file", s.o.ClientCAFile)
	}
	cfg := s.tls.Clone()
	cfg.GetConfigForClient = nil
	cfg.ClientCAs = pool
	return cfg, nil
}

// caFile is a PEM CA bundle that is read again when its size or
// modification time changes (a mounted ConfigMap or Secret is updated in
// place by kubelet).
type caFile struct {
	path string

	mu      sync.Mutex // guards the fields below
	pool    *x509.CertPool
	modTime time.Time
	size    int64
}

func loadCAFile(path string) (*caFile, error) {
	c := &caFile{path: path}
	if _, _, err := c.current(); err != nil {
		return nil, err
	}
	return c, nil
}

// current returns the pool, reading the file again if it changed. On a
// read error it returns the last good pool with the error.
func (c *caFile) current() (*x509.CertPool, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fi, err := os.Stat(c.path)
	if err != nil {
		return c.pool, false, err
	}
	if c.pool != nil && fi.ModTime().Equal(c.modTime) && fi.Size() == c.size {
		return c.pool, false, nil
	}
	pem, err := os.ReadFile(c.path)
	if err != nil {
		return c.pool, false, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return c.pool, false, fmt.Errorf("%s holds no PEM certificate", c.path)
	}
	first := c.pool == nil
	c.pool, c.modTime, c.size = pool, fi.ModTime(), fi.Size()
	return pool, !first, nil
}
