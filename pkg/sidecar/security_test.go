package sidecar

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/athenz-injector/athenz-injector/pkg/sidecar/identity"
	"github.com/athenz-injector/athenz-injector/pkg/tokens"
	"github.com/athenz-injector/athenz-injector/pkg/tokens/ztsfake"
)

// Security properties of the sidecar. Some are covered elsewhere and not
// repeated here:
//   - the configuration refuses a non-loopback ATHENZ_LISTEN or proxy
//     listener (0.0.0.0, ":8081", a Pod IP, a name) without
//     ATHENZ_LISTEN_ALLOW_REMOTE: TestConfigErrors;
//   - the proxy answers 403 for an upstream outside
//     ATHENZ_PROXY_ALLOWED_HOSTS and the upstream never sees the request,
//     so no token leaves: TestProxyAllowedHosts;
//   - control headers (Athenz-Domain, Athenz-Role, Athenz-Proxy-Principal)
//     and hop-by-hop headers are not forwarded: TestProxy;
//   - request bodies over 64 KiB answer 413, with or without a
//     Content-Length: TestBadRequests;
//   - the health listener serves no token and does not proxy:
//     TestHealthListener;
//   - the log holds no token, key, CSR or attestation data:
//     cmd/sidecar's TestNoSecretsInLogs.

// TestTokenAPINotRemote: the token API listens on loopback by default, so
// it cannot be reached on the machine's other addresses.
func TestTokenAPINotRemote(t *testing.T) {
	defaults, err := ConfigFromEnv(nil)
	if err != nil {
		t.Fatal(err)
	}
	if defaults.Listen != "127.0.0.1:8081" || defaults.ListenAllowRemote {
		t.Fatalf("default ATHENZ_LISTEN %q (allow remote %v), want 127.0.0.1:8081 and loopback only", defaults.Listen, defaults.ListenAllowRemote)
	}
	zts := newZTS(t)
	// The default address with a free port: 127.0.0.1:0.
	f := startSidecar(t, zts, []string{"ATHENZ_PROXY_NTOKEN_LISTEN=127.0.0.1:0"}, nil)
	remote := nonLoopbackAddrs(t)
	for name, addr := range map[string]string{"ATHENZ_LISTEN": f.srv.Addrs().API, "ATHENZ_PROXY_NTOKEN_LISTEN": f.srv.Addrs().NTokenProxy} {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatal(err)
		}
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			t.Errorf("%s listens on %s, want a loopback address", name, addr)
		}
		if len(remote) == 0 {
			// No other interface: the loopback listener above and the
			// configuration check (TestConfigErrors) are all there is.
			t.Logf("this machine has no non-loopback address; checked the listener address only")
			continue
		}
		for _, ip := range remote {
			c, err := net.DialTimeout("tcp", net.JoinHostPort(ip.String(), port), time.Second)
			if err == nil {
				c.Close()
				t.Errorf("%s: connected to %s on the machine's address %s, want it unreachable", name, port, ip)
				continue
			}
			if errors.Is(err, syscall.ECONNREFUSED) {
				t.Logf("%s: port %s on the machine's address %s refuses connections", name, port, ip)
			} else {
				t.Logf("%s: port %s on %s is not reachable: %v", name, port, ip, err)
			}
		}
	}
}

// nonLoopbackAddrs returns the machine's unicast addresses other than
// loopback and link-local ones.
func nonLoopbackAddrs(t *testing.T) []net.IP {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Logf("listing interface addresses: %v", err)
		return nil
	}
	var out []net.IP
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok || n.IP.IsLoopback() || n.IP.IsLinkLocalUnicast() || n.IP.IsMulticast() || n.IP.IsUnspecified() {
			continue
		}
		out = append(out, n.IP)
	}
	return out
}

// TestProxyChecksURLHostNotHostHeader: the allow-list applies to the host
// the request goes to, the URL's, whatever the Host header says.
func TestProxyChecksURLHostNotHostHeader(t *testing.T) {
	zts := newZTS(t)
	upstream, hits := countingEcho(t)
	f := startSidecar(t, zts, []string{"ATHENZ_PROXY_ALLOWED_HOSTS=allowed.example"}, nil)
	conn, err := net.Dial("tcp", f.srv.Addrs().API)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET %s/x HTTP/1.1\r\nHost: allowed.example\r\n\r\n", upstream.URL)
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden {
		t.Errorf("GET %s with Host: allowed.example = %d %s, want 403", upstream.URL, res.StatusCode, b)
	}
	if hits.Load() != 0 {
		t.Errorf("the upstream saw %d requests, want none", hits.Load())
	}
}

