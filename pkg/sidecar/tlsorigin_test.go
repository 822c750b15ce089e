package sidecar

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"maps"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/athenz-injector/athenz-injector/pkg/tokens"
	"github.com/athenz-injector/athenz-injector/pkg/tokens/ztsfake"
)

// testCA is a CA of the test, for upstream certificates the sidecar
// trusts only through ATHENZ_PROXY_TLS_CA, or not at all.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "upstream test CA"},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(48 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// server issues a serving certificate for hosts valid from notBefore to
// notAfter.
func (ca *testCA) server(t testing.TB, notBefore, notAfter time.Time, hosts ...string) tls.Certificate {
	t.Helper()
	return ca.issue(t, notBefore, notAfter, x509.ExtKeyUsageServerAuth, hosts...)
}

// client issues a client certificate with common name cn.
func (ca *testCA) client(t testing.TB, notBefore, notAfter time.Time, cn string) tls.Certificate {
	t.Helper()
	return ca.issue(t, notBefore, notAfter, x509.ExtKeyUsageClientAuth, cn)
}

func (ca *testCA) issue(t testing.TB, notBefore, notAfter time.Time, usage x509.ExtKeyUsage, hosts ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: hosts[0]},
		NotBefore: notBefore, NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{usage},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// seen is what mtlsUpstream answers: what the client presented and sent.
type seen struct {
	CN     string      `json:"cn"`
	Serial string      `json:"serial"`
	URIs   []string    `json:"uris"`
	Proto  string      `json:"proto"`
	SNI    string      `json:"sni"`
	Header http.Header `json:"header"`
}

// mtlsUpstream is an Athenz-protected HTTPS service: it requires a client
// certificate of clientCAs (verified on the clock now, ZTS's in the
// test), and when wantURI is set answers 403 unless the certificate has
// that SAN URI; else it answers what it saw.
type mtlsUpstream struct {
	*httptest.Server
	requests atomic.Int32 // requests that reached the handler
	conns    atomic.Int32 // connections accepted
}

func startMTLSUpstream(t *testing.T, cert tls.Certificate, clientCAs *x509.CertPool, now func() time.Time, http2 bool, wantURI string) *mtlsUpstream {
	t.Helper()
	u := &mtlsUpstream{}
	u.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.requests.Add(1)
		leaf := r.TLS.PeerCertificates[0]
		s := seen{CN: leaf.Subject.CommonName, Serial: leaf.SerialNumber.Text(16), Proto: r.Proto, SNI: r.TLS.ServerName, Header: r.Header}
		for _, uri := range leaf.URIs {
			s.URIs = append(s.URIs, uri.String())
		}
		if wantURI != "" && !slices.Contains(s.URIs, wantURI) {
			http.Error(w, "principal not allowed", http.StatusForbidden)
			return
		}
		_ = json.NewEncoder(w).Encode(s)
	}))
	u.EnableHTTP2 = http2
	u.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			u.conns.Add(1)
		}
	}
	u.TLS = &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    clientCAs,
		MinVersion:   tls.VersionTLS12,
		Time:         now,
	}
	u.StartTLS()
	t.Cleanup(u.Close)
	return u
}

// hostport is the upstream's address, for http://<hostport>/ requests.
func (u *mtlsUpstream) hostport() string { return strings.TrimPrefix(u.URL, "https://") }

func decodeSeen(t *testing.T, r response) seen {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("proxied request = %d %s, want 200", r.status, r.body)
	}
	var s seen
	r.json(t, &s)
	return s
}

