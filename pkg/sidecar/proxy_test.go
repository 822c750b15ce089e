package sidecar

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/AthenZ/athenz/libs/go/zmssvctoken"
)

// proxyClient returns a client whose requests go through proxyAddr
// ("host:port") in absolute form, as the seed's Transport.Proxy examples.
func proxyClient(t *testing.T, proxyAddr, path string) *http.Client {
	t.Helper()
	u, err := url.Parse("http://" + proxyAddr + path)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{Proxy: http.ProxyURL(u)}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// countingEcho is echoServer that also counts requests.
func countingEcho(t *testing.T) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		_ = json.NewEncoder(w).Encode(echo{Method: r.Method, Path: r.URL.RequestURI(), Header: r.Header})
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestProxy(t *testing.T) {
	zts := newZTS(t)
	upstream, hits := countingEcho(t)
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	f := startSidecar(t, zts, []string{
		"ATHENZ_PROXY_NTOKEN_LISTEN=127.0.0.1:0",
		"ATHENZ_PROXY_ROLETOKEN_LISTEN=127.0.0.1:0",
	}, nil)
	addrs := f.srv.Addrs()
	api := strings.TrimPrefix(f.api, "http://")
	validator, err := zmssvctoken.NewPubKeyTokenValidator(f.pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	wantNToken := func(t *testing.T, got echo) {
		t.Helper()
		if _, err := validator.Validate(got.Header.Get("Athenz-Principal-Auth")); err != nil {
			t.Errorf("upstream's Athenz-Principal-Auth does not validate: %v", err)
		}
	}
	wantRoleToken := func(t *testing.T, got echo) {
		t.Helper()
		if rt := got.Header.Get("Athenz-Role-Auth"); !strings.HasPrefix(rt, "v=Z1;d=prov;r=reader;") {
			t.Errorf("upstream's Athenz-Role-Auth %q, want a role token for prov:reader", rt)
		}
		if got.Header.Get("Athenz-Principal-Auth") != "" {
			t.Errorf("upstream saw Athenz-Principal-Auth with a role token")
		}
	}
	roleHeaders := http.Header{"Athenz-Domain": {"prov"}, "Athenz-Role": {"reader"}}

	tests := []struct {
		name       string
		proxy      string // host:port of the proxy
		target     string
		header     http.Header
		wantStatus int
		wantMsg    string // for errors
		check      func(t *testing.T, got echo)
		wantHit    bool // whether the upstream must see the request
	}{
		{name: "api listener n-token", proxy: api, target: upstream.URL + "/x", wantStatus: 200, check: wantNToken, wantHit: true},
		{name: "api listener role token", proxy: api, target: upstream.URL + "/x", header: roleHeaders, wantStatus: 200, check: wantRoleToken, wantHit: true},
		{name: "api listener upstream path /ntoken", proxy: api, target: upstream.URL + "/ntoken", wantStatus: 200, wantHit: true,
			check: func(t *testing.T, got echo) {
				if got.Path != "/ntoken" {
					t.Errorf("upstream saw path %q, want /ntoken", got.Path)
				}
			}},
		{
			name: "hop-by-hop headers stripped", proxy: api, target: upstream.URL + "/x", wantStatus: 200, wantHit: true,
			header: http.Header{
				"Connection": {"X-Private"}, "X-Private": {"1"}, "Proxy-Authorization": {"Basic c2VjcmV0"},
				"Proxy-Connection": {"keep-alive"}, "Keep-Alive": {"timeout=5"}, "Te": {"gzip"}, "Upgrade": {"websocket"},
				"X-Forwarded-For": {"10.9.9.9"}, "X-Forwarded-Host": {"evil.example"}, "X-Forwarded-Proto": {"https"},
				"X-Kept": {"yes"},
			},
			check: func(t *testing.T, got echo) {
				for _, h := range []string{"X-Private", "Proxy-Authorization", "Proxy-Connection", "Keep-Alive", "Te", "Upgrade",
					"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"} {
					if _, ok := got.Header[h]; ok {
						t.Errorf("upstream saw header %s, want it dropped", h)
					}
				}
				if got.Header.Get("X-Kept") != "yes" {
					t.Errorf("upstream did not see X-Kept")
				}
			},
		},
		{name: "role without domain", proxy: api, target: upstream.URL, header: http.Header{"Athenz-Role": {"reader"}}, wantStatus: 400, wantMsg: "need Athenz-Domain"},
		{name: "invalid Athenz-Domain", proxy: api, target: upstream.URL, header: http.Header{"Athenz-Domain": {"pr ov"}}, wantStatus: 400, wantMsg: "invalid header Athenz-Domain"},
		{name: "invalid Athenz-Role", proxy: api, target: upstream.URL, header: http.Header{"Athenz-Domain": {"prov"}, "Athenz-Role": {"a;b"}}, wantStatus: 400, wantMsg: "invalid header Athenz-Role"},
		{name: "role not granted", proxy: api, target: upstream.URL, header: http.Header{"Athenz-Domain": {"secret"}, "Athenz-Role": {"reader"}}, wantStatus: 403, wantMsg: "zts: getRoleToken"},
		{name: "upstream down", proxy: api, target: closedURL + "/x", wantStatus: 502, wantMsg: "upstream 127.0.0.1:"},
		{name: "n-token listener", proxy: addrs.NTokenProxy, target: upstream.URL + "/x", wantStatus: 200, check: wantNToken, wantHit: true},
		{name: "n-token listener refuses Athenz-Domain", proxy: addrs.NTokenProxy, target: upstream.URL, header: roleHeaders, wantStatus: 400, wantMsg: "adds N-tokens only"},
		{name: "role token listener", proxy: addrs.RoleTokenProxy, target: upstream.URL + "/x", header: roleHeaders, wantStatus: 200, check: wantRoleToken, wantHit: true},
		{name: "role token listener needs Athenz-Domain", proxy: addrs.RoleTokenProxy, target: upstream.URL, wantStatus: 400, wantMsg: "header Athenz-Domain is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := hits.Load()
			r := do(t, proxyClient(t, tt.proxy, "/proxy/ntoken"), "GET", tt.target, "", "", tt.header)
			if r.status != tt.wantStatus {
				t.Fatalf("GET %s through %s = %d %s, want %d", tt.target, tt.proxy, r.status, r.body, tt.wantStatus)
			}
			if tt.wantMsg != "" {
				if msg := r.errorMessage(t); !strings.Contains(msg, tt.wantMsg) {
					t.Errorf("message %q, want it to contain %q", msg, tt.wantMsg)
				}
			}
			if hit := hits.Load() > before; hit != tt.wantHit {
				t.Errorf("upstream reached: %v, want %v", hit, tt.wantHit)
			}
			if tt.check != nil {
				var got echo
				r.json(t, &got)
				for _, h := range []string{"Athenz-Domain", "Athenz-Role", "Athenz-Proxy-Principal"} {
					if _, ok := got.Header[h]; ok {
						t.Errorf("upstream saw control header %s", h)
					}
				}
				tt.check(t, got)
			}
		})
	}

	t.Run("dedicated listener called directly", func(t *testing.T) {
		r := do(t, nil, "GET", "http://"+addrs.RoleTokenProxy+"/x", "", "", nil)
		if r.status != 400 {
			t.Fatalf("GET /x on the role token proxy = %d %s, want 400", r.status, r.body)
		}
		if msg := r.errorMessage(t); !strings.Contains(msg, "roletoken proxy: set http://") {
			t.Errorf("message %q, want it to explain how to use the proxy", msg)
		}
	})
}

// TestProxyAllowedHosts: tokens go only to allowed hosts; a refused
// request never reaches the upstream.
func TestProxyAllowedHosts(t *testing.T) {
	zts := newZTS(t)
	upstream, hits := countingEcho(t)
	_, port, _ := strings.Cut(strings.TrimPrefix(upstream.URL, "http://"), ":")

	tests := []struct {
		allowed    string
		wantStatus int
	}{
		{"allowed.example", 403},
		{"127.0.0.1:1", 403},
		{"*.example.com,127.0.0.2", 403},
		{"127.0.0.1", 200},
		{"other.example, 127.0.0.1:" + port, 200},
	}
	for _, tt := range tests {
		t.Run(tt.allowed, func(t *testing.T) {
			f := startSidecar(t, zts, []string{"ATHENZ_PROXY_ALLOWED_HOSTS=" + tt.allowed}, nil)
			before := hits.Load()
			client := proxyClient(t, strings.TrimPrefix(f.api, "http://"), "/proxy/ntoken")
			r := do(t, client, "GET", upstream.URL+"/x", "", "", nil)
			if r.status != tt.wantStatus {
				t.Fatalf("GET %s with ATHENZ_PROXY_ALLOWED_HOSTS=%s = %d %s, want %d", upstream.URL, tt.allowed, r.status, r.body, tt.wantStatus)
			}
			reached := hits.Load() > before
			if reached != (tt.wantStatus == 200) {
				t.Errorf("upstream reached: %v, want %v", reached, tt.wantStatus == 200)
			}
			if tt.wantStatus == 403 {
				if msg := r.errorMessage(t); !strings.Contains(msg, "not in ATHENZ_PROXY_ALLOWED_HOSTS; no token was sent") {
					t.Errorf("message %q, want it to name ATHENZ_PROXY_ALLOWED_HOSTS", msg)
				}
			}
		})
	}
}

func TestHostMatcher(t *testing.T) {
	tests := []struct {
		list         string
		scheme, host string
		want         bool
	}{
		{"", "http", "anything:1234", true},
		{"api.example.com", "http", "api.example.com", true},
		{"api.example.com", "http", "API.Example.com:8080", true},
		{"api.example.com", "http", "api.example.com.", true},
		{"api.example.com", "http", "evil.example.com", false},
		{"api.example.com:8080", "http", "api.example.com:8080", true},
		{"api.example.com:8080", "http", "api.example.com:8081", false},
		{"api.example.com:80", "http", "api.example.com", true},
		{"api.example.com:443", "https", "api.example.com", true},
		{"api.example.com:443", "http", "api.example.com", false},
		{"*.example.com", "http", "a.b.example.com:9", true},
		{"*.example.com", "http", "example.com", false},
		{"*.example.com", "http", "badexample.com", false},
		{"*.example.com:443", "https", "a.example.com", true},
		{"[::1]:8080", "http", "[::1]:8080", true},
		{"::1", "http", "[::1]:9", true},
		{"10.0.0.1", "http", "10.0.0.2", false},
	}
	for _, tt := range tests {
		list, err := parseHostList(tt.list)
		if tt.list == "" {
			list, err = nil, nil
		}
		if err != nil {
			t.Fatalf("parseHostList(%q): %v", tt.list, err)
		}
		m, err := newHostMatcher(list)
		if err != nil {
			t.Fatalf("newHostMatcher(%q): %v", tt.list, err)
		}
		if got := m.allowed(tt.scheme, tt.host); got != tt.want {
			t.Errorf("allowed list %q: %s://%s = %v, want %v", tt.list, tt.scheme, tt.host, got, tt.want)
		}
	}
}
