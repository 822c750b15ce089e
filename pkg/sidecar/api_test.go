package sidecar

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/athenz-injector/athenz-injector/pkg/tokens"
	"github.com/athenz-injector/athenz-injector/pkg/tokens/ztsfake"
)

// TestTokenEndpoints checks the answers of the token API for good requests
// in every form: JSON bodies, the GET query forms, curl's form-encoded JSON.
func TestTokenEndpoints(t *testing.T) {
	zts := newZTS(t)
	f := startSidecar(t, zts, nil, nil)

	tests := []struct {
		name, method, path, contentType, body string
		check                                 func(t *testing.T, r response)
	}{
		{
			name: "role token POST", method: "POST", path: "/roletoken", contentType: "application/json",
			body: `{"domain":"prov","role":"writer,reader"}`, check: wantRoleToken("prov", "reader,writer"),
		},
		{
			name: "role token POST with charset", method: "POST", path: "/roletoken", contentType: "application/json; charset=utf-8",
			body: `{"domain":"prov","role":"reader"}`, check: wantRoleToken("prov", "reader"),
		},
		{
			name: "role token POST without content type", method: "POST", path: "/roletoken",
			body: `{"domain":"prov","role":"reader"}`, check: wantRoleToken("prov", "reader"),
		},
		{
			name: "role token POST as curl -d sends it", method: "POST", path: "/roletoken", contentType: "application/x-www-form-urlencoded",
			body: `{"domain":"prov","role":"reader"}`, check: wantRoleToken("prov", "reader"),
		},
		{
			name: "role token GET", method: "GET", path: "/roletoken?domain=prov&role=reader&max_expiry=3600",
			check: wantRoleToken("prov", "reader"),
		},
		{
			name: "access token POST /access-token", method: "POST", path: "/access-token", contentType: "application/json",
			body: `{"domain":"prov","role":"reader","expiry":600}`, check: wantAccessToken(600, ""),
		},
		{
			name: "access token POST /accesstoken", method: "POST", path: "/accesstoken", contentType: "application/json",
			body: `{"domain":"prov","role":"reader"}`, check: wantAccessToken(3600, ""),
		},
		{
			name: "access token GET /accesstoken", method: "GET", path: "/accesstoken?domain=prov&role=reader&expiry=600",
			check: wantAccessToken(600, ""),
		},
		{
			name: "access token GET /access-token for the domain", method: "GET", path: "/access-token?domain=prov",
			check: wantAccessToken(3600, "prov:role.reader prov:role.writer"),
		},
		{
			name: "ntoken", method: "GET", path: "/ntoken",
			check: func(t *testing.T, r response) {
				var body map[string]string
				r.json(t, &body)
				if !strings.HasPrefix(body["token"], "v=S1;d=client;n=api;k=1;") || len(body) != 1 {
					t.Errorf("GET /ntoken = %s, want {\"token\":\"v=S1;d=client;n=api;k=1;...\"}", r.body)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, nil, tt.method, f.api+tt.path, tt.contentType, tt.body, nil)
			if r.status != http.StatusOK {
				t.Fatalf("%s %s = %d %s, want 200", tt.method, tt.path, r.status, r.body)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			if cc := r.header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q, want no-store", cc)
			}
			tt.check(t, r)
		})
	}
}

func wantRoleToken(domain, roles string) func(t *testing.T, r response) {
	return func(t *testing.T, r response) {
		t.Helper()
		var body map[string]any
		r.json(t, &body)
		tok, _ := body["token"].(string)
		exp, _ := body["expiryTime"].(float64)
		if !strings.HasPrefix(tok, "v=Z1;d="+domain+";r="+roles+";") || len(body) != 2 {
			t.Errorf("answer %s, want a role token for %s:%s and expiryTime", r.body, domain, roles)
		}
		if d := time.Until(time.Unix(int64(exp), 0)); d < time.Minute || d > 2*time.Hour+time.Minute {
			t.Errorf("expiryTime %v from now, want the lifetime of a fresh token", d)
		}
	}
}

