package sidecar

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

const benchBody = `{"domain":"prov","role":"reader"}`

// discardWriter is a reusable ResponseWriter, so the handler benchmark
// counts the handler's allocations only.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(int)             {}

// BenchmarkRoleTokenHandler measures a cached POST /roletoken in the
// handler alone (no network).
func BenchmarkRoleTokenHandler(b *testing.B) {
	h := apiHandler{stubHandler(b)}
	req, _ := http.NewRequest(http.MethodPost, "/roletoken", nil)
	req.Header.Set("Content-Type", "application/json")
	w := &discardWriter{h: http.Header{}}
	body := strings.NewReader(benchBody)
	rc := io.NopCloser(body)
	serve := func() {
		body.Reset(benchBody)
		req.Body = rc
		req.ContentLength = int64(len(benchBody))
		clear(w.h)
		h.ServeHTTP(w, req)
	}
	serve() // fill the cache
	b.ReportAllocs()
	for b.Loop() {
		serve()
	}
}

// BenchmarkRoleTokenServer compares the throughput of cached POST
// /roletoken over loopback with a bare net/http server that answers a
// fixed token: the sidecar's overhead over HTTP itself. make bench runs a
// load generator for the figures in docs/performance.md; this is the quick
// check.
func BenchmarkRoleTokenServer(b *testing.B) {
	token := []byte(`{"token":"v=Z1;d=prov;r=reader;p=client.api;a=0123456789abcdef;t=1;e=2;k=0;s=` + sigFiller + `","expiryTime":2}` + "\n")
	bare := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(token)
	})
	for _, tt := range []struct {
		name    string
		handler http.Handler
	}{
		{"bare", bare},
		{"sidecar", apiHandler{stubHandler(b)}},
	} {
		b.Run(tt.name, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			srv := &http.Server{Handler: tt.handler}
			go func() { _ = srv.Serve(ln) }()
			defer srv.Close()
			url := "http://" + ln.Addr().String() + "/roletoken"
			tr := &http.Transport{MaxIdleConnsPerHost: 64}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr}
			post := func() error {
				res, err := client.Post(url, "application/json", bytes.NewReader([]byte(benchBody)))
				if err != nil {
					return err
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				return nil
			}
			if err := post(); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := post(); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
