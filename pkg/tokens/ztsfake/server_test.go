package ztsfake_test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/AthenZ/athenz/clients/go/zts"

	"github.com/athenz-injector/athenz-injector/pkg/tokens/ztsfake"
)

func TestStatus(t *testing.T) {
	s := ztsfake.NewTest(t, ztsfake.Options{})
	got, err := anonClient(t, s).GetStatus()
	if err != nil {
		t.Fatalf("GetStatus: %v", err)
	}
	if got.Code != 200 || got.Message != "OK" {
		t.Errorf("GetStatus = %+v, want {200 OK}", got)
	}
	if n := s.CallsFor(ztsfake.EndpointStatus, ""); n != 1 {
		t.Errorf("CallsFor(status, \"\") = %d, want 1", n)
	}
	if !strings.HasPrefix(s.URL(), "https://127.0.0.1:") || !strings.HasSuffix(s.URL(), "/zts/v1") {
		t.Errorf("URL() = %q, want https://127.0.0.1:<port>/zts/v1", s.URL())
	}
}

func TestStartOptions(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	tests := []struct {
		name    string
		opts    ztsfake.Options
		wantErr string
	}{
		{name: "unknown key type", opts: ztsfake.Options{KeyType: "dsa"}, wantErr: "KeyType"},
		{name: "negative lifetime", opts: ztsfake.Options{CertLifetime: -time.Second}, wantErr: "CertLifetime"},
		{name: "address in use", opts: ztsfake.Options{Addr: busy.Addr().String()}, wantErr: "listening"},
		{name: "explicit loopback address", opts: ztsfake.Options{Addr: "localhost:0", KeyType: "EC"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ztsfake.Start(tc.opts)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Start(%+v): %v", tc.opts, err)
				}
				defer s.Close()
				if _, err := anonClient(t, s).GetStatus(); err != nil {
					t.Errorf("GetStatus: %v", err)
				}
				return
			}
			if err == nil {
				s.Close()
				t.Fatalf("Start(%+v): no error, want one mentioning %q", tc.opts, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Start(%+v) = %v, want an error mentioning %q", tc.opts, err, tc.wantErr)
			}
		})
	}
}

// fakeTB collects cleanups, as testing.T would run them.
type fakeTB struct {
	cleanups []func()
	fatal    string
}

func (f *fakeTB) Helper()                           {}
func (f *fakeTB) Cleanup(fn func())                 { f.cleanups = append(f.cleanups, fn) }
func (f *fakeTB) Fatalf(format string, args ...any) { f.fatal = fmt.Sprintf(format, args...) }

func TestNewTestClosesInCleanup(t *testing.T) {
	tb := &fakeTB{}
	s := ztsfake.NewTest(tb, ztsfake.Options{})
	c := anonClient(t, s)
	if _, err := c.GetStatus(); err != nil {
		t.Fatalf("GetStatus before cleanup: %v", err)
	}
	for _, fn := range tb.cleanups {
		fn()
	}
	if _, err := c.GetStatus(); err == nil {
		t.Errorf("GetStatus after cleanup: no error, want the server closed")
	}

	tb = &fakeTB{}
	if s := ztsfake.NewTest(tb, ztsfake.Options{KeyType: "dsa"}); s != nil || !strings.Contains(tb.fatal, "KeyType") {
		t.Errorf("NewTest(bad options) = %v, Fatalf %q; want nil and a fatal naming KeyType", s, tb.fatal)
	}
}

func TestServerTLS(t *testing.T) {
	s := ztsfake.NewTest(t, ztsfake.Options{})
	addr := strings.TrimSuffix(strings.TrimPrefix(s.URL(), "https://"), "/zts/v1")
	_, port, _ := net.SplitHostPort(addr)

	for _, host := range []string{"127.0.0.1", "localhost"} {
		conn, err := tls.Dial("tcp", net.JoinHostPort(host, port), &tls.Config{RootCAs: s.CAPool(), ServerName: host})
		if err != nil {
			t.Errorf("TLS to %s with CAPool(): %v", host, err)
			continue
		}
		conn.Close()
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(s.CACertPEM()) {
		t.Fatalf("CACertPEM() is not a PEM certificate")
	}

	// A client certificate from another CA fails the handshake.
	other := ztsfake.NewTest(t, ztsfake.Options{})
	certPEM, keyPEM, err := other.IssueIdentity("client", "api")
	if err != nil {
		t.Fatal(err)
	}
	tr, err := s.Transport(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.CloseIdleConnections()
	if _, err := zts.NewClient(s.URL(), tr).GetStatus(); err == nil {
		t.Errorf("GetStatus with a certificate from another CA: no error, want a TLS failure")
	}
}

func TestIssueIdentity(t *testing.T) {
	s := ztsfake.NewTest(t, ztsfake.Options{CertLifetime: 10 * time.Minute})
	certPEM, keyPEM, err := s.IssueIdentity("client.ns", "api")
	if err != nil {
		t.Fatalf("IssueIdentity: %v", err)
	}
	cert := parseCert(t, s, string(certPEM), x509.ExtKeyUsageClientAuth)
	if cert.Subject.CommonName != "client.ns.api" || len(cert.URIs) != 1 || cert.URIs[0].String() != "spiffe://client.ns/sa/api" {
		t.Errorf("IssueIdentity: CN %q URIs %v, want client.ns.api and spiffe://client.ns/sa/api", cert.Subject.CommonName, cert.URIs)
	}
	if life := time.Until(cert.NotAfter); life > 10*time.Minute || life < 9*time.Minute {
		t.Errorf("IssueIdentity certificate lives %v, want CertLifetime 10m", life)
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.Errorf("IssueIdentity: certificate and key do not pair: %v", err)
	}
	if !strings.Contains(string(keyPEM), "EC PRIVATE KEY") {
		t.Errorf("IssueIdentity key is not an EC PRIVATE KEY PEM")
	}
}

// TestNoKeepAlive: with NoKeepAlive every call is a connection of its own;
// without it, calls reuse one.
func TestNoKeepAlive(t *testing.T) {
	for _, noKeepAlive := range []bool{false, true} {
		s := ztsfake.NewTest(t, ztsfake.Options{NoKeepAlive: noKeepAlive})
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.CAPool()}}
		client := zts.NewClient(s.URL(), tr)
		for range 3 {
			if _, err := client.GetStatus(); err != nil {
				t.Fatal(err)
			}
		}
		tr.CloseIdleConnections()
		accepted, _ := s.Connections()
		if want := map[bool]int{false: 1, true: 3}[noKeepAlive]; accepted != want {
			t.Errorf("NoKeepAlive %v: 3 calls took %d connections, want %d", noKeepAlive, accepted, want)
		}
	}
}