func wantAccessToken(maxLeft int64, scope string) func(t *testing.T, r response) {
	return func(t *testing.T, r response) {
		t.Helper()
		var body struct {
			AccessToken string  `json:"access_token"`
			TokenType   string  `json:"token_type"`
			ExpiresIn   int64   `json:"expires_in"`
			Scope       *string `json:"scope"`
		}
		r.json(t, &body)
		if strings.Count(body.AccessToken, ".") != 2 || body.TokenType != "Bearer" {
			t.Errorf("answer %s, want a JWT access token of type Bearer", r.body)
		}
		if body.ExpiresIn <= maxLeft-10 || body.ExpiresIn > maxLeft {
			t.Errorf("expires_in = %d, want just under %d", body.ExpiresIn, maxLeft)
		}
		switch {
		case scope == "" && body.Scope != nil:
			t.Errorf("scope %q present, want it left out", *body.Scope)
		case scope != "" && (body.Scope == nil || *body.Scope != scope):
			t.Errorf("scope = %s, want %q", r.body, scope)
		}
	}
}

// TestBadRequests: every client mistake gets a 4xx JSON error that names
// the problem, never a 500 and never a token.
func TestBadRequests(t *testing.T) {
	zts := newZTS(t)
	f := startSidecar(t, zts, nil, nil)
	const js = "application/json"
	big := `{"domain":"prov","role":"` + strings.Repeat("a", MaxBodyBytes) + `"}`

	tests := []struct {
		name, method, path, contentType, body string
		header                                http.Header
		chunked                               bool
		wantStatus                            int
		wantMsg                               string
		wantAllow                             string
	}{
		{name: "truncated JSON", method: "POST", path: "/roletoken", contentType: js, body: `{"domain":`, wantStatus: 400, wantMsg: "malformed JSON"},
		{name: "JSON syntax", method: "POST", path: "/roletoken", contentType: js, body: `{"domain" "prov"}`, wantStatus: 400, wantMsg: "malformed JSON at byte"},
		{name: "unknown field", method: "POST", path: "/roletoken", contentType: js, body: `{"domain":"prov","roles":"reader"}`, wantStatus: 400, wantMsg: `unknown field "roles"`},
		{name: "unknown field access", method: "POST", path: "/accesstoken", contentType: js, body: `{"domain":"prov","min_expiry":1}`, wantStatus: 400, wantMsg: `unknown field "min_expiry": the fields are domain, role, proxy_for_principal, expiry`},
		{name: "data after object", method: "POST", path: "/roletoken", contentType: js, body: `{"domain":"prov"} {}`, wantStatus: 400, wantMsg: "data after the object"},
		{name: "array body", method: "POST", path: "/roletoken", contentType: js, body: `["prov"]`, wantStatus: 400, wantMsg: "JSON array: want an object"},
		{name: "expiry as string", method: "POST", path: "/accesstoken", contentType: js, body: `{"domain":"prov","expiry":"600"}`, wantStatus: 400, wantMsg: "invalid expiry: want a whole number of seconds"},
		{name: "expiry fractional", method: "POST", path: "/accesstoken", contentType: js, body: `{"domain":"prov","expiry":1.5}`, wantStatus: 400, wantMsg: "invalid expiry"},
		{name: "domain as number", method: "POST", path: "/roletoken", contentType: js, body: `{"domain":5}`, wantStatus: 400, wantMsg: "invalid domain: want a string"},
		{name: "missing domain", method: "POST", path: "/roletoken", contentType: js, body: `{"role":"reader"}`, wantStatus: 400, wantMsg: "invalid domain: is required"},
		{name: "missing domain access", method: "POST", path: "/access-token", contentType: js, body: `{}`, wantStatus: 400, wantMsg: "invalid domain: is required"},
		{name: "invalid domain", method: "POST", path: "/roletoken", contentType: js, body: `{"domain":"pr ov"}`, wantStatus: 400, wantMsg: "invalid domain"},
		{name: "invalid role", method: "POST", path: "/roletoken", contentType: js, body: `{"domain":"prov","role":"reader,,writer"}`, wantStatus: 400, wantMsg: "invalid role"},
		{name: "invalid role access", method: "POST", path: "/accesstoken", contentType: js, body: `{"domain":"prov","role":"read/er"}`, wantStatus: 400, wantMsg: "invalid role"},
		{name: "invalid proxy principal", method: "POST", path: "/roletoken", contentType: js, body: `{"domain":"prov","proxy_for_principal":"user jane"}`, wantStatus: 400, wantMsg: "invalid proxy_for_principal"},
		{name: "negative expiry", method: "POST", path: "/accesstoken", contentType: js, body: `{"domain":"prov","expiry":-1}`, wantStatus: 400, wantMsg: "invalid expiry: must not be negative"},
		{name: "expiry over 30 days", method: "POST", path: "/accesstoken", contentType: js, body: `{"domain":"prov","expiry":2592001}`, wantStatus: 400, wantMsg: "invalid expiry: 2592001 s is more than the 30-day maximum"},
		{name: "expiry overflowing", method: "POST", path: "/roletoken", contentType: js, body: `{"domain":"prov","max_expiry":9223372036854775807}`, wantStatus: 400, wantMsg: "invalid max_expiry"},
		{name: "min over max", method: "POST", path: "/roletoken", contentType: js, body: `{"domain":"prov","min_expiry":100,"max_expiry":50}`, wantStatus: 400, wantMsg: "invalid min_expiry"},
		{name: "empty body", method: "POST", path: "/roletoken", contentType: js, wantStatus: 400, wantMsg: "empty request body"},
		{name: "body over 64 KiB", method: "POST", path: "/roletoken", contentType: js, body: big, wantStatus: 413, wantMsg: "65536 bytes (64 KiB)"},
		{name: "chunked body over 64 KiB", method: "POST", path: "/accesstoken", contentType: js, body: big, chunked: true, wantStatus: 413, wantMsg: "65536 bytes (64 KiB)"},
		{name: "text/plain", method: "POST", path: "/roletoken", contentType: "text/plain", body: `{"domain":"prov"}`, wantStatus: 415, wantMsg: `Content-Type "text/plain": want application/json`},
		{name: "form body", method: "POST", path: "/roletoken", contentType: "application/x-www-form-urlencoded", body: `domain=prov`, wantStatus: 415, wantMsg: "send JSON"},
		{name: "PUT roletoken", method: "PUT", path: "/roletoken", contentType: js, body: `{"domain":"prov"}`, wantStatus: 405, wantMsg: "method PUT not allowed", wantAllow: "GET, POST"},
		{name: "DELETE accesstoken", method: "DELETE", path: "/accesstoken", wantStatus: 405, wantAllow: "GET, POST"},
		{name: "POST ntoken", method: "POST", path: "/ntoken", contentType: js, body: `{}`, wantStatus: 405, wantAllow: "GET"},
		{name: "POST healthz", method: "POST", path: "/healthz", wantStatus: 405, wantAllow: "GET, HEAD"},
		{name: "unknown query parameter", method: "GET", path: "/roletoken?domain=prov&roles=reader", wantStatus: 400, wantMsg: `unknown query parameter "roles"`},
		{name: "repeated query parameter", method: "GET", path: "/roletoken?domain=prov&role=a&role=b", wantStatus: 400, wantMsg: `"role" given 2 times`},
		{name: "query expiry not a number", method: "GET", path: "/accesstoken?domain=prov&expiry=10m", wantStatus: 400, wantMsg: "invalid expiry"},
		{name: "query missing domain", method: "GET", path: "/accesstoken?role=reader", wantStatus: 400, wantMsg: "invalid domain: is required"},
		{name: "malformed query", method: "GET", path: "/roletoken?domain=%zz", wantStatus: 400, wantMsg: "malformed query"},
		{name: "proxy path called", method: "GET", path: "/proxy/ntoken", wantStatus: 400, wantMsg: "is not an endpoint to call: set http://"},
		{name: "role proxy path called", method: "POST", path: "/proxy/roletoken", wantStatus: 400, wantMsg: "Athenz-Domain, Athenz-Role"},
		{name: "unknown path", method: "GET", path: "/token", wantStatus: 404, wantMsg: "no endpoint /token"},
		{name: "ZTS 403 role not granted", method: "POST", path: "/roletoken", contentType: js, body: `{"domain":"secret","role":"reader"}`, wantStatus: 403, wantMsg: "zts: getRoleToken"},
		{name: "ZTS 404 no domain", method: "POST", path: "/accesstoken", contentType: js, body: `{"domain":"nosuch","role":"reader"}`, wantStatus: 404, wantMsg: "No such domain"},
		{name: "ZTS 404 no domain GET", method: "GET", path: "/roletoken?domain=nosuch", wantStatus: 404, wantMsg: "No such domain: nosuch"},
		{name: "ZTS 403 proxy not allowed", method: "POST", path: "/roletoken", contentType: js, body: `{"domain":"prov","role":"reader","proxy_for_principal":"user.jane"}`, wantStatus: 403, wantMsg: "not authorized for proxy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
				if tt.chunked {
					body = io.MultiReader(body) // hides the length: sent chunked
				}
			}
			req, err := http.NewRequestWithContext(t.Context(), tt.method, f.api+tt.path, body)
			if err != nil {
				t.Fatal(err)
			}
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("%s %s: %v", tt.method, tt.path, err)
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			r := response{status: res.StatusCode, header: res.Header, body: b}
			if r.status != tt.wantStatus {
				t.Fatalf("%s %s = %d %s, want %d", tt.method, tt.path, r.status, r.body, tt.wantStatus)
			}
			if msg := r.errorMessage(t); !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("message %q, want it to contain %q", msg, tt.wantMsg)
			}
			if got := r.header.Get("Allow"); got != tt.wantAllow {
				t.Errorf("Allow %q, want %q", got, tt.wantAllow)
			}
		})
	}
}