// TestProxyTLSOriginationRotation (acceptance): an upstream that requires
// a client certificate from ZTS's CA and checks the Pod's SAN URI answers
// an app request sent as plain HTTP through the proxy, over HTTP/2 on one
// connection, and sees Athenz-Role-Auth. The certificate rotates (10 min
// lifetime in the fake ZTS) while requests keep going: none fails, and
// the first request once the new certificate is in place presents it.
func TestProxyTLSOriginationRotation(t *testing.T) {
	clock := tokens.NewFakeClock(time.Now())
	zts := ztsfake.NewTest(t, ztsfake.Options{KeyType: "ec", Now: clock.Now, CertLifetime: 10 * time.Minute})
	zts.Grant("prov", "reader", testDomain+"."+testService)
	serverCert, err := zts.IssueServer("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	wantURI := "spiffe://" + testDomain + "/sa/" + testService
	up := startMTLSUpstream(t, serverCert, zts.CAPool(), clock.Now, true, wantURI)
	env, _ := copperArgosEnv(t, zts)
	f := startWithEnv(t, zts, append([]string{"ATHENZ_PROXY_TLS_HOSTS=127.0.0.1"}, env...), nil, func(c *Config) { c.Clock = clock })
	waitReady(t, f)
	client := proxyClient(t, strings.TrimPrefix(f.api, "http://"), "/proxy/roletoken")
	roleHeaders := http.Header{"Athenz-Domain": {"prov"}, "Athenz-Role": {"reader"}}
	target := "http://" + up.hostport() + "/data"

	first := svccertLeaf(t, f)
	s := decodeSeen(t, do(t, client, "GET", target, "", "", roleHeaders))
	if s.Serial != first.SerialNumber.Text(16) || !slices.Contains(s.URIs, wantURI) {
		t.Fatalf("upstream saw certificate %s with URIs %v, want the identity %s with %s", s.Serial, s.URIs, first.SerialNumber.Text(16), wantURI)
	}
	if rt := s.Header.Get("Athenz-Role-Auth"); !strings.HasPrefix(rt, "v=Z1;d=prov;r=reader;") {
		t.Errorf("upstream saw Athenz-Role-Auth %q, want a role token for prov:reader", rt)
	}
	for _, h := range []string{"Athenz-Domain", "Athenz-Role"} {
		if _, ok := s.Header[h]; ok {
			t.Errorf("upstream saw the control header %s", h)
		}
	}
	if s.Proto != "HTTP/2.0" {
		t.Errorf("upstream saw %s, want HTTP/2.0 (it offers h2)", s.Proto)
	}

	// Requests go on, one after the other, while the clock moves to the
	// renewal (2/3 of the lifetime, with jitter).
	var (
		mu      sync.Mutex
		serials = map[string]int{}
		fails   []string
		stop    = make(chan struct{})
		done    = make(chan struct{})
	)
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			req, _ := http.NewRequest("GET", target, nil)
			req.Header = roleHeaders.Clone()
			res, err := client.Do(req)
			mu.Lock()
			if err != nil {
				fails = append(fails, err.Error())
			} else {
				var s seen
				if res.StatusCode != http.StatusOK || json.NewDecoder(res.Body).Decode(&s) != nil {
					fails = append(fails, res.Status)
				}
				serials[s.Serial]++
				res.Body.Close()
			}
			mu.Unlock()
		}
	}()
	settle(t, f, clock)
	var second *x509.Certificate
	for second == nil {
		clock.Advance(10 * time.Second)
		settle(t, f, clock)
		if leaf := svccertLeaf(t, f); leaf.SerialNumber.Cmp(first.SerialNumber) != 0 {
			second = leaf
		}
		if clock.Now().After(first.NotAfter) {
			t.Fatal("the certificate did not rotate before it expired")
		}
	}
	s = decodeSeen(t, do(t, client, "GET", target, "", "", roleHeaders))
	if s.Serial != second.SerialNumber.Text(16) {
		t.Errorf("the first request after the rotation presented certificate %s (the old one: %v), want the new one %s",
			s.Serial, s.Serial == first.SerialNumber.Text(16), second.SerialNumber.Text(16))
	}
	time.Sleep(50 * time.Millisecond) // a few more requests of the loop with the new certificate
	close(stop)
	<-done
	mu.Lock()
	defer mu.Unlock()
	t.Logf("during the rotation: %d requests presented the old certificate, %d the new one, %d failed; upstream connections: %d",
		serials[first.SerialNumber.Text(16)], serials[second.SerialNumber.Text(16)], len(fails), up.conns.Load())
	if len(fails) > 0 {
		t.Errorf("%d requests failed during the rotation, want none: %v", len(fails), fails[:min(len(fails), 5)])
	}
	for serial := range serials {
		if serial != first.SerialNumber.Text(16) && serial != second.SerialNumber.Text(16) {
			t.Errorf("a request presented certificate %s, neither the first nor the second", serial)
		}
	}
	if n := up.conns.Load(); n > 3 {
		t.Errorf("upstream accepted %d connections for two certificates over HTTP/2, want them reused (at most 3)", n)
	}
}

