package sidecar

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/athenz-injector/athenz-injector/pkg/tokens/ztsfake"
)

// TestKeyFileCertificateRefused (acceptance): in key-file mode, when ZTS
// refuses the certificate (it restricts certificate refresh by IP, or
// issues none to this service), the sidecar still becomes ready and serves
// N-tokens and role tokens authenticated by N-tokens: the setup of the
// classic athenz-client-sidecar. /svccert says why there is no
// certificate.
func TestKeyFileCertificateRefused(t *testing.T) {
	zts := newZTS(t)
	zts.SetFailure(ztsfake.EndpointKeyRefresh, ztsfake.Failure{Status: http.StatusForbidden, Message: "IP not allowed for refresh: 127.0.0.1"})
	f := startWithEnvNoWait(t, zts, func() []string {
		env, _ := keyFileEnv(t, zts)
		return append([]string{"ATHENZ_PREFETCH_ROLE_TOKENS=prov:role.reader"}, env...)
	}(), nil, nil)
	waitReady(t, f)
	if r := do(t, nil, "GET", f.api+"/ntoken", "", "", nil); r.status != http.StatusOK || !strings.Contains(string(r.body), `"token":"v=S1;d=client;n=api;`) {
		t.Errorf("GET /ntoken = %d %s, want an N-token", r.status, r.body)
	}
	if r := do(t, nil, "GET", f.api+"/roletoken?domain=prov&role=writer", "", "", nil); r.status != http.StatusOK || !strings.Contains(string(r.body), `"token":"v=Z1;d=prov;r=writer;`) {
		t.Errorf("GET /roletoken = %d %s, want a role token", r.status, r.body)
	}
	r := do(t, nil, "GET", f.api+"/svccert", "", "", nil)
	if msg := r.errorMessage(t); r.status != http.StatusServiceUnavailable || !strings.Contains(msg, "IP not allowed for refresh") {
		t.Errorf("GET /svccert = %d %q, want 503 with ZTS's refusal", r.status, msg)
	}
}

// TestProxyUpstreamTimeout (acceptance): an upstream that accepts the
// request and never answers gets the app a 504 after
// ATHENZ_PROXY_TIMEOUT, instead of holding the app's request for as long
// as the app waits.
func TestProxyUpstreamTimeout(t *testing.T) {
	zts := newZTS(t)
	release := make(chan struct{})
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(hung.Close)
	t.Cleanup(func() { close(release) })
	f := startSidecar(t, zts, []string{"ATHENZ_PROXY_TIMEOUT=300ms"}, nil)
	client := proxyClient(t, strings.TrimPrefix(f.api, "http://"), "/proxy/ntoken")
	client.Timeout = 10 * time.Second // the app would wait this long
	start := time.Now()
	r := do(t, client, "GET", hung.URL+"/slow", "", "", nil)
	if r.status != http.StatusGatewayTimeout {
		t.Fatalf("proxied request to a hung upstream = %d %s, want 504", r.status, r.body)
	}
	if msg := r.errorMessage(t); !strings.Contains(msg, "timed out") || !strings.Contains(msg, "ATHENZ_PROXY_TIMEOUT") {
		t.Errorf("504 message %q, want it to say the upstream timed out and name ATHENZ_PROXY_TIMEOUT", msg)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the 504 came after %v, want it at the 300 ms timeout", d)
	}
	t.Logf("504 after %v with ATHENZ_PROXY_TIMEOUT=300ms", time.Since(start).Round(time.Millisecond))
}

// TestV1Token (acceptance): GET /v1/token?domain=&role= (the contract's
// overview) answers an access token, the modern default.
func TestV1Token(t *testing.T) {
	zts := newZTS(t)
	f := startSidecar(t, zts, nil, nil)
	zts.Grant("sports", "reader", testDomain+"."+testService)
	r := do(t, nil, "GET", f.api+"/v1/token?domain=sports&role=reader", "", "", nil)
	var got struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	r.json(t, &got)
	if r.status != http.StatusOK || strings.Count(got.AccessToken, ".") != 2 || got.TokenType != "Bearer" || got.ExpiresIn < 3500 {
		t.Errorf("GET /v1/token?domain=sports&role=reader = %d %s, want an access token (JWT, Bearer, about an hour)", r.status, r.body)
	}
	if n := zts.CallsFor(ztsfake.EndpointAccessToken, "sports:role.reader"); n != 1 {
		t.Errorf("access token calls for sports:role.reader = %d, want 1", n)
	}
	if r := do(t, nil, "GET", f.api+"/v1/token?domain=secret&role=reader", "", "", nil); r.status != http.StatusForbidden {
		t.Errorf("GET /v1/token for a role not granted = %d %s, want ZTS's 403", r.status, r.body)
	}
	r = do(t, nil, "GET", f.api+"/v1/token?role=reader", "", "", nil)
	if msg := r.errorMessage(t); r.status != http.StatusBadRequest || !strings.Contains(msg, "domain") {
		t.Errorf("GET /v1/token without domain = %d %q, want 400 naming domain", r.status, msg)
	}
}
