package certs_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
)

// The written certificate serves real TLS, through controller-runtime's
// certificate watcher as the webhook server uses it, to a client that
// trusts nothing but the caBundle: by the Service's name and, listed in
// ExtraNames, by 127.0.0.1.
func TestServeTLS(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	o := f.options(t, dir)
	o.ExtraNames = []string{"127.0.0.1"}
	if err := f.newManager(t, o).Sync(t.Context()); err != nil {
		t.Fatalf("Sync: %v", err)
	}

	cw, err := certwatcher.New(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
	if err != nil {
		t.Fatalf("certwatcher.New: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	watchDone := make(chan error, 1)
	go func() { watchDone <- cw.Start(ctx) }()

	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: cw.GetCertificate, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }),
		ReadHeaderTimeout: 5 * time.Second,
		// The handshake meant to fail below would log to stderr.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	serveDone := make(chan error, 1)
	go func() { serveDone <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-serveDone; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
		cancel()
		if err := <-watchDone; err != nil {
			t.Errorf("certwatcher: %v", err)
		}
	})

	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(f.caBundle(t)) {
		t.Fatal("caBundle holds no certificate")
	}
	addr := ln.Addr().String()
	for _, serverName := range []string{f.serviceName(), "127.0.0.1"} {
		t.Run(serverName, func(t *testing.T) {
			c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
				TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: serverName, MinVersion: tls.VersionTLS12},
				// Dial the listener whatever the URL's host.
				DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
					return (&net.Dialer{}).DialContext(ctx, network, addr)
				},
			}}
			resp, err := c.Get("https://" + addr + "/")
			if err != nil {
				t.Fatalf("GET over TLS as %s: %v", serverName, err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK || string(body) != "ok" {
				t.Fatalf("GET: %s %q, want 200 ok", resp.Status, body)
			}
		})
	}

	// A client trusting another CA fails the handshake: the test above
	// proves trust in the caBundle, not a lax client.
	other := x509.NewCertPool()
	other.AppendCertsFromPEM(provision(t, time.Now(), "x", "y")["ca.crt"])
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: other, ServerName: f.serviceName(), MinVersion: tls.VersionTLS12})
	if err == nil {
		conn.Close()
		t.Fatal("handshake with a client trusting another CA succeeded, want a verification error")
	}
}
