package sidecar

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/athenz-injector/athenz-injector/pkg/tokens"
)

// certIdentity is stubIdentity with a client certificate.
type certIdentity struct {
	stubIdentity
	cert *tls.Certificate
}

func (c certIdentity) ClientCertificate() (*tls.Certificate, error) { return c.cert, nil }

// BenchmarkProxyTLSOrigination compares, in one run, a Go http.Client
// calling an mTLS upstream directly with a certificate and a role token
// against the app's plain HTTP through the proxy, which adds the role
// token and originates TLS with the same certificate; everything in this
// process, over loopback, HTTP/2 to the upstream in both. make bench runs
// test/load/tlsorigin, with the sidecar and the upstream as processes of
// their own, for the figures in docs/performance.md; this is the quick
// check, and the one to profile.
func BenchmarkProxyTLSOrigination(b *testing.B) {
	ca := newTestCA(b)
	now := time.Now()
	client := ca.client(b, now.Add(-time.Hour), now.Add(time.Hour), "bench.client")
	body := []byte(`{"orders":"` + strings.Repeat("x", 499) + `"}`)
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Athenz-Role-Auth") == "" || len(r.TLS.PeerCertificates) == 0 {
			http.Error(w, "no credentials", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	up.EnableHTTP2 = true
	up.TLS = &tls.Config{Certificates: []tls.Certificate{ca.server(b, now.Add(-time.Hour), now.Add(time.Hour), "127.0.0.1")},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.pool(), MinVersion: tls.VersionTLS12}
	up.StartTLS()
	b.Cleanup(up.Close)
	target := strings.TrimPrefix(up.URL, "https://")

	caFile := writeFile(b, b.TempDir(), "ca.pem", ca.pem)
	roots, err := newTLSRoots(Config{ProxyTLSCA: []string{caFile}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	tlsHosts, _ := newHostMatcher([]string{"127.0.0.1"})
	stub := stubHandler(b)
	h := newHandler(logr.Discard(), stub.cache, certIdentity{cert: &client}, tokens.RealClock{}, upstreamOptions{tls: tlsHosts, roots: roots},
		stub.ready, stub.metrics, stub.timeouts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: apiHandler{h}}
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() { srv.Close() })
	proxyURL, _ := url.Parse("http://" + ln.Addr().String())

	const conns = 16
	for _, c := range []struct {
		name   string
		tr     *http.Transport
		url    string
		header http.Header
	}{
		{"direct", &http.Transport{TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{client}, RootCAs: ca.pool(), MinVersion: tls.VersionTLS12},
			ForceAttemptHTTP2: true, MaxIdleConnsPerHost: conns}, "https://" + target + "/orders", http.Header{"Athenz-Role-Auth": {"v=Z1;d=prov;r=reader;s=" + sigFiller}}},
		{"proxy", &http.Transport{Proxy: http.ProxyURL(proxyURL), MaxIdleConnsPerHost: conns}, "http://" + target + "/orders",
			http.Header{"Athenz-Domain": {"prov"}, "Athenz-Role": {"reader"}}},
	} {
		b.Run(c.name, func(b *testing.B) {
			defer c.tr.CloseIdleConnections()
			cl := &http.Client{Transport: c.tr}
			get := func() error {
				req, _ := http.NewRequest(http.MethodGet, c.url, nil)
				req.Header = c.header.Clone()
				res, err := cl.Do(req)
				if err != nil {
					return err
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusOK {
					return &HTTPError{Code: res.StatusCode, Msg: res.Status}
				}
				return nil
			}
			if err := get(); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetParallelism(conns / 2)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := get(); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
