package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
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
			code := probe(context.Background(), []string{"ATHENZ_HEALTH_LISTEN=:" + port}, &out)
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
		if code := probe(context.Background(), []string{"ATHENZ_HEALTH_LISTEN=127.0.0.1:" + port}, &out); code != 1 || !strings.Contains(out.String(), "does not answer") {
			t.Errorf("probe = %d, printed %q; want 1 and that the sidecar does not answer", code, out.String())
		}
	})
}
