package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/athenz-injector/athenz-injector/pkg/tokens/ztsfake"
	"github.com/athenz-injector/athenz-injector/test/framework"
	"github.com/athenz-injector/athenz-injector/test/load/report"
	"github.com/athenz-injector/athenz-injector/test/load/stats"
)

// round is one load round of one client.
type round struct {
	perSecond float64
	p50, p99  time.Duration
}

func run(o options) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "tlsorigin")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	zts, err := ztsfake.Start(ztsfake.Options{AllowAll: true, KeyType: "ec"})
	if err != nil {
		return fmt.Errorf("starting the fake zts: %w", err)
	}
	defer zts.Close()
	certPEM, keyPEM, err := zts.IssueIdentity("bench", "client")
	if err != nil {
		return err
	}
	serving, err := zts.IssueServer("127.0.0.1")
	if err != nil {
		return err
	}
	servingKey, err := x509.MarshalPKCS8PrivateKey(serving.PrivateKey)
	if err != nil {
		return err
	}
	files := map[string][]byte{
		"cert.pem": certPEM, "key.pem": keyPEM, clientCAFile: zts.CACertPEM(),
		serverCertFile: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: serving.Certificate[0]}),
		serverKeyFile:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: servingKey}),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return err
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "identity"), 0o700); err != nil {
		return err
	}

	var addrs [4]string // sidecar API, sidecar health, the two upstreams
	for i := range addrs {
		if addrs[i], err = framework.FreeAddr(); err != nil {
			return err
		}
	}
	api, health := addrs[0], addrs[1]
	scenarios := []scenario{
		{name: "remote", delay: o.delay, addr: addrs[2]},
		{name: "local", addr: addrs[3]},
	}
	sidecar := exec.CommandContext(ctx, o.sidecarBin)
	sidecar.Env = []string{
		"ATHENZ_ZTS_URL=" + zts.URL(),
		"ATHENZ_ZTS_CA_FILE=" + filepath.Join(dir, clientCAFile),
		"ATHENZ_IDENTITY_MODE=files",
		"ATHENZ_CERT_FILE=" + filepath.Join(dir, "cert.pem"),
		"ATHENZ_KEY_FILE=" + filepath.Join(dir, "key.pem"),
		"ATHENZ_IDENTITY_DIR=" + filepath.Join(dir, "identity"),
		"ATHENZ_LISTEN=" + api,
		"ATHENZ_HEALTH_LISTEN=" + health,
		"ATHENZ_PROXY_TLS_HOSTS=127.0.0.1",
		"ATHENZ_LOG_LEVEL=error",
	}
	cmds := []*exec.Cmd{sidecar}
	for _, sc := range scenarios {
		cmds = append(cmds, exec.CommandContext(ctx, os.Args[0], "-serve-upstream", sc.addr, "-upstream-dir", dir,
			fmt.Sprintf("-body=%d", o.bodyBytes), fmt.Sprintf("-http2=%v", o.http2), fmt.Sprintf("-delay=%v", sc.delay)))
	}
	for _, cmd := range cmds {
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("starting %s: %w", cmd.Path, err)
		}
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	}
	if err := waitOK(ctx, http.DefaultClient, "http://"+health+"/readyz"); err != nil {
		return fmt.Errorf("sidecar: %w", err)
	}

	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return err
	}
	roleToken, err := fetchRoleToken(ctx, "http://"+api+"/roletoken?domain=bench&role=reader")
	if err != nil {
		return err
	}
	direct := &http.Transport{
		TLSClientConfig:   &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: zts.CAPool(), MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2: true,
		MaxConnsPerHost:   o.concurrency, MaxIdleConnsPerHost: o.concurrency,
		DisableCompression: true,
	}
	proxyURL, _ := url.Parse("http://" + api)
	proxied := &http.Transport{Proxy: http.ProxyURL(proxyURL), MaxConnsPerHost: o.concurrency, MaxIdleConnsPerHost: o.concurrency, DisableCompression: true}
	defer direct.CloseIdleConnections()
	defer proxied.CloseIdleConnections()
	clients := []client{
		{"direct", &http.Client{Transport: direct, Timeout: 10 * time.Second}, "https", http.Header{"Athenz-Role-Auth": {roleToken}}},
		{"proxy", &http.Client{Transport: proxied, Timeout: 10 * time.Second}, "http", http.Header{"Athenz-Domain": {"bench"}, "Athenz-Role": {"reader"}}},
	}
	for _, sc := range scenarios {
		if err := waitOK(ctx, clients[0].client, clients[0].url(sc)); err != nil && !isStatus(err) {
			return fmt.Errorf("upstream %s: %w", sc.name, err)
		}
	}
	res := figures{opts: o, rounds: map[string][]round{}}
	for i := range o.rounds + 1 { // the first round warms everything and is not counted
		for _, sc := range scenarios {
			for _, c := range clients {
				r, proto, err := load(ctx, c.client, c.url(sc), c.header, o.concurrency, o.roundTime)
				if err != nil {
					return fmt.Errorf("%s %s round %d: %w", sc.name, c.name, i, err)
				}
				fmt.Fprintf(os.Stderr, "round %d, %s upstream, %s: %.0f requests/s over %s\n", i, sc.name, c.name, r.perSecond, proto)
				if i > 0 {
					res.rounds[sc.name+"/"+c.name] = append(res.rounds[sc.name+"/"+c.name], r)
				}
				if c.name == "direct" {
					res.proto = proto
				}
			}
		}
	}
	res.hwmKiB, _ = peakRSS(sidecar.Process.Pid)
	md := res.markdown(scenarios)
	fmt.Println(md)
	if o.report != "" {
		return report.WriteSection(o.report, "tlsorigin", md)
	}
	return nil
}

