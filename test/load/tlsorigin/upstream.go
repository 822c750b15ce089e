package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Files of the upstream's directory.
const (
	serverCertFile = "server.pem"
	serverKeyFile  = "server.key"
	clientCAFile   = "ca.pem"
)

// serveUpstream is an Athenz-protected service: TLS with a certificate of
// ZTS's CA, a client certificate of that CA required, and an answer of
// bodyBytes to every request that carries Athenz-Role-Auth, after delay
// (the service's own time, and the network's of a remote service).
func serveUpstream(addr, dir string, bodyBytes int, http2 bool, delay time.Duration) error {
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, serverCertFile), filepath.Join(dir, serverKeyFile))
	if err != nil {
		return err
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, clientCAFile))
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return errors.New("no CA certificate in " + clientCAFile)
	}
	body := []byte(`{"orders":"` + strings.Repeat("x", max(0, bodyBytes-13)) + `"}`)
	srv := &http.Server{
		Addr: addr,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Athenz-Role-Auth") == "" {
				http.Error(w, "no Athenz-Role-Auth", http.StatusUnauthorized)
				return
			}
			_, _ = io.Copy(io.Discard, r.Body)
			if delay > 0 {
				time.Sleep(delay)
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(body)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{pair},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    pool,
			MinVersion:   tls.VersionTLS12,
		},
	}
	if !http2 {
		srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
	}
	return srv.ListenAndServeTLS("", "")
}