// TestHeaderSizeBounded: a request whose headers exceed MaxHeaderBytes
// (64 KiB) answers 431 on every listener, before any handler runs.
func TestHeaderSizeBounded(t *testing.T) {
	zts := newZTS(t)
	upstream, hits := countingEcho(t)
	f := startSidecar(t, zts, []string{"ATHENZ_PROXY_ROLETOKEN_LISTEN=127.0.0.1:0"}, nil)
	a := f.srv.Addrs()
	big := strings.Repeat("a", 100<<10)
	for _, tt := range []struct{ listener, addr, target string }{
		{"ATHENZ_LISTEN", a.API, "/roletoken?domain=prov"},
		{"ATHENZ_LISTEN proxy", a.API, upstream.URL + "/x"},
		{"ATHENZ_PROXY_ROLETOKEN_LISTEN", a.RoleTokenProxy, upstream.URL + "/x"},
		{"ATHENZ_HEALTH_LISTEN", a.Health, "/metrics"},
	} {
		conn, err := net.Dial("tcp", tt.addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		// Written whole before reading: the sidecar answers once it has
		// read past its limit, and the kernel buffers the rest.
		go fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\nAthenz-Domain: prov\r\nX-Big: %s\r\n\r\n", tt.target, big)
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Errorf("%s: reading the answer to a 100 KiB header: %v", tt.listener, err)
			conn.Close()
			continue
		}
		res.Body.Close()
		conn.Close()
		if res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("%s: 100 KiB header = %d, want 431", tt.listener, res.StatusCode)
		}
	}
	if hits.Load() != 0 {
		t.Errorf("the upstream saw %d requests, want none", hits.Load())
	}
	// Just under the limit is served.
	r := do(t, nil, "GET", f.api+"/roletoken?domain=prov&role=reader", "", "", http.Header{"X-Big": {strings.Repeat("a", 60<<10)}})
	if r.status != 200 {
		t.Errorf("GET /roletoken with a 60 KiB header = %d %s, want 200", r.status, r.body)
	}
}

// TestIdentityFileModes: in the identity directory the key is 0640 (or
// ATHENZ_IDENTITY_KEY_MODE), certificates and the CA bundle 0644; nothing
// is group- or world-writable or executable, no temporary file is left,
// and a renewal keeps the modes.
func TestIdentityFileModes(t *testing.T) {
	for _, tt := range []struct {
		name    string
		env     []string
		keyMode fs.FileMode
	}{
		{name: "default", keyMode: 0o640},
		{name: "ATHENZ_IDENTITY_KEY_MODE=0600", env: []string{"ATHENZ_IDENTITY_KEY_MODE=0600"}, keyMode: 0o600},
	} {
		t.Run(tt.name, func(t *testing.T) {
			clock := tokens.NewFakeClock(time.Now())
			zts := ztsfake.NewTest(t, ztsfake.Options{KeyType: "ec", Now: clock.Now, CertLifetime: 10 * time.Minute})
			zts.Grant("prov", "reader", testDomain+"."+testService)
			env, dir := copperArgosEnv(t, zts)
			env = append(append([]string{"ATHENZ_ROLE_CERTS=prov:role.reader", "ATHENZ_ROTATE_KEY=true"}, tt.env...), env...)
			f := startWithEnv(t, zts, env, nil, func(c *Config) { c.Clock = clock })
			waitReady(t, f)
			want := map[string]fs.FileMode{
				identity.KeyFileName:  tt.keyMode,
				identity.CertFileName: 0o644,
				identity.CAFileName:   0o644,
				identity.RoleCertFileName(tokens.Target{Domain: "prov", Role: "reader"}): 0o644,
			}
			check := func(when string) {
				t.Helper()
				entries, err := os.ReadDir(dir)
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range entries {
					fi, err := e.Info()
					if err != nil {
						t.Fatal(err)
					}
					mode, ok := want[e.Name()]
					switch {
					case !ok:
						t.Errorf("%s: unexpected file %s (%v) in the identity directory", when, e.Name(), fi.Mode())
					case fi.Mode() != mode:
						t.Errorf("%s: %s has mode %v, want %v", when, e.Name(), fi.Mode(), mode)
					}
					if fi.Mode().Perm()&0o133 != 0 {
						t.Errorf("%s: %s mode %v is group- or world-writable or executable", when, e.Name(), fi.Mode())
					}
				}
				if len(entries) != len(want) {
					t.Errorf("%s: %d files in %s, want %d", when, len(entries), filepath.Base(dir), len(want))
				}
			}
			check("after start")
			key := readPEM(t, filepath.Join(dir, identity.KeyFileName))
			// Renewal with a new key (ATHENZ_ROTATE_KEY) rewrites every file.
			renewals := f.srv.metrics.identity().Renewals
			for i := 0; f.srv.metrics.identity().Renewals == renewals; i++ {
				if i > 100 {
					t.Fatal("no renewal within 10 simulated minutes")
				}
				clock.Advance(6 * time.Second)
				settle(t, f, clock)
			}
			waitReady(t, f)
			if readPEM(t, filepath.Join(dir, identity.KeyFileName)) == key {
				t.Fatalf("the key did not change with ATHENZ_ROTATE_KEY=true")
			}
			check("after a renewal with a new key")
		})
	}
}

