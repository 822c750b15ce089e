package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
)

// TestProbe: `sidecar probe` asks /readyz on loopback at the port of
// ATHENZ_HEALTH_LISTEN and prints the answer, which is what the kubelet's
// "Startup probe failed" Event shows; its exit code says ready or not.
func TestProbe(t *testing.T) {
	cases := []struct {
		name   string
		status int
		body   string
		want   int
	}{
		{"ready", http.StatusOK, "ok", 0},
		{"not ready", http.StatusServiceUnavailable, "identity: registering: zts answered 403: refused", 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/readyz" {
					http.NotFound(w, r)
					return
				}
				w.WriteHeader(c.status)
				_, _ = w.Write([]byte(c.body + "\n"))
			}))
			defer srv.Close()
			_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
			var out bytes.Buffer
			code := probe(context.Background(), nil, []string{"ATHENZ_HEALTH_LISTEN=:" + port}, &out)
			if code != c.want || strings.TrimSpace(out.String()) != c.body {
				t.Errorf("probe = %d, printed %q; want %d and %q", code, out.String(), c.want, c.body)
			}
		})
	}
	t.Run("no sidecar", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		_, port, _ := net.SplitHostPort(l.Addr().String())
		l.Close()
		var out bytes.Buffer
		if code := probe(context.Background(), nil, []string{"ATHENZ_HEALTH_LISTEN=127.0.0.1:" + port}, &out); code != 1 || !strings.Contains(out.String(), "does not answer") {
			t.Errorf("probe = %d, printed %q; want 1 and that the sidecar does not answer", code, out.String())
		}
	})
	t.Run("socket when health is off", func(t *testing.T) {
		// hostNetwork Pods open no health port: the probe asks the token
		// API's Unix socket, which serves /readyz and /healthz too.
		socket := filepath.Join(t.TempDir(), "sidecar.sock")
		l, err := net.Listen("unix", socket)
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/healthz":
				_, _ = w.Write([]byte("alive\n"))
			case "/readyz":
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = w.Write([]byte("identity: not yet\n"))
			default:
				http.NotFound(w, r)
			}
		})}
		go func() { _ = srv.Serve(l) }()
		t.Cleanup(func() { _ = srv.Close() })
		env := []string{"ATHENZ_HEALTH_LISTEN=off", "ATHENZ_SOCKET=" + socket}
		for _, c := range []struct {
			args []string
			want int
			out  string
		}{
			{nil, 1, "identity: not yet"},
			{[]string{"healthz"}, 0, "alive"},
		} {
			var out bytes.Buffer
			if code := probe(context.Background(), c.args, env, &out); code != c.want || strings.TrimSpace(out.String()) != c.out {
				t.Errorf("probe %q = %d, printed %q; want %d and %q", c.args, code, out.String(), c.want, c.out)
			}
		}
		var out bytes.Buffer
		if code := probe(context.Background(), []string{"metrics"}, env, &out); code != 2 {
			t.Errorf("probe metrics = %d, want 2 (usage)", code)
		}
	})
}
