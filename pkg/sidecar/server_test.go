package sidecar

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"

	"github.com/athenz-injector/athenz-injector/pkg/tokens/ztsfake"
)

// TestHealthListener: health has a port of its own that serves no tokens;
// the API listener answers /healthz and /readyz too.
func TestHealthListener(t *testing.T) {
	zts := newZTS(t)
	f := startSidecar(t, zts, nil, nil)
	if f.health == f.api {
		t.Fatalf("health and API share %s", f.api)
	}
	for _, base := range []string{f.health, f.api} {
		for _, p := range []string{"/healthz", "/readyz"} {
			if r := do(t, nil, "GET", base+p, "", "", nil); r.status != 200 {
				t.Errorf("GET %s%s = %d %s, want 200", base, p, r.status, r.body)
			}
		}
	}
	for _, p := range []string{"/ntoken", "/roletoken?domain=prov", "/accesstoken?domain=prov"} {
		r := do(t, nil, "GET", f.health+p, "", "", nil)
		if r.status != http.StatusNotFound {
			t.Errorf("GET %s on the health listener = %d %s, want 404 (no tokens there)", p, r.status, r.body)
		}
	}
	client := proxyClient(t, strings.TrimPrefix(f.health, "http://"), "")
	if r := do(t, client, "GET", "http://127.0.0.1:1/", "", "", nil); r.status != http.StatusNotFound {
		t.Errorf("proxying through the health listener = %d %s, want 404", r.status, r.body)
	}
}

// TestReadyzWaitsForPrefetch: /readyz answers 503, naming what is
// missing, until every prefetch token is loaded; the app then hits them.
func TestReadyzWaitsForPrefetch(t *testing.T) {
	zts := newZTS(t)
	zts.FailNext(ztsfake.EndpointAccessToken, 503, 2)
	f := startSidecar(t, zts, []string{
		"ATHENZ_PREFETCH=prov:role.reader",
		"ATHENZ_PREFETCH_ROLE_TOKENS=prov:role.writer,prov:domain",
	}, nil)
	r := do(t, nil, "GET", f.health+"/readyz", "", "", nil)
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("first /readyz = %d %s, want 503 while the access token fails", r.status, r.body)
	}
	if msg := r.errorMessage(t); !strings.Contains(msg, "access token prov:role.reader") {
		t.Errorf("/readyz message %q, want it to name the missing access token", msg)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		r = do(t, nil, "GET", f.health+"/readyz", "", "", nil)
		if r.status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d %s after 10 s", r.status, r.body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	before := zts.Calls(ztsfake.EndpointAccessToken) + zts.Calls(ztsfake.EndpointRoleToken)
	for _, req := range []struct{ path, body string }{
		{"/accesstoken", `{"domain":"prov","role":"reader"}`},
		{"/roletoken", `{"domain":"prov","role":"writer"}`},
		{"/roletoken", `{"domain":"prov"}`},
	} {
		if r := do(t, nil, "POST", f.api+req.path, "application/json", req.body, nil); r.status != 200 {
			t.Errorf("POST %s %s = %d %s", req.path, req.body, r.status, r.body)
		}
	}
	if after := zts.Calls(ztsfake.EndpointAccessToken) + zts.Calls(ztsfake.EndpointRoleToken); after != before {
		t.Errorf("ZTS calls went from %d to %d, want the prefetched tokens served from the cache", before, after)
	}
}

// TestUnixSocket: ATHENZ_SOCKET serves the same token API, next to TCP or,
// with ATHENZ_LISTEN=off (hostNetwork Pods), instead of it.
func TestUnixSocket(t *testing.T) {
	tests := []struct {
		name    string
		env     []string
		wantAPI bool
	}{
		{name: "socket and loopback", wantAPI: true},
		{name: "socket only", env: []string{"ATHENZ_LISTEN=off"}, wantAPI: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			zts := newZTS(t)
			sock := filepath.Join(t.TempDir(), "sidecar.sock")
			f := startSidecar(t, zts, append([]string{"ATHENZ_SOCKET=" + sock}, tt.env...), nil)
			if got := f.srv.Addrs().Socket; got != sock {
				t.Errorf("Addrs().Socket = %q, want %q", got, sock)
			}
			if got := f.srv.Addrs().API; (got != "") != tt.wantAPI {
				t.Errorf("Addrs().API = %q, want a TCP listener: %v", got, tt.wantAPI)
			}
			client := &http.Client{Transport: &http.Transport{
				DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
					return (&net.Dialer{}).DialContext(ctx, "unix", sock)
				},
			}}
			r := do(t, client, "GET", "http://sidecar/roletoken?domain=prov&role=reader", "", "", nil)
			if r.status != 200 || !strings.Contains(string(r.body), `"token":"v=Z1;d=prov;r=reader;`) {
				t.Errorf("GET /roletoken over the socket = %d %s, want a role token", r.status, r.body)
			}
		})
	}
}