// TestProxyTLSUpstreamVerified (acceptance): the upstream's certificate is
// always verified: one from a CA the proxy does not trust, an expired one
// and one for another host get the app a 502 whose message names the
// cause, and the upstream gets no request; so do an upstream that refuses
// the Pod's certificate and one that does not speak TLS.
func TestProxyTLSUpstreamVerified(t *testing.T) {
	zts := newZTS(t)
	trusted, untrusted := newTestCA(t), newTestCA(t)
	caFile := writeFile(t, t.TempDir(), "upstream-ca.pem", trusted.pem)
	now := time.Now()
	valid := func(hosts ...string) tls.Certificate {
		return trusted.server(t, now.Add(-time.Hour), now.Add(time.Hour), hosts...)
	}
	tests := []struct {
		name      string
		cert      tls.Certificate
		clientCAs *x509.CertPool
		plain     bool // a plain HTTP upstream
		wantMsg   []string
	}{
		{name: "trusted", cert: valid("127.0.0.1"), clientCAs: zts.CAPool()},
		{name: "unknown CA", cert: untrusted.server(t, now.Add(-time.Hour), now.Add(time.Hour), "127.0.0.1"), clientCAs: zts.CAPool(),
			wantMsg: []string{"not signed by a CA the proxy trusts", "ATHENZ_PROXY_TLS_CA=system,zts," + caFile, "no request was sent"}},
		{name: "expired", cert: trusted.server(t, now.Add(-2*time.Hour), now.Add(-time.Hour), "127.0.0.1"), clientCAs: zts.CAPool(),
			wantMsg: []string{"not valid now (expired or not yet valid)", "expired", "no request was sent"}},
		{name: "not yet valid", cert: trusted.server(t, now.Add(time.Hour), now.Add(2*time.Hour), "127.0.0.1"), clientCAs: zts.CAPool(),
			wantMsg: []string{"not valid now (expired or not yet valid)", "no request was sent"}},
		{name: "another host", cert: valid("10.9.9.9", "api.example.com"), clientCAs: zts.CAPool(),
			wantMsg: []string{"its certificate is for another host", "127.0.0.1", "no request was sent"}},
		{name: "refuses the Pod's certificate", cert: valid("127.0.0.1"), clientCAs: untrusted.pool(),
			wantMsg: []string{"ended the TLS connection", "does it accept the certificate the proxy presented"}},
		{name: "plain HTTP upstream", plain: true, wantMsg: []string{"does not speak TLS on that port"}},
	}
	f := startSidecar(t, zts, []string{"ATHENZ_PROXY_TLS_HOSTS=127.0.0.1", "ATHENZ_PROXY_TLS_CA=system,zts," + caFile}, nil)
	client := proxyClient(t, strings.TrimPrefix(f.api, "http://"), "/proxy/ntoken")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hostport string
			var requests *atomic.Int32
			if tt.plain {
				srv, n := countingEcho(t)
				hostport, requests = strings.TrimPrefix(srv.URL, "http://"), n
			} else {
				up := startMTLSUpstream(t, tt.cert, tt.clientCAs, time.Now, false, "")
				hostport, requests = up.hostport(), &up.requests
			}
			r := do(t, client, "GET", "http://"+hostport+"/secret", "", "", nil)
			if tt.wantMsg == nil {
				s := decodeSeen(t, r)
				if s.CN != testDomain+"."+testService || s.Header.Get("Athenz-Principal-Auth") == "" {
					t.Errorf("upstream saw client %q and Athenz-Principal-Auth %q, want the Pod's certificate and an N-token", s.CN, s.Header.Get("Athenz-Principal-Auth"))
				}
				return
			}
			msg := r.errorMessage(t)
			if r.status != http.StatusBadGateway {
				t.Errorf("status %d %q, want 502", r.status, msg)
			}
			for _, want := range tt.wantMsg {
				if !strings.Contains(msg, want) {
					t.Errorf("message %q, want it to contain %q", msg, want)
				}
			}
			if !strings.HasPrefix(msg, "upstream "+hostport+" over TLS: ") {
				t.Errorf("message %q, want it to start with the upstream and \"over TLS\"", msg)
			}
			if n := requests.Load(); n != 0 {
				t.Errorf("the upstream handled %d requests, want none", n)
			}
			t.Logf("502: %s", msg)
		})
	}
}