// scenario is an upstream: how long it takes to answer, where it listens.
type scenario struct {
	name  string
	delay time.Duration
	addr  string
}

// client is one way of calling an upstream: directly over mTLS, or
// through the proxy.
type client struct {
	name   string
	client *http.Client
	scheme string
	header http.Header
}

func (c client) url(sc scenario) string { return c.scheme + "://" + sc.addr + "/orders" }

// load sends GET url with header from c goroutines for d and returns the
// round's throughput and latency, and the protocol the upstream spoke.
func load(ctx context.Context, client *http.Client, url string, header http.Header, c int, d time.Duration) (round, string, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var (
		mu       sync.Mutex
		lat      []time.Duration
		failures atomic.Int64
		firstErr atomic.Value
		proto    atomic.Value
		wg       sync.WaitGroup
	)
	start := time.Now()
	for range c {
		wg.Go(func() {
			mine := make([]time.Duration, 0, 1<<14)
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				req.Header = header.Clone()
				t0 := time.Now()
				res, err := client.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if err == nil && res.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %s", res.Status)
					}
					proto.Store(res.Proto)
				}
				if ctx.Err() != nil {
					break
				}
				if err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if n := failures.Load(); n > 0 {
		return round{}, "", fmt.Errorf("%d requests failed, the first: %v", n, firstErr.Load())
	}
	if len(lat) == 0 {
		return round{}, "", fmt.Errorf("no request finished within %v", d)
	}
	slices.Sort(lat)
	p, _ := proto.Load().(string)
	return round{perSecond: float64(len(lat)) / elapsed.Seconds(), p50: lat[len(lat)/2], p99: lat[len(lat)*99/100]}, p, nil
}

// median returns the round of median throughput.
func median(rs []round) round {
	return stats.Median(rs, func(r round) float64 { return r.perSecond })
}

func fetchRoleToken(ctx context.Context, url string) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	var t struct {
		Token string `json:"token"`
	}
	if err := json.NewDecoder(res.Body).Decode(&t); err != nil || t.Token == "" {
		return "", fmt.Errorf("GET %s: %s: no token (%v)", url, res.Status, err)
	}
	return t.Token, nil
}

// statusError is an answer other than 200: the server is up.
type statusError struct{ status string }

func (e statusError) Error() string { return "status " + e.status }

func isStatus(err error) bool { _, ok := err.(statusError); return ok }

// waitOK polls url for up to 30 s until it answers 200 (or, with the
// error, any status).
func waitOK(ctx context.Context, client *http.Client, url string) error {
	var last error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && ctx.Err() == nil; time.Sleep(100 * time.Millisecond) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		res, err := client.Do(req)
		if err != nil {
			last = err
			continue
		}
		res.Body.Close()
		if res.StatusCode == http.StatusOK {
			return nil
		}
		return statusError{res.Status}
	}
	return fmt.Errorf("%s did not answer within 30 s: %v", url, last)
}

// peakRSS reads VmHWM (KiB) of a process.
func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	var kib int64
	for _, line := range slices.Collect(func(yield func(string) bool) {
		start := 0
		for i, c := range b {
			if c == '\n' {
				if !yield(string(b[start:i])) {
					return
				}
				start = i + 1
			}
		}
	}) {
		if _, err := fmt.Sscanf(line, "VmHWM: %d kB", &kib); err == nil {
			return kib, nil
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}

// figures is what the report shows.
type figures struct {
	opts   options
	rounds map[string][]round // by "<scenario>/<client>"
	proto  string             // of the upstream calls
	hwmKiB int64
}

func (f figures) markdown(scenarios []scenario) string {
	us := func(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d)/1e3) }
	o := f.opts
	var b []byte
	b = fmt.Appendf(b, "Run of %s on %d CPUs, %s; %d concurrent requests, %d rounds of %s per client and upstream after a warm-up round, alternating; the median round of each is shown. The upstreams answer %d bytes over %s.\n\n",
		time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), runtime.Version(), o.concurrency, o.rounds, o.roundTime, o.bodyBytes, f.proto)
	b = fmt.Appendf(b, "| upstream | client | requests/s | p50 | p99 |\n|---|---|---|---|---|\n")
	for _, sc := range scenarios {
		what := "answers at once, on the same CPUs (the cost of the extra hop)"
		if sc.delay > 0 {
			what = fmt.Sprintf("a remote service: answers after %v", sc.delay)
		}
		direct, proxy := median(f.rounds[sc.name+"/direct"]), median(f.rounds[sc.name+"/proxy"])
		b = fmt.Appendf(b, "| %s | Go `http.Client`, mTLS with the Pod's certificate and a role token (baseline) | %.0f | %s | %s |\n", what, direct.perSecond, us(direct.p50), us(direct.p99))
		b = fmt.Appendf(b, "| | the app's plain HTTP through the proxy: role token added, TLS originated with the same certificate | %.0f | %s | %s |\n", proxy.perSecond, us(proxy.p50), us(proxy.p99))
		ratio := proxy.perSecond / direct.perSecond
		target := "(shown for the hop's cost)"
		if sc.delay > 0 {
			target = "(target ≥ 0.8: met)"
			if ratio < 0.8 {
				target = "(target ≥ 0.8: NOT met)"
			}
		}
		b = fmt.Appendf(b, "| | **proxy / direct** | **%.2f** %s | %.2f× | %.2f× |\n", ratio, target, float64(proxy.p50)/float64(direct.p50), float64(proxy.p99)/float64(direct.p99))
	}
	if f.hwmKiB > 0 {
		b = fmt.Appendf(b, "\nSidecar peak RSS (VmHWM) after the load: %.1f MB.\n", float64(f.hwmKiB)/1024)
	}
	return string(b)
}
