package sidecar

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/athenz-injector/athenz-injector/pkg/tokens"
)

// FuzzTokenRequest: whatever a client sends to the token endpoints, the
// answer is 200 with a token or a 4xx {"code","message"} (501 for a missing
// N-token source cannot happen here); never a 500.
func FuzzTokenRequest(f *testing.F) {
	seeds := []struct {
		path, contentType, body string
	}{
		{"/roletoken", "application/json", `{"domain":"prov","role":"reader"}`},
		{"/roletoken", "application/json", `{"domain":"prov","role":"users","proxy_for_principal":"proxyForPrincipal","min_expiry":100,"max_expiry":1000}`},
		{"/access-token", "application/json", `{"domain":"prov","role":"user","proxy_for_principal":"proxyForPrincipal","expiry":100}`},
		{"/accesstoken", "application/x-www-form-urlencoded", `{"domain":"sports","role":"reader"}`},
		{"/roletoken", "application/json", `{"domain":`},
		{"/roletoken", "text/plain", `x`},
		{"/accesstoken", "", `{"domain":"prov","expiry":-1}`},
		{"/roletoken", "application/json", `{"domain":"prov","max_expiry":9223372036854775807}`},
	}
	for _, s := range seeds {
		f.Add(s.path, s.contentType, s.body)
	}
	h := apiHandler{stubHandler(f)}
	f.Fuzz(func(t *testing.T, path, contentType, body string) {
		if path != "/roletoken" && path != "/accesstoken" && path != "/access-token" {
			path = "/roletoken"
		}
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		checkAnswer(t, w, "POST "+path+" "+body)
	})
}

// FuzzTokenQuery is FuzzTokenRequest for the GET query forms.
func FuzzTokenQuery(f *testing.F) {
	for _, q := range []string{
		"domain=sports&role=reader", "domain=prov&role=a,b&max_expiry=60", "domain=prov&expiry=600",
		"domain=%zz", "role=a&role=b", "domain=prov&min_expiry=x",
	} {
		f.Add(q, true)
		f.Add(q, false)
	}
	h := apiHandler{stubHandler(f)}
	f.Fuzz(func(t *testing.T, query string, role bool) {
		path := "/accesstoken"
		if role {
			path = "/roletoken"
		}
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.URL.RawQuery = query
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		checkAnswer(t, w, "GET "+path+"?"+query)
	})
}

func checkAnswer(t *testing.T, w *httptest.ResponseRecorder, what string) {
	t.Helper()
	var body map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatalf("%s: answer %d %q is not JSON: %v", what, w.Code, w.Body, err)
	}
	switch {
	case w.Code == http.StatusOK:
		if body["token"] == nil && body["access_token"] == nil {
			t.Errorf("%s: 200 without a token: %s", what, w.Body)
		}
	case w.Code >= 400 && w.Code < 500:
		if code, _ := body["code"].(float64); int(code) != w.Code || body["message"] == "" {
			t.Errorf("%s: %d with body %s, want {\"code\":%d,\"message\":...}", what, w.Code, w.Body, w.Code)
		}
	default:
		t.Errorf("%s: status %d %s, want 200 or 4xx", what, w.Code, w.Body)
	}
}

// FuzzProxyTarget: host lists and request hosts never panic, an empty
// list allows everything, and the upstream a request is sent to keeps the
// request's host.
func FuzzProxyTarget(f *testing.F) {
	f.Add("api.example.com,*.svc:8080,[::1]:80", "http", "api.example.com:80")
	f.Add("", "https", "[::1]")
	f.Add("10.0.0.1", "http", "10.0.0.1:")
	f.Add("*:8443,*", "http", "[fe80::1%25eth0]:80")
	f.Fuzz(func(t *testing.T, list, scheme, host string) {
		entries, err := parseHostList(list)
		if err != nil {
			return
		}
		m, err := newHostMatcher(entries)
		if err != nil {
			t.Fatalf("parseHostList(%q) accepted what newHostMatcher refuses: %v", list, err)
		}
		m.allowed(scheme, host)
		if !(hostMatcher{}).allowed(scheme, host) {
			t.Errorf("empty list refused %q", host)
		}
		u, err := url.Parse(scheme + "://" + host + "/")
		if err != nil || u.Host != host || (scheme != "http" && scheme != "https") {
			return // the server or the proxy refuses such a request before target
		}
		up, err := (&handler{tlsHosts: m}).target(&http.Request{URL: u, Header: http.Header{}})
		if err != nil {
			t.Fatalf("target(%s://%s) = %v, want no error without control headers", scheme, host, err)
		}
		if !strings.Contains(up.hostport, u.Hostname()) {
			t.Errorf("target(%s://%s) dials %q, another host", scheme, host, up.hostport)
		}
	})
}