func (ca *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// TestProxyTLSControls: what an app and the operator choose: TLS for a
// host of ATHENZ_PROXY_TLS_HOSTS or per request with Athenz-Upstream-TLS,
// a role certificate with Athenz-Upstream-Role-Cert, SNI, an https://
// request in absolute form, the allow-list applied to the upstream
// actually called, and the refusals.
func TestProxyTLSControls(t *testing.T) {
	zts := newZTS(t)
	serverCert, err := zts.IssueServer("127.0.0.1", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	up := startMTLSUpstream(t, serverCert, zts.CAPool(), time.Now, false, "")
	_, port, _ := net.SplitHostPort(up.hostport())
	f := startSidecar(t, zts, []string{"ATHENZ_ROLE_CERTS=prov:role.reader", "ATHENZ_PROXY_ALLOWED_HOSTS=localhost,127.0.0.1:" + port}, nil)
	waitReady(t, f)
	api := strings.TrimPrefix(f.api, "http://")
	client := proxyClient(t, api, "/proxy/ntoken")

	tests := []struct {
		name       string
		url        string
		header     http.Header
		wantStatus int
		wantCN     string   // the client certificate the upstream saw
		wantMsg    []string // for errors
	}{
		{name: "per request", url: "http://" + up.hostport() + "/", header: http.Header{"Athenz-Upstream-Tls": {"true"}}, wantStatus: 200, wantCN: "client.api"},
		{name: "header case", url: "http://" + up.hostport() + "/", header: http.Header{"ATHENZ-UPSTREAM-TLS": {"TRUE"}}, wantStatus: 200, wantCN: "client.api"},
		{name: "role certificate", url: "http://" + up.hostport() + "/", header: http.Header{"Athenz-Upstream-Role-Cert": {"prov:role.reader"}}, wantStatus: 200, wantCN: "prov:role.reader"},
		{name: "SNI", url: "http://localhost:" + port + "/", header: http.Header{"Athenz-Upstream-Tls": {"1"}}, wantStatus: 200, wantCN: "client.api"},
		{name: "no TLS asked", url: "http://" + up.hostport() + "/", wantStatus: 400}, // the upstream answers plain HTTP on a TLS port with 400
		{name: "TLS header false", url: "http://" + up.hostport() + "/", header: http.Header{"Athenz-Upstream-Tls": {"false"}}, wantStatus: 400},
		{name: "bad TLS header", url: "http://" + up.hostport() + "/", header: http.Header{"Athenz-Upstream-Tls": {"yes please"}}, wantStatus: 400,
			wantMsg: []string{"invalid header Athenz-Upstream-TLS", "want true or false"}},
		{name: "role certificate not configured", url: "http://" + up.hostport() + "/", header: http.Header{"Athenz-Upstream-Role-Cert": {"prov:role.writer"}}, wantStatus: 400,
			wantMsg: []string{"Athenz-Upstream-Role-Cert", "prov:role.writer is not in ATHENZ_ROLE_CERTS"}},
		{name: "role certificate malformed", url: "http://" + up.hostport() + "/", header: http.Header{"Athenz-Upstream-Role-Cert": {"prov"}}, wantStatus: 400,
			wantMsg: []string{"invalid header Athenz-Upstream-Role-Cert"}},
		{name: "role certificate of a domain", url: "http://" + up.hostport() + "/", header: http.Header{"Athenz-Upstream-Role-Cert": {"prov:domain"}}, wantStatus: 400,
			wantMsg: []string{"invalid header Athenz-Upstream-Role-Cert", "<domain>:role.<role>"}},
		{name: "allow-list applies to port 443", url: "http://127.0.0.1/", header: http.Header{"Athenz-Upstream-Tls": {"true"}}, wantStatus: 403,
			wantMsg: []string{`upstream "127.0.0.1:443" is not in ATHENZ_PROXY_ALLOWED_HOSTS`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := up.requests.Load()
			r := do(t, client, "GET", tt.url, "", "", tt.header)
			if r.status != tt.wantStatus {
				t.Fatalf("GET %s with %v = %d %s, want %d", tt.url, tt.header, r.status, r.body, tt.wantStatus)
			}
			if tt.wantCN != "" {
				s := decodeSeen(t, r)
				if s.CN != tt.wantCN {
					t.Errorf("upstream saw client certificate %q, want %q", s.CN, tt.wantCN)
				}
				if tt.name == "SNI" && s.SNI != "localhost" {
					t.Errorf("upstream saw SNI %q, want localhost", s.SNI)
				}
				for _, h := range []string{"Athenz-Upstream-Tls", "Athenz-Upstream-Role-Cert"} {
					if _, ok := s.Header[h]; ok {
						t.Errorf("upstream saw the control header %s", h)
					}
				}
				return
			}
			if tt.wantMsg != nil {
				msg := r.errorMessage(t)
				for _, want := range tt.wantMsg {
					if !strings.Contains(msg, want) {
						t.Errorf("message %q, want it to contain %q", msg, want)
					}
				}
				if n := up.requests.Load() - before; n != 0 {
					t.Errorf("the upstream handled %d requests, want none", n)
				}
			}
		})
	}

	t.Run("https in absolute form", func(t *testing.T) {
		conn, err := net.Dial("tcp", api)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := io.WriteString(conn, "GET https://"+up.hostport()+"/abs HTTP/1.1\r\nHost: "+up.hostport()+"\r\nConnection: close\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		s := decodeSeen(t, response{status: res.StatusCode, header: res.Header, body: body})
		if s.CN != "client.api" {
			t.Errorf("upstream saw client certificate %q, want the Pod's", s.CN)
		}
	})

	t.Run("CONNECT says how", func(t *testing.T) {
		r := do(t, nil, "CONNECT", f.api, "", "", nil)
		if msg := r.errorMessage(t); r.status != http.StatusMethodNotAllowed || !strings.Contains(msg, "Athenz-Upstream-TLS: true") {
			t.Errorf("CONNECT = %d %q, want 405 pointing at Athenz-Upstream-TLS", r.status, msg)
		}
	})
}

// TestProxyTLSWithoutCertificate: with no certificate valid now (key-file
// mode that asks for none) a TLS-originated request is 503 saying why,
// and nothing reaches the upstream.
func TestProxyTLSWithoutCertificate(t *testing.T) {
	zts := newZTS(t)
	serverCert, err := zts.IssueServer("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	up := startMTLSUpstream(t, serverCert, zts.CAPool(), time.Now, false, "")
	f := startSidecar(t, zts, []string{"ATHENZ_KEY_FILE_CERT=off", "ATHENZ_PROXY_TLS_HOSTS=*"}, nil)
	client := proxyClient(t, strings.TrimPrefix(f.api, "http://"), "/proxy/ntoken")
	r := do(t, client, "GET", "http://"+up.hostport()+"/", "", "", nil)
	if msg := r.errorMessage(t); r.status != http.StatusServiceUnavailable || !strings.Contains(msg, "no certificate to present to the upstream") || !strings.Contains(msg, "ATHENZ_KEY_FILE_CERT=off") {
		t.Errorf("TLS-originated request without a certificate = %d %q, want 503 saying why", r.status, msg)
	}
	if n := up.requests.Load(); n != 0 {
		t.Errorf("the upstream handled %d requests, want none", n)
	}
}

// TestTLSRequestTarget: which requests are originated over TLS, the
// address dialled and the Host header sent.
func TestTLSRequestTarget(t *testing.T) {
	roots, err := newTLSRoots(Config{ProxyTLSCA: []string{CASystem}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	list, _ := parseHostList("api.example.com,*.tls.example:8443")
	tlsHosts, _ := newHostMatcher(list)
	h := stubHandler(t)
	h2 := newHandler(h.log, h.cache, h.identity, h.clock, upstreamOptions{tls: tlsHosts, roots: roots, roleCerts: []tokens.Target{{Domain: "prov", Role: "reader"}}},
		h.ready, h.metrics, h.timeouts)
	tests := []struct {
		url           string
		header        http.Header
		wantTLS       bool
		wantRole      string
		wantHostport  string
		wantHost      string
		wantErrPrefix string
	}{
		{url: "http://api.example.com/x", wantTLS: true, wantHostport: "api.example.com:443", wantHost: "api.example.com"},
		{url: "http://API.example.com:80/x", wantTLS: true, wantHostport: "API.example.com:443", wantHost: "API.example.com"},
		{url: "http://api.example.com:8443/x", wantTLS: true, wantHostport: "api.example.com:8443"},
		{url: "http://a.tls.example:8443/", wantTLS: true, wantHostport: "a.tls.example:8443"},
		{url: "http://a.tls.example/", wantHostport: "a.tls.example"},
		{url: "http://other.example/", wantHostport: "other.example"},
		{url: "http://other.example/", header: http.Header{"Athenz-Upstream-Tls": {"true"}}, wantTLS: true, wantHostport: "other.example:443", wantHost: "other.example"},
		{url: "http://api.example.com/", header: http.Header{"Athenz-Upstream-Tls": {"false"}}, wantTLS: true, wantHostport: "api.example.com:443", wantHost: "api.example.com"},
		{url: "http://[::1]/", header: http.Header{"Athenz-Upstream-Tls": {"true"}}, wantTLS: true, wantHostport: "[::1]:443", wantHost: "[::1]"},
		{url: "http://[::1]:80/", header: http.Header{"Athenz-Upstream-Tls": {"true"}}, wantTLS: true, wantHostport: "[::1]:443", wantHost: "[::1]"},
		{url: "https://secure.example/", wantTLS: true, wantHostport: "secure.example"},
		{url: "http://other.example/", header: http.Header{"Athenz-Upstream-Role-Cert": {"prov:role.reader"}}, wantTLS: true, wantRole: "prov:role.reader",
			wantHostport: "other.example:443", wantHost: "other.example"},
		{url: "http://other.example/", header: http.Header{"Athenz-Upstream-Role-Cert": {"prov:role.writer"}}, wantErrPrefix: "400 proxy: header Athenz-Upstream-Role-Cert"},
		{url: "http://other.example/", header: http.Header{"Athenz-Upstream-Tls": {"2"}}, wantErrPrefix: "400 proxy: invalid header Athenz-Upstream-TLS"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", tt.url, nil)
		maps.Copy(r.Header, tt.header)
		up, err := h2.target(r)
		if tt.wantErrPrefix != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tt.wantErrPrefix) {
				t.Errorf("%s %v: error %v, want one starting %q", tt.url, tt.header, err, tt.wantErrPrefix)
			}
			continue
		}
		gotRole := ""
		if up.role != nil {
			gotRole = up.role.String()
		}
		if err != nil || up.tls != tt.wantTLS || gotRole != tt.wantRole || up.hostport != tt.wantHostport || up.host != tt.wantHost {
			t.Errorf("%s %v: TLS %v role %q dial %q Host %q (%v), want TLS %v role %q dial %q Host %q",
				tt.url, tt.header, up.tls, gotRole, up.hostport, up.host, err, tt.wantTLS, tt.wantRole, tt.wantHostport, tt.wantHost)
		}
	}
}
