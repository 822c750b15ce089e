package provider_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/athenz-injector/athenz-injector/pkg/webhook/provider"
)

// testCA is a throwaway certificate authority.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a certificate for cn (and 127.0.0.1) signed by the CA.
func (ca *testCA) issue(t *testing.T, cn string, usage x509.ExtKeyUsage) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func (ca *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// serve runs a Server on a loopback port until the test ends and returns
// its address.
func serve(t *testing.T, s *provider.Server) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve returned %v after its context ended, want nil", err)
		}
	})
	deadline := time.Now().Add(5 * time.Second)
	for s.Started(nil) != nil {
		if time.Now().After(deadline) {
			t.Fatal("server did not start")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return l.Addr().String()
}

// call POSTs to the server at addr as a client with certs (none if nil),
// trusting roots.
func call(t *testing.T, addr string, roots *x509.CertPool, certs ...tls.Certificate) (*http.Response, error) {
	t.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: roots, Certificates: certs, MinVersion: tls.VersionTLS12}
	tr.ForceAttemptHTTP2 = true
	t.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	resp, err := c.Post("https://"+addr+provider.PathInstance, "application/json", strings.NewReader("{}"))
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	return resp, err
}

func TestServer(t *testing.T) {
	serverCA, zts, other := newCA(t, "server CA"), newCA(t, "ZTS CA"), newCA(t, "other CA")
	serving := serverCA.issue(t, providerName, x509.ExtKeyUsageServerAuth)
	getCert := func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &serving, nil }
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })

	t.Run("no client certificate asked", func(t *testing.T) {
		s, err := provider.NewServer(provider.ServerOptions{Handler: ok, GetCertificate: getCert})
		if err != nil {
			t.Fatal(err)
		}
		if s.NeedLeaderElection() {
			t.Error("NeedLeaderElection() = true, want false: every replica serves")
		}
		if s.Started(nil) == nil {
			t.Error("Started before Serve = nil, want an error")
		}
		addr := serve(t, s)
		resp, err := call(t, addr, serverCA.pool())
		if err != nil {
			t.Fatalf("POST without a client certificate: %v", err)
		}
		if resp.StatusCode != http.StatusTeapot || resp.Proto != "HTTP/1.1" {
			t.Errorf("POST: %d %s, want the handler's 418 over HTTP/1.1", resp.StatusCode, resp.Proto)
		}
	})

	t.Run("client certificate required", func(t *testing.T) {
		caFile := filepath.Join(t.TempDir(), "zts-ca.pem")
		if err := os.WriteFile(caFile, zts.pem, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := provider.NewServer(provider.ServerOptions{Handler: ok, GetCertificate: getCert, ClientCAFile: caFile})
		if err != nil {
			t.Fatal(err)
		}
		addr := serve(t, s)
		if _, err := call(t, addr, serverCA.pool()); err == nil {
			t.Error("POST without a client certificate succeeded, want a TLS error")
		}
		if _, err := call(t, addr, serverCA.pool(), other.issue(t, "zts.example.com", x509.ExtKeyUsageClientAuth)); err == nil {
			t.Error("POST with a certificate of another CA succeeded, want a TLS error")
		}
		resp, err := call(t, addr, serverCA.pool(), zts.issue(t, "zts.example.com", x509.ExtKeyUsageClientAuth))
		if err != nil || resp.StatusCode != http.StatusTeapot {
			t.Fatalf("POST with ZTS's certificate: %v %v, want 418", resp, err)
		}

		// The bundle is read again when it changes.
		if err := os.WriteFile(caFile, other.pem, 0o600); err != nil {
			t.Fatal(err)
		}
		later := time.Now().Add(time.Minute)
		if err := os.Chtimes(caFile, later, later); err != nil {
			t.Fatal(err)
		}
		if _, err := call(t, addr, serverCA.pool(), other.issue(t, "zts.example.com", x509.ExtKeyUsageClientAuth)); err != nil {
			t.Errorf("POST with a certificate of the new CA: %v", err)
		}
		if _, err := call(t, addr, serverCA.pool(), zts.issue(t, "zts.example.com", x509.ExtKeyUsageClientAuth)); err == nil {
			t.Error("POST with a certificate of the replaced CA succeeded, want a TLS error")
		}
	})

	t.Run("options", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "bad.pem")
		if err := os.WriteFile(bad, []byte("not PEM"), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, tt := range []struct {
			name string
			o    provider.ServerOptions
			want string
		}{
			{"no handler", provider.ServerOptions{GetCertificate: getCert}, "Handler is required"},
			{"no certificate", provider.ServerOptions{Handler: ok}, "GetCertificate is required"},
			{"missing CA file", provider.ServerOptions{Handler: ok, GetCertificate: getCert, ClientCAFile: filepath.Join(t.TempDir(), "none.pem")}, "--provider-client-ca-file"},
			{"CA file without certificates", provider.ServerOptions{Handler: ok, GetCertificate: getCert, ClientCAFile: bad}, "holds no PEM certificate"},
		} {
			if _, err := provider.NewServer(tt.o); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewServer (%s): %v, want an error containing %q", tt.name, err, tt.want)
			}
		}
		s, err := provider.NewServer(provider.ServerOptions{Handler: ok, GetCertificate: getCert})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start(t.Context()); err == nil || !strings.Contains(err.Error(), "--provider-bind-address") {
			t.Errorf("Start without Addr: %v, want an error naming --provider-bind-address", err)
		}
		s, err = provider.NewServer(provider.ServerOptions{Addr: "127.0.0.1:0", Handler: ok, GetCertificate: getCert})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- s.Start(ctx) }()
		for deadline := time.Now().Add(5 * time.Second); s.Started(nil) != nil; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				cancel()
				t.Fatalf("Start did not start serving: %v", <-done)
			}
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Start after cancel: %v, want nil", err)
		}
	})
}