// FuzzAppendJSONString: the hot path's JSON string encoder agrees with
// encoding/json.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "v=Z1;d=a;s=x.y_z-", `"\<>&`, "\x00\x1f\x7f", "é漢"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return // tokens are ASCII; invalid UTF-8 is not worth a slow path
		}
		b := appendJSONString(nil, s)
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("appendJSONString(%q) = %s: not JSON: %v", s, b, err)
		}
		if got != s {
			t.Errorf("appendJSONString(%q) decodes to %q", s, got)
		}
	})
}

// roundTripFunc is an http.RoundTripper made of a function.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// FuzzProxyHeaders: whatever control headers a proxied request carries,
// the answer is the upstream's (reached once, with exactly one Athenz
// credential header of the right kind and none of the control headers) or
// a 4xx {"code","message"} with the upstream not reached; never a 5xx.
func FuzzProxyHeaders(f *testing.F) {
	for _, s := range []struct {
		domain, role, principal string
		has                     uint8 // bit 0: Athenz-Domain, 1: Athenz-Role, 2: Athenz-Proxy-Principal
	}{
		{"", "", "", 0},
		{"prov", "reader", "", 3},
		{"prov", "reader,writer", "user.jane", 7},
		{"prov", "", "", 1},
		{"", "reader", "", 2},
		{"pr ov", "a;b", "x\ny", 7},
		{"prov", " reader , writer ", "", 3},
		{"prov", "", "", 5},
	} {
		f.Add(s.domain, s.role, s.principal, s.has)
	}
	h := stubHandler(f)
	var upstream *http.Request
	h.reverse.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
		upstream = r
		return &http.Response{StatusCode: 200, Header: http.Header{}, Body: http.NoBody, Request: r}, nil
	})
	api := apiHandler{h}
	f.Fuzz(func(t *testing.T, domain, role, principal string, has uint8) {
		upstream = nil
		req := httptest.NewRequest(http.MethodGet, "http://upstream.example/x", nil)
		for i, hv := range []struct{ name, value string }{{headerDomain, domain}, {headerRole, role}, {headerProxyPrincipal, principal}} {
			if has&(1<<i) != 0 {
				req.Header[hv.name] = []string{hv.value}
			}
		}
		w := httptest.NewRecorder()
		api.ServeHTTP(w, req)
		what := fmt.Sprintf("proxy with %q", req.Header)
		switch {
		case w.Code == http.StatusOK:
			if upstream == nil {
				t.Fatalf("%s: 200 without reaching the upstream", what)
			}
			for _, c := range []string{headerDomain, headerRole, headerProxyPrincipal} {
				if _, ok := upstream.Header[c]; ok {
					t.Errorf("%s: upstream saw control header %s", what, c)
				}
			}
			n, r := upstream.Header.Get(headerPrincipalAuth), upstream.Header.Get(headerRoleAuth)
			if has&1 == 0 {
				if n == "" || r != "" {
					t.Errorf("%s: upstream saw %s=%q %s=%q, want an N-token only", what, headerPrincipalAuth, n, headerRoleAuth, r)
				}
			} else {
				// The role token is for the request's domain as the cache
				// key has it (names are case-insensitive: lower case).
				key, err := tokens.RoleTokenKey(req.Header.Get(headerDomain), req.Header.Get(headerRole), req.Header.Get(headerProxyPrincipal), 0, 0)
				if err != nil {
					t.Fatalf("%s: 200, yet RoleTokenKey refuses the headers: %v", what, err)
				}
				if r == "" || n != "" || !strings.HasPrefix(r, "v=Z1;d="+key.Domain+";") {
					t.Errorf("%s: upstream saw %s=%q %s=%q, want a role token for %q only", what, headerPrincipalAuth, n, headerRoleAuth, r, key.Domain)
				}
			}
		case w.Code >= 400 && w.Code < 500:
			if upstream != nil {
				t.Errorf("%s: %d, yet the upstream was reached", what, w.Code)
			}
			checkAnswer(t, w, what)
		default:
			t.Errorf("%s: status %d %s, want 200 or 4xx", what, w.Code, w.Body)
		}
	})
}