// TestReadyzDetailOnlyOnLoopback (issue 13, point 3): the health listener
// is on every interface; a caller from the network gets /readyz's status
// code and nothing that names ZTS, its URL, its errors or the prefetched
// roles; a caller on loopback (kubectl exec, the app) gets the reason.
// Tested on the handler with a RemoteAddr from the network (192.0.2.10,
// TEST-NET-1), and over a real connection to the health listener on each
// non-loopback address of this machine, if it has one.
func TestReadyzDetailOnlyOnLoopback(t *testing.T) {
	zts := newZTS(t)
	zts.SetFailure(ztsfake.EndpointAccessToken, ztsfake.Failure{Status: http.StatusForbidden, Message: "principal client.api is not included in the requested role(s) in domain prov"})
	remote := nonLoopbackAddrs(t)
	health := "127.0.0.1:0"
	if len(remote) > 0 {
		health = net.JoinHostPort(remote[0].String(), "0")
	}
	f := startSidecar(t, zts, []string{"ATHENZ_PREFETCH=prov:role.reader", "ATHENZ_HEALTH_LISTEN=" + health}, nil)
	secrets := []string{"prov", "reader", zts.URL(), strings.TrimPrefix(zts.URL(), "https://"), "principal", "client.api", "zts"}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(string(do(t, nil, "GET", f.api+"/readyz", "", "", nil).body), "not included") {
		if time.Now().After(deadline) {
			t.Fatal("/readyz on loopback never reported the refused prefetch")
		}
		time.Sleep(20 * time.Millisecond)
	}

	check := func(t *testing.T, r response, fromNetwork bool) {
		t.Helper()
		if r.status != http.StatusServiceUnavailable {
			t.Fatalf("/readyz = %d %s, want 503 while the prefetch is refused", r.status, r.body)
		}
		msg := r.errorMessage(t)
		if !fromNetwork {
			if !strings.Contains(msg, "access token prov:role.reader") || !strings.Contains(msg, "not included") {
				t.Errorf("/readyz from loopback: %q, want the reason (the token and ZTS's refusal)", msg)
			}
			return
		}
		for _, s := range secrets {
			if strings.Contains(strings.ToLower(string(r.body)), strings.ToLower(s)) {
				t.Errorf("/readyz from the network: %s, which shows %q", r.body, s)
			}
		}
	}
	t.Run("handler, RemoteAddr from the network", func(t *testing.T) {
		for _, tc := range []struct {
			remote      string
			fromNetwork bool
		}{{"192.0.2.10:4711", true}, {"[2001:db8::1]:4711", true}, {"127.0.0.1:4711", false}, {"[::1]:4711", false}} {
			req := httptest.NewRequest("GET", "/readyz", nil)
			req.RemoteAddr = tc.remote
			rec := httptest.NewRecorder()
			healthHandler{f.srv.handler}.ServeHTTP(rec, req)
			check(t, response{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}, tc.fromNetwork)
		}
	})
	t.Run("listener on the machine's address", func(t *testing.T) {
		if len(remote) == 0 {
			t.Logf("this machine has no non-loopback address; the handler test above covers the remote caller")
			return
		}
		check(t, do(t, nil, "GET", "http://"+f.srv.Addrs().Health+"/readyz", "", "", nil), true)
	})
	if r := do(t, nil, "GET", f.api+"/readyz", "", "", nil); r.status == http.StatusServiceUnavailable {
		check(t, r, false)
	}
}