// TestGracefulShutdown: when the context ends, listeners stop accepting,
// an in-flight request finishes, and Wait returns nil.
func TestGracefulShutdown(t *testing.T) {
	zts := newZTS(t)
	release := make(chan struct{})
	started := make(chan struct{})
	upstream := echoServerFunc(t, func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		_, _ = w.Write([]byte("done"))
	})
	env, _ := keyFileEnv(t, zts)
	cfg, err := ConfigFromEnv(env)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	srv, err := Start(ctx, cfg, testr.New(t))
	if err != nil {
		t.Fatal(err)
	}
	client := proxyClient(t, srv.Addrs().API, "")
	type result struct {
		status int
		body   string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		res, err := client.Get(upstream + "/slow")
		if err != nil {
			done <- result{err: err}
			return
		}
		defer res.Body.Close()
		b := make([]byte, 16)
		n, _ := res.Body.Read(b)
		done <- result{status: res.StatusCode, body: string(b[:n])}
	}()
	<-started
	cancel()
	// Shutdown closes the listeners first; wait until new connections fail.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", srv.Addrs().API)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("API listener still accepts 5 s after shutdown began")
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(release)
	got := <-done
	if got.err != nil || got.status != 200 || got.body != "done" {
		t.Errorf("in-flight request = %d %q %v, want 200 \"done\"", got.status, got.body, got.err)
	}
	if err := srv.Wait(); err != nil {
		t.Errorf("Wait = %v, want nil after a clean shutdown", err)
	}
}

// TestShutdownBound: a request still in flight when ShutdownTimeout runs
// out is cut, and the sidecar stops anyway, with no error.
func TestShutdownBound(t *testing.T) {
	zts := newZTS(t)
	started := make(chan struct{})
	upstream := echoServerFunc(t, func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done() // never answers
	})
	env, _ := keyFileEnv(t, zts)
	cfg, err := ConfigFromEnv(env)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ShutdownTimeout = 300 * time.Millisecond
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	srv, err := Start(ctx, cfg, testr.New(t))
	if err != nil {
		t.Fatal(err)
	}
	client := proxyClient(t, srv.Addrs().API, "")
	errc := make(chan error, 1)
	go func() {
		res, err := client.Get(upstream + "/forever")
		if err == nil {
			_, err = io.ReadAll(res.Body)
			res.Body.Close()
		}
		errc <- err
	}()
	<-started
	start := time.Now()
	cancel()
	if err := srv.Wait(); err != nil {
		t.Errorf("Wait = %v, want nil after the shutdown timeout", err)
	}
	if d := time.Since(start); d < cfg.ShutdownTimeout || d > cfg.ShutdownTimeout+2*time.Second {
		t.Errorf("stopped %v after the context ended, want about ShutdownTimeout (%v)", d, cfg.ShutdownTimeout)
	}
	if err := <-errc; err == nil {
		t.Errorf("the request cut at shutdown succeeded, want an error")
	}
}