// TestConnectRefused: CONNECT, on the API listener, gets a 405 JSON answer
// that says why.
func TestConnectRefused(t *testing.T) {
	zts := newZTS(t)
	f := startSidecar(t, zts, nil, nil)
	conn, err := net.Dial("tcp", strings.TrimPrefix(f.api, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
	res, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: http.MethodConnect})
	if err != nil {
		t.Fatalf("reading the answer to CONNECT: %v", err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	r := response{status: res.StatusCode, header: res.Header, body: b}
	if r.status != http.StatusMethodNotAllowed {
		t.Fatalf("CONNECT = %d %s, want 405", r.status, b)
	}
	if msg := r.errorMessage(t); !strings.Contains(msg, "CONNECT not supported") || !strings.Contains(msg, "TLS tunnel") {
		t.Errorf("CONNECT message %q, want it to say CONNECT is not supported and why", msg)
	}
}

// TestExpiresInIsRemaining: expires_in counts down as a cached token ages
// and never exceeds the expiry asked for.
func TestExpiresInIsRemaining(t *testing.T) {
	clock := tokens.NewFakeClock(time.Now())
	zts := ztsfake.NewTest(t, ztsfake.Options{KeyType: "ec", Now: clock.Now})
	zts.Grant("prov", "reader", "client.api")
	f := startSidecar(t, zts, nil, func(c *Config) { c.Clock = clock })

	ask := func() int64 {
		r := do(t, nil, "POST", f.api+"/access-token", "application/json", `{"domain":"prov","role":"reader","expiry":600}`, nil)
		if r.status != http.StatusOK {
			t.Fatalf("POST /access-token = %d %s", r.status, r.body)
		}
		var body struct {
			ExpiresIn int64 `json:"expires_in"`
		}
		r.json(t, &body)
		return body.ExpiresIn
	}
	if got := ask(); got > 600 || got < 599 {
		t.Errorf("fresh token: expires_in = %d, want 600 (or 599)", got)
	}
	clock.Advance(100 * time.Second)
	if got := ask(); got > 500 || got < 499 {
		t.Errorf("after 100 s: expires_in = %d, want 500 (or 499)", got)
	}
	if calls := zts.CallsFor(ztsfake.EndpointAccessToken, "prov:role.reader"); calls != 1 {
		t.Errorf("ZTS access token calls = %d, want 1 (the second answer is from the cache)", calls)
	}
}

// TestConcurrentMissesOneCall: 200 concurrent requests for a key that is
// not cached make one ZTS call.
func TestConcurrentMissesOneCall(t *testing.T) {
	zts := newZTS(t)
	zts.SetLatency(ztsfake.EndpointRoleToken, 300*time.Millisecond)
	f := startSidecar(t, zts, nil, nil)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 200, MaxConnsPerHost: 200}}
	defer client.CloseIdleConnections()

	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			// The role order differs between requests: one cache entry.
			body := `{"domain":"prov","role":"reader,writer"}`
			if i%2 == 1 {
				body = `{"domain":"prov","role":"writer,reader"}`
			}
			req, _ := http.NewRequestWithContext(t.Context(), "POST", f.api+"/roletoken", strings.NewReader(body))
			res, err := client.Do(req)
			if err != nil {
				errs <- err
				return
			}
			defer res.Body.Close()
			var rt struct{ Token string }
			if err := json.NewDecoder(res.Body).Decode(&rt); err != nil || res.StatusCode != 200 || rt.Token == "" {
				errs <- fmt.Errorf("status %d, token %q, decode error %v", res.StatusCode, rt.Token, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("request: %v", err)
	}
	if calls := zts.CallsFor(ztsfake.EndpointRoleToken, "prov:reader,writer"); calls != 1 {
		t.Errorf("ZTS role token calls for prov:reader,writer = %d, want 1", calls)
	}
}

// TestRefreshAheadNoWait: after the first fetch, the cache refreshes the
// token before its margin (fake clock), so a request never waits on ZTS,
// even a slow one.
func TestRefreshAheadNoWait(t *testing.T) {
	clock := tokens.NewFakeClock(time.Now())
	zts := ztsfake.NewTest(t, ztsfake.Options{KeyType: "ec", Now: clock.Now})
	zts.Grant("prov", "reader", "client.api")
	f := startSidecar(t, zts, nil, func(c *Config) { c.Clock = clock })
	ask := func() string {
		r := do(t, nil, "GET", f.api+"/roletoken?domain=prov&role=reader", "", "", nil)
		if r.status != http.StatusOK {
			t.Fatalf("GET /roletoken = %d %s", r.status, r.body)
		}
		var body struct{ Token string }
		r.json(t, &body)
		return body.Token
	}
	first := ask()
	// A 2 h token refreshes ahead of its 30 min margin: by 1 h 31 min. It
	// must be in use meanwhile: the cache drops entries idle for 1 h.
	clock.Advance(45 * time.Minute)
	if got := ask(); got != first {
		t.Fatalf("token after 45 min differs from the first; want the cached one")
	}
	clock.Advance(46 * time.Minute)
	if calls := zts.CallsFor(ztsfake.EndpointRoleToken, "prov:reader"); calls != 2 {
		t.Fatalf("ZTS calls after 91 min = %d, want 2 (the first fetch and one refresh ahead of the margin)", calls)
	}
	zts.SetLatency(ztsfake.EndpointRoleToken, 5*time.Second)
	start := time.Now()
	second := ask()
	if d := time.Since(start); d > time.Second {
		t.Errorf("request after the refresh took %v, want no wait on ZTS", d)
	}
	if second == first {
		t.Errorf("token after the refresh is the first token, want the refreshed one")
	}
}

// TestRequestCanceledWhileWaiting: a client that gives up while its miss
// waits on ZTS does not break the fetch for others.
func TestRequestCanceledWhileWaiting(t *testing.T) {
	zts := newZTS(t)
	zts.SetLatency(ztsfake.EndpointRoleToken, 500*time.Millisecond)
	f := startSidecar(t, zts, nil, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", f.api+"/roletoken?domain=prov&role=reader", nil)
	if res, err := http.DefaultClient.Do(req); err == nil {
		res.Body.Close()
		t.Fatalf("request with a 100 ms deadline answered %d, want it to time out", res.StatusCode)
	}
	if r := do(t, nil, "GET", f.api+"/roletoken?domain=prov&role=reader", "", "", nil); r.status != 200 {
		t.Errorf("next request = %d %s, want 200", r.status, r.body)
	}
	if calls := zts.CallsFor(ztsfake.EndpointRoleToken, "prov:reader"); calls != 1 {
		t.Errorf("ZTS calls = %d, want 1", calls)
	}
}

// TestBodyMemo: a request body seen before is answered from the memo of
// its cache key, the same as the first time; bodies that failed are not
// kept (each gets its error again), nor bodies over memoMaxBody bytes, and
// the memo holds at most memoMaxBodies.
func TestBodyMemo(t *testing.T) {
	h := stubHandler(t)
	api := apiHandler{h}
	post := func(path, body string) *httptest.ResponseRecorder {
		t.Helper()
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		api.ServeHTTP(w, req)
		return w
	}
	size := func(m *bodyMemo) int {
		m.mu.RLock()
		defer m.mu.RUnlock()
		return len(m.keys)
	}
	tests := []struct {
		path, body string
		wantCode   int
		wantKept   bool
		memo       *bodyMemo
	}{
		{"/roletoken", `{"domain":"prov","role":"reader"}`, 200, true, &h.roleBodies},
		{"/roletoken", `{"domain":"prov","role":"reader","min_expiry":600}`, 200, true, &h.roleBodies},
		{"/accesstoken", `{"domain":"prov","role":"reader","expiry":600}`, 200, true, &h.accessBodies},
		{"/roletoken", `{"domain":"prov","role":"reader","extra":1}`, 400, false, &h.roleBodies},
		{"/roletoken", `{"domain":"prov","role":"reader"} {}`, 400, false, &h.roleBodies},
		{"/roletoken", `{"domain":"prov","role":"reader","min_expiry":-1}`, 400, false, &h.roleBodies},
		{"/roletoken", `{"domain":"prov",` + strings.Repeat(" ", memoMaxBody) + `"role":"reader"}`, 200, false, &h.roleBodies},
	}
	for _, tt := range tests {
		before := size(tt.memo)
		first := post(tt.path, tt.body)
		second := post(tt.path, tt.body)
		if first.Code != tt.wantCode || second.Code != tt.wantCode {
			t.Errorf("POST %s %.40q twice = %d, %d; want %d both times", tt.path, tt.body, first.Code, second.Code, tt.wantCode)
		}
		if tt.wantCode != 200 && first.Body.String() != second.Body.String() {
			t.Errorf("POST %s %.40q: the second answer %q differs from the first %q", tt.path, tt.body, second.Body, first.Body)
		}
		if kept := size(tt.memo) == before+1; kept != tt.wantKept {
			t.Errorf("POST %s %.40q: kept in the memo %v, want %v", tt.path, tt.body, kept, tt.wantKept)
		}
	}
	// A request from the memo is the token of its own key: min_expiry
	// 600 asked for a different key than no min_expiry.
	if a, b := post("/roletoken", `{"domain":"prov","role":"reader"}`), post("/roletoken", `{"domain":"prov","role":"writer"}`); a.Body.String() == b.Body.String() {
		t.Errorf("reader and writer got the same answer %q from the memo", a.Body)
	}
	for i := range 2 * memoMaxBodies {
		post("/roletoken", fmt.Sprintf(`{"domain":"prov","role":"r%d"}`, i))
	}
	if n := size(&h.roleBodies); n != memoMaxBodies {
		t.Errorf("memo of %d bodies after %d distinct ones, want the bound %d", n, 2*memoMaxBodies, memoMaxBodies)
	}
}
