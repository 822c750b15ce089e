package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/athenz-injector/athenz-injector/pkg/sidecar"
	"github.com/athenz-injector/athenz-injector/pkg/tokens"
	"github.com/athenz-injector/athenz-injector/pkg/tokens/ztsfake"
)

// lockedBuffer is the sidecar's stderr in TestNoSecretsInLogs.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// saToken is the projected service account token: attestation data the
// sidecar sends to ZTS and must never log.
const saToken = "eyJhbGciOiJSUzI1NiIsImtpZCI6InNhIn0.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6Y2xpZW50OmFwaSJ9.c2EtdG9rZW4tc2lnbmF0dXJlLXNlY3JldA"

// TestNoSecretsInLogs runs the sidecar as main does (run, with the zap JSON
// logger, ATHENZ_LOG_LEVEL=debug) in copper-argos mode against the fake
// ZTS, through a full flow: register, role certificate, N-token, role and
// access tokens, the proxy, refresh of the certificate and the tokens, and
// errors (a ZTS 403, ZTS 500s, a failing refresh, bad input, a refused and
// an unreachable upstream). Then it searches the log for every secret the
// flow handled: tokens, the private key, the CSRs, the service account
// token, and markers of such material.
func TestNoSecretsInLogs(t *testing.T) {
	clock := tokens.NewFakeClock(time.Now())
	zts := ztsfake.NewTest(t, ztsfake.Options{KeyType: "ec", Now: clock.Now})
	zts.Grant("prov", "reader", "client.api")
	zts.Grant("prov", "writer", "client.api")
	zts.AddDomain("secret")
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(r.Header) // the upstream sees the tokens; the log must not
	}))
	t.Cleanup(upstream.Close)
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	dir, idDir := t.TempDir(), t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	env := []string{
		"ATHENZ_ZTS_URL=" + zts.URL(),
		"ATHENZ_ZTS_CA_FILE=" + write("ca.pem", zts.CACertPEM()),
		"ATHENZ_IDENTITY_MODE=copper-argos",
		"ATHENZ_DOMAIN=client",
		"ATHENZ_SERVICE=api",
		"ATHENZ_PROVIDER=sys.auth.k8s",
		"ATHENZ_DNS_SUFFIX=athenz.test",
		"ATHENZ_SA_TOKEN_FILE=" + write("token", []byte(saToken)),
		"ATHENZ_IDENTITY_DIR=" + idDir,
		"ATHENZ_ROLE_CERTS=prov:role.reader",
		"ATHENZ_PREFETCH=prov:role.writer",
		"ATHENZ_TOKEN_FILES=roletoken:prov:role.writer",
		"ATHENZ_PROXY_ALLOWED_HOSTS=127.0.0.1",
		"ATHENZ_ZTS_TIMEOUT=2s",
		"ATHENZ_LISTEN=127.0.0.1:0",
		"ATHENZ_HEALTH_LISTEN=127.0.0.1:0",
		"ATHENZ_LOG_LEVEL=debug",
		"POD_UID=0f1e2d3c-aaaa-bbbb-cccc-000000000001",
		"POD_IP=127.0.0.1",
		"POD_NAMESPACE=client",
	}
	servers := make(chan *sidecar.Server, 1)
	serve := func(ctx context.Context, cfg sidecar.Config, log logr.Logger) error {
		cfg.Clock = clock
		s, err := sidecar.Start(ctx, cfg, log)
		if err != nil {
			return err
		}
		servers <- s
		return s.Wait()
	}
	var logs lockedBuffer
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	exit := make(chan int, 1)
	go func() { exit <- run(ctx, nil, env, &logs, serve) }()
	var srv *sidecar.Server
	select {
	case srv = <-servers:
	case code := <-exit:
		t.Fatalf("run exited %d before serving; logs:\n%s", code, logs.String())
	case <-time.After(10 * time.Second):
		t.Fatalf("sidecar not serving after 10 s; logs:\n%s", logs.String())
	}
	api, health := "http://"+srv.Addrs().API, "http://"+srv.Addrs().Health
	waitFor(t, "/readyz 200", func() bool { return get(t, nil, health+"/readyz").status == 200 })

	var secrets []string // every token the flow saw
	token := func(r answer, field string) {
		t.Helper()
		var m map[string]any
		if r.status != 200 || json.Unmarshal(r.body, &m) != nil || m[field] == nil {
			t.Fatalf("answer %d %s, want 200 with %s", r.status, r.body, field)
		}
		secrets = append(secrets, m[field].(string))
	}
	fileToken, err := os.ReadFile(filepath.Join(idDir, "tokens/prov/writer.roletoken"))
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, string(fileToken))
	token(get(t, nil, api+"/ntoken"), "token")
	token(get(t, nil, api+"/roletoken?domain=prov&role=reader"), "token")
	token(post(t, api+"/roletoken", `{"domain":"prov","role":"reader,writer"}`), "token")
	token(post(t, api+"/accesstoken", `{"domain":"prov","role":"writer"}`), "access_token")
	token(get(t, nil, api+"/accesstoken?domain=prov&expiry=600"), "access_token")

	proxy := proxyClient(t, srv.Addrs().API)
	roleHeaders := http.Header{"Athenz-Domain": {"prov"}, "Athenz-Role": {"reader"}}
	for _, h := range []http.Header{nil, roleHeaders} {
		r := getHeader(t, proxy, upstream.URL+"/data?access_token="+url.QueryEscape(secrets[3]), h)
		var seen http.Header
		if r.status != 200 || json.Unmarshal(r.body, &seen) != nil {
			t.Fatalf("proxy = %d %s, want the upstream's 200", r.status, r.body)
		}
		for _, name := range []string{"Athenz-Principal-Auth", "Athenz-Role-Auth"} {
			if v := seen.Get(name); v != "" {
				secrets = append(secrets, v)
			}
		}
	}

	// Failures, each logged.
	errorsWanted := []struct {
		name   string
		answer func() answer
		status int
	}{
		{"ZTS 403", func() answer { return post(t, api+"/roletoken", `{"domain":"secret","role":"reader"}`) }, 403},
		{"ZTS 500", func() answer {
			zts.FailNext(ztsfake.EndpointAccessToken, 500, 1)
			return post(t, api+"/accesstoken", `{"domain":"prov","role":"reader"}`)
		}, 502},
		{"bad input", func() answer { return post(t, api+"/roletoken", `{"domain":"prov","roles":"reader"}`) }, 400},
		{"bad JSON", func() answer { return post(t, api+"/accesstoken", `{"domain":`) }, 400},
		{"upstream not allowed", func() answer {
			return getHeader(t, proxy, strings.Replace(upstream.URL, "127.0.0.1", "localhost", 1)+"/x?token="+url.QueryEscape(secrets[1]), roleHeaders)
		}, 403},
		{"upstream down", func() answer {
			return getHeader(t, proxy, closedURL+"/x?token="+url.QueryEscape(secrets[1]), nil)
		}, 502},
	}
	for _, e := range errorsWanted {
		if r := e.answer(); r.status != e.status {
			t.Errorf("%s: %d %s, want %d", e.name, r.status, r.body, e.status)
		}
	}

	// A failing certificate refresh, then a good one: 45 min on, the
	// certificate (1 h) is due, and so are the access tokens (1 h).
	zts.SetFailure(ztsfake.EndpointInstanceRefresh, ztsfake.Failure{Status: 500, Message: "database down"})
	clock.Advance(45 * time.Minute)
	waitFor(t, "a failed refresh logged", func() bool {
		return strings.Contains(logs.String(), "identity certificate attempt failed")
	})
	zts.SetFailure(ztsfake.EndpointInstanceRefresh, ztsfake.Failure{})
	for i := 0; zts.Calls(ztsfake.EndpointInstanceRefresh) < 2 || strings.Count(logs.String(), `"msg":"identity certificate in place"`) < 2; i++ {
		if i > 500 {
			t.Fatalf("no successful refresh; logs:\n%s", logs.String())
		}
		clock.Advance(5 * time.Second)
		time.Sleep(10 * time.Millisecond)
	}
	token(get(t, nil, api+"/ntoken"), "token")
	token(post(t, api+"/accesstoken", `{"domain":"prov","role":"writer"}`), "access_token")

	cancel()
	select {
	case code := <-exit:
		if code != 0 {
			t.Errorf("run after cancel = %d, want 0", code)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("sidecar did not stop within 15 s")
	}
	out := logs.String()

	// The log is JSON lines, with debug lines and the failures in it.
	lines := strings.Split(strings.TrimSpace(out), "\n")
	levels := map[string]int{}
	for _, l := range lines {
		var entry struct {
			Level string  `json:"level"`
			TS    float64 `json:"ts"`
			Msg   string  `json:"msg"`
		}
		if err := json.Unmarshal([]byte(l), &entry); err != nil || entry.Msg == "" || entry.TS == 0 {
			t.Errorf("log line is not a zap JSON entry (%v): %s", err, l)
		}
		levels[entry.Level]++
	}
	if levels["debug"] == 0 || levels["error"] == 0 || levels["info"] == 0 {
		t.Errorf("log levels %v, want debug, info and error lines from the flow", levels)
	}
	for _, want := range []string{`"msg":"request refused"`, `"msg":"request failed"`, "database down", "not included in the requested role", `"path":"http://127.0.0.1:`, `"msg":"token file written"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s: the flow did not log what it should", want)
		}
	}

	// Secrets: every token the flow saw, the key, the CSRs, the attestation
	// data; and the markers of such material.
	secrets = append(secrets, saToken)
	secrets = append(secrets, strings.Split(saToken, ".")...)
	for _, name := range []string{"service.key.pem"} {
		b, err := os.ReadFile(filepath.Join(idDir, name))
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, pemLines(t, b)...)
	}
	for _, ep := range []ztsfake.Endpoint{ztsfake.EndpointInstanceRegister, ztsfake.EndpointInstanceRefresh, ztsfake.EndpointRoleCert} {
		csr := zts.LastCSR(ep)
		if csr == nil {
			t.Fatalf("no CSR seen by %s", ep)
		}
		secrets = append(secrets, pemLines(t, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr.Raw}))...)
		secrets = append(secrets, base64.StdEncoding.EncodeToString(csr.Signature))
	}
	// A secret, or any run of 40 characters of one (which holds a whole
	// 20-character chunk), must not be in the log.
	const chunk = 20
	for _, s := range secrets {
		for i := 0; i+chunk <= len(s); i += chunk {
			if part := s[i : i+chunk]; strings.Contains(out, part) {
				t.Errorf("log contains %q, part of a secret (%.24s...)", part, s)
			}
		}
	}
	for _, marker := range []string{"PRIVATE KEY", "CERTIFICATE REQUEST", "v=S1;", "v=Z1;", "eyJ"} {
		if strings.Contains(out, marker) {
			for _, l := range lines {
				if strings.Contains(l, marker) {
					t.Errorf("log contains %q: %s", marker, l)
				}
			}
		}
	}
	if t.Failed() {
		t.Logf("logs:\n%s", out)
	}
}

// pemLines returns the base64 lines of a PEM block, each a secret.
func pemLines(t *testing.T, b []byte) []string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l != "" && !strings.HasPrefix(l, "-----") {
			out = append(out, l)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no PEM body in %q", b)
	}
	return out
}

type answer struct {
	status int
	body   []byte
}

func get(t *testing.T, client *http.Client, u string) answer { return getHeader(t, client, u, nil) }

func getHeader(t *testing.T, client *http.Client, u string, h http.Header) answer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "GET", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	return send(t, client, req)
}

func post(t *testing.T, u, body string) answer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "POST", u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return send(t, nil, req)
}

func send(t *testing.T, client *http.Client, req *http.Request) answer {
	t.Helper()
	if client == nil {
		client = http.DefaultClient
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Redacted(), err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return answer{status: res.StatusCode, body: b}
}

func proxyClient(t *testing.T, addr string) *http.Client {
	t.Helper()
	tr := &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: addr}),
		DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