func echoServerFunc(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := &http.Server{Handler: h}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// TestDevMode: --dev serves the whole API with an in-process fake ZTS, as
// the README's curl examples use it.
func TestDevMode(t *testing.T) {
	tests := []struct {
		name       string
		env        []string
		wantNToken string
	}{
		{"defaults", nil, "v=S1;d=dev;n=app;k=0;"},
		{"ATHENZ_DOMAIN and ATHENZ_SERVICE", []string{"ATHENZ_DOMAIN=my.team", "ATHENZ_SERVICE=web"}, "v=S1;d=my.team;n=web;k=0;"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := ConfigFromEnv(append([]string{"ATHENZ_LISTEN=127.0.0.1:0", "ATHENZ_HEALTH_LISTEN=127.0.0.1:0"}, tt.env...))
			if err != nil {
				t.Fatal(err)
			}
			cfg.Dev = true
			ctx, cancel := context.WithCancel(t.Context())
			srv, err := Start(ctx, cfg, testr.New(t))
			if err != nil {
				cancel()
				t.Fatalf("Start --dev: %v", err)
			}
			errc := make(chan error, 1)
			go func() { errc <- srv.Wait() }()
			waitIdentity(t, srv)
			api := "http://" + srv.Addrs().API
			if !strings.HasPrefix(srv.Addrs().ZTS, "https://127.0.0.1:") {
				t.Errorf("dev ZTS at %q, want a loopback https URL", srv.Addrs().ZTS)
			}

			// curl localhost:8081/ntoken
			r := do(t, nil, "GET", api+"/ntoken", "", "", nil)
			if r.status != 200 || !strings.Contains(string(r.body), `{"token":"`+tt.wantNToken) {
				t.Errorf("GET /ntoken = %d %s, want a token starting %s", r.status, r.body, tt.wantNToken)
			}
			// curl 'localhost:8081/roletoken?domain=sports&role=reader'
			r = do(t, nil, "GET", api+"/roletoken?domain=sports&role=reader", "", "", nil)
			if r.status != 200 || !strings.Contains(string(r.body), `{"token":"v=Z1;d=sports;r=reader;`) {
				t.Errorf("GET /roletoken = %d %s, want a role token for sports:reader", r.status, r.body)
			}
			// curl -d '{"domain":"sports","role":"reader"}' localhost:8081/accesstoken
			r = do(t, nil, "POST", api+"/accesstoken", "application/x-www-form-urlencoded", `{"domain":"sports","role":"reader"}`, nil)
			if r.status != 200 || !strings.Contains(string(r.body), `"token_type":"Bearer"`) {
				t.Errorf("POST /accesstoken = %d %s, want an access token", r.status, r.body)
			}
			if r := do(t, nil, "GET", "http://"+srv.Addrs().Health+"/readyz", "", "", nil); r.status != 200 {
				t.Errorf("GET /readyz = %d %s, want 200", r.status, r.body)
			}

			cancel()
			select {
			case err := <-errc:
				if err != nil {
					t.Errorf("Wait = %v, want nil", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("dev sidecar did not stop within 10 s of cancel")
			}
		})
	}
}

// TestStartErrors: problems found at start stop the sidecar with an error
// that names the variable.
func TestStartErrors(t *testing.T) {
	zts := newZTS(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := t.TempDir()
	notPEM := writeFile(t, dir, "not.pem", []byte("hello"))

	tests := []struct {
		name    string
		env     []string // replaces the key-file env entries of the same name
		mutate  func(*Config)
		wantErr string
		wantIs  error
	}{
		{name: "copper-argos without provider", env: []string{"ATHENZ_IDENTITY_MODE=copper-argos", "ATHENZ_KEY_FILE=", "ATHENZ_KEY_VERSION=",
			"POD_UID=0f1e2d3c-aaaa-bbbb-cccc-000000000001", "ATHENZ_DNS_SUFFIX=athenz.test", "ATHENZ_SA_TOKEN_FILE=" + notPEM}, wantErr: "ATHENZ_PROVIDER"},
		{name: "copper-argos with an unreadable token file", env: []string{"ATHENZ_IDENTITY_MODE=copper-argos", "ATHENZ_KEY_FILE=", "ATHENZ_KEY_VERSION=",
			"POD_UID=0f1e2d3c-aaaa-bbbb-cccc-000000000001", "ATHENZ_DNS_SUFFIX=athenz.test", "ATHENZ_PROVIDER=sys.auth.k8s",
			"ATHENZ_SA_TOKEN_FILE=" + filepath.Join(dir, "missing-token")}, wantErr: "ATHENZ_SA_TOKEN_FILE"},
		{name: "missing key file", env: []string{"ATHENZ_KEY_FILE=" + filepath.Join(dir, "missing.pem")}, wantErr: "ATHENZ_KEY_FILE"},
		{name: "key file not a key", env: []string{"ATHENZ_KEY_FILE=" + notPEM}, wantErr: "ATHENZ_KEY_FILE"},
		{name: "missing CA file", env: []string{"ATHENZ_ZTS_CA_FILE=" + filepath.Join(dir, "missing.pem")}, wantErr: "ATHENZ_ZTS_CA_FILE"},
		{name: "CA file without certificates", env: []string{"ATHENZ_ZTS_CA_FILE=" + notPEM}, wantErr: "ATHENZ_ZTS_CA_FILE=" + notPEM + ": no PEM certificate"},
		{name: "port in use", env: []string{"ATHENZ_LISTEN=" + busy.Addr().String()}, wantErr: "ATHENZ_LISTEN=" + busy.Addr().String()},
		{name: "health port in use", env: []string{"ATHENZ_HEALTH_LISTEN=" + busy.Addr().String()}, wantErr: "ATHENZ_HEALTH_LISTEN="},
		{name: "socket path is a file", env: []string{"ATHENZ_SOCKET=" + notPEM}, wantErr: "ATHENZ_SOCKET=" + notPEM + ": " + notPEM + " exists and is not a socket"},
		{name: "invalid config", env: []string{"ATHENZ_LISTEN=0.0.0.0:0"}, wantErr: "ATHENZ_LISTEN_ALLOW_REMOTE=true"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base, _ := keyFileEnv(t, zts)
			env := overrideEnv(base, tt.env)
			cfg, err := ConfigFromEnv(env)
			if err != nil {
				t.Fatalf("ConfigFromEnv: %v", err)
			}
			if tt.mutate != nil {
				tt.mutate(&cfg)
			}
			err = Run(t.Context(), cfg, testr.New(t))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Run = %v, want an error containing %q", err, tt.wantErr)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("Run = %v, want errors.Is %v", err, tt.wantIs)
			}
		})
	}
}

// overrideEnv replaces entries of base by name with those of over.
func overrideEnv(base, over []string) []string {
	out := append([]string(nil), base...)
	for _, kv := range over {
		name, _, _ := strings.Cut(kv, "=")
		replaced := false
		for i, b := range out {
			if strings.HasPrefix(b, name+"=") {
				out[i], replaced = kv, true
			}
		}
		if !replaced {
			out = append(out, kv)
		}
	}
	return out
}

// TestServerBounds: a token request whose body does not arrive within
// ATHENZ_READ_TIMEOUT answers 408, and a listener serves at most
// ATHENZ_MAX_CONNECTIONS connections at once (more wait until one
// closes).
func TestServerBounds(t *testing.T) {
	t.Run("body read timeout", func(t *testing.T) {
		f := startSidecar(t, newZTS(t), []string{"ATHENZ_READ_TIMEOUT=300ms"}, nil)
		conn, err := net.Dial("tcp", f.srv.Addrs().API)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		start := time.Now()
		if _, err := io.WriteString(conn, "POST /roletoken HTTP/1.1\r\nHost: sidecar\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"domain\":"); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("reading the answer to a stalled body: %v", err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), "ATHENZ_READ_TIMEOUT") {
			t.Errorf("stalled body = %d %s, want 408 naming ATHENZ_READ_TIMEOUT", res.StatusCode, body)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("answered after %v, want about 300 ms", d)
		}
	})
	t.Run("a request waiting for ZTS outlives the read timeout", func(t *testing.T) {
		zts := newZTS(t)
		f := startSidecar(t, zts, []string{"ATHENZ_READ_TIMEOUT=200ms"}, nil)
		zts.SetLatency(ztsfake.EndpointRoleToken, time.Second)
		r := do(t, nil, "POST", f.api+"/roletoken", "application/json", `{"domain":"prov","role":"reader"}`, nil)
		if r.status != http.StatusOK {
			t.Errorf("a token request answered by ZTS after 1 s with ATHENZ_READ_TIMEOUT=200ms = %d %s, want 200", r.status, r.body)
		}
	})
	t.Run("connection bound", func(t *testing.T) {
		f := startSidecar(t, newZTS(t), []string{"ATHENZ_MAX_CONNECTIONS=2"}, nil)
		var held []net.Conn
		for range 2 {
			c, err := net.Dial("tcp", f.srv.Addrs().API)
			if err != nil {
				t.Fatal(err)
			}
			held = append(held, c)
		}
		tr := &http.Transport{DisableKeepAlives: true}
		t.Cleanup(tr.CloseIdleConnections)
		client := &http.Client{Transport: tr, Timeout: 300 * time.Millisecond}
		if res, err := client.Get(f.api + "/healthz"); err == nil {
			res.Body.Close()
			t.Fatalf("a third connection was served (%d) while two were held, want it to wait", res.StatusCode)
		}
		held[0].Close()
		client.Timeout = 5 * time.Second
		res, err := client.Get(f.api + "/healthz")
		if err != nil {
			t.Fatalf("after one of two connections closed: %v", err)
		}
		res.Body.Close()
		held[1].Close()
	})
}
