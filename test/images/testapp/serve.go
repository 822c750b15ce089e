package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// serve is the app container's process. It answers GET /healthz on
// -listen until SIGTERM. With -watch-identity DIR it reads the identity
// files there every -watch-interval, as an app that reloads its
// certificate would, and reports on GET /identity what it saw: how many
// reads, how many found a certificate whose key is not the key file's or a
// file that does not parse (each would be a torn rotation), and the
// certificate serials seen. With -shutdown-get URL it GETs URL after
// SIGTERM, before it exits, and logs the answer: an app that needs a token
// during its own graceful shutdown; -shutdown-header "Name: value" (any
// number) adds headers to it, such as the sidecar proxy's Athenz-Domain and
// Athenz-Role.
func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	listen := fs.String("listen", ":8080", "listen address")
	watchDir := fs.String("watch-identity", "", "identity directory to watch")
	watchEvery := fs.Duration("watch-interval", 20*time.Millisecond, "how often to read the identity files")
	shutdownGet := fs.String("shutdown-get", "", "URL to GET after SIGTERM, before exiting")
	shutdownHeaders := http.Header{}
	fs.Func("shutdown-header", `header "Name: value" of the -shutdown-get request (repeatable)`, func(v string) error {
		name, value, ok := strings.Cut(v, ":")
		if !ok {
			return fmt.Errorf("want \"Name: value\", not %q", v)
		}
		shutdownHeaders.Add(strings.TrimSpace(name), strings.TrimSpace(value))
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	w := &watcher{dir: *watchDir, serials: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, _ *http.Request) { fmt.Fprintln(rw, "ok") })
	mux.HandleFunc("GET /identity", func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(rw).Encode(w.report())
	})
	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	if *watchDir != "" {
		go w.run(ctx, *watchEvery)
	}
	fmt.Println("testapp: serving on", *listen)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	fmt.Println("testapp: SIGTERM")
	if *shutdownGet != "" {
		body, status, err := get(*shutdownGet, shutdownHeaders)
		fmt.Printf("testapp: shutdown GET %s: status %d, %d bytes, error %v\n", *shutdownGet, status, len(body), err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

func get(url string, header http.Header) ([]byte, int, error) {
	hc := &http.Client{Timeout: 10 * time.Second}
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header = header
	resp, err := hc.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return b, resp.StatusCode, err
}

// watcher reads the identity files over and over.
type watcher struct {
	dir string

	mu       sync.Mutex
	reads    int
	torn     int
	missing  int
	lastErr  string
	serials  map[string]bool
	firstAt  time.Time
	lastRead time.Time
}

// WatchReport is what GET /identity answers.
type WatchReport struct {
	Reads   int      `json:"reads"`
	Torn    int      `json:"torn"`
	Missing int      `json:"missing"`
	LastErr string   `json:"lastError,omitempty"`
	Serials []string `json:"serials"`
	Since   string   `json:"since"`
}

func (w *watcher) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		w.readOnce()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (w *watcher) readOnce() {
	certPEM, errC := os.ReadFile(filepath.Join(w.dir, "service.cert.pem"))
	keyPEM, errK := os.ReadFile(filepath.Join(w.dir, "service.key.pem"))
	w.mu.Lock()
	defer w.mu.Unlock()
	now := time.Now()
	if w.firstAt.IsZero() {
		w.firstAt = now
	}
	w.lastRead = now
	w.reads++
	if errC != nil || errK != nil {
		w.missing++
		w.lastErr = fmt.Sprint(errC, errK)
		return
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil || len(bytes.TrimSpace(certPEM)) == 0 {
		w.torn++
		w.lastErr = fmt.Sprint(err)
		return
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		w.torn++
		w.lastErr = err.Error()
		return
	}
	w.serials[leaf.SerialNumber.String()] = true
}

func (w *watcher) report() WatchReport {
	w.mu.Lock()
	defer w.mu.Unlock()
	r := WatchReport{Reads: w.reads, Torn: w.torn, Missing: w.missing, LastErr: w.lastErr, Serials: []string{}}
	for s := range w.serials {
		r.Serials = append(r.Serials, s)
	}
	if !w.firstAt.IsZero() {
		r.Since = w.firstAt.UTC().Format(time.RFC3339Nano)
	}
	return r
}
