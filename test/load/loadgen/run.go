package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/athenz-injector/athenz-injector/pkg/tokens/ztsfake"
	"github.com/athenz-injector/athenz-injector/test/load/report"
)

type options struct {
	sidecarBin  string
	roundTime   time.Duration
	rounds      int
	concurrency int
	keys        int
	report      string
}

// figures is everything the report shows.
type figures struct {
	opts                   options
	bare, sidecar          result
	sidecarHWM, bareHWM    int64 // peak RSS in KiB after the throughput rounds
	keysRSS, keysHWM       int64 // after loading opts.keys distinct keys
	sidecarSize, goVersion string
}

func run(opts options) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "loadgen")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	zts, err := ztsfake.Start(ztsfake.Options{AllowAll: true, KeyType: "ec"})
	if err != nil {
		return fmt.Errorf("starting fake zts: %w", err)
	}
	defer zts.Close()
	certPEM, keyPEM, err := zts.IssueIdentity("bench", "client")
	if err != nil {
		return err
	}
	if err := os.Mkdir(filepath.Join(dir, "identity"), 0o700); err != nil {
		return err
	}
	files := map[string][]byte{"cert.pem": certPEM, "key.pem": keyPEM, "ca.pem": zts.CACertPEM()}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return err
		}
	}

	sidecarAddr, healthAddr, bareAddr := freeAddr(), freeAddr(), freeAddr()
	sidecar := exec.CommandContext(ctx, opts.sidecarBin)
	sidecar.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"ATHENZ_ZTS_URL=" + zts.URL(),
		"ATHENZ_ZTS_CA_FILE=" + filepath.Join(dir, "ca.pem"),
		"ATHENZ_IDENTITY_MODE=files",
		"ATHENZ_CERT_FILE=" + filepath.Join(dir, "cert.pem"),
		"ATHENZ_KEY_FILE=" + filepath.Join(dir, "key.pem"),
		"ATHENZ_IDENTITY_DIR=" + filepath.Join(dir, "identity"),
		"ATHENZ_LISTEN=" + sidecarAddr,
		"ATHENZ_HEALTH_LISTEN=" + healthAddr,
		"ATHENZ_LOG_LEVEL=error",
	}
	logFile, err := os.Create(filepath.Join(dir, "sidecar.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	sidecar.Stdout, sidecar.Stderr = logFile, logFile
	bare := exec.CommandContext(ctx, os.Args[0], "-bare", bareAddr)
	bare.Stderr = os.Stderr
	for _, cmd := range []*exec.Cmd{sidecar, bare} {
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("starting %s: %w", cmd.Path, err)
		}
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	}
	if err := waitReady(ctx, "http://"+healthAddr+"/readyz"); err != nil {
		log, _ := os.ReadFile(logFile.Name())
		return fmt.Errorf("sidecar: %w\n%s", err, log)
	}
	if err := waitReady(ctx, "http://"+bareAddr+"/healthz"); err != nil {
		return fmt.Errorf("bare server: %w", err)
	}

	body := []byte(`{"domain":"bench","role":"reader"}`)
	sidecarURL, bareURL := "http://"+sidecarAddr+"/roletoken", "http://"+bareAddr+"/roletoken"
	// Warm: the first request is a miss that goes to ZTS; the load measures hits.
	if _, err := load(ctx, sidecarURL, body, 1, 200*time.Millisecond); err != nil {
		return fmt.Errorf("warming the sidecar: %w", err)
	}
	var bareRounds, sidecarRounds []result
	for i := range opts.rounds {
		fmt.Fprintf(os.Stderr, "round %d/%d\n", i+1, opts.rounds)
		r, err := load(ctx, bareURL, body, opts.concurrency, opts.roundTime)
		if err != nil {
			return fmt.Errorf("bare round %d: %w", i+1, err)
		}
		bareRounds = append(bareRounds, r)
		r, err = load(ctx, sidecarURL, body, opts.concurrency, opts.roundTime)
		if err != nil {
			return fmt.Errorf("sidecar round %d: %w", i+1, err)
		}
		sidecarRounds = append(sidecarRounds, r)
	}
	f := figures{opts: opts, bare: median(bareRounds), sidecar: median(sidecarRounds), goVersion: runtime.Version()}
	f.sidecarHWM, _ = procStatus(sidecar.Process.Pid, "VmHWM")
	f.bareHWM, _ = procStatus(bare.Process.Pid, "VmHWM")
	if st, err := os.Stat(opts.sidecarBin); err == nil {
		f.sidecarSize = fmt.Sprintf("%.1f MB", float64(st.Size())/1e6)
	}

	fmt.Fprintf(os.Stderr, "loading %d distinct keys\n", opts.keys)
	if err := loadKeys(ctx, "http://"+sidecarAddr+"/roletoken", opts.keys, opts.concurrency); err != nil {
		return err
	}
	f.keysRSS, _ = procStatus(sidecar.Process.Pid, "VmRSS")
	f.keysHWM, _ = procStatus(sidecar.Process.Pid, "VmHWM")

	md := f.markdown()
	fmt.Println(md)
	if opts.report != "" {
		return report.WriteSection(opts.report, "loadgen", md)
	}
	return nil
}

// loadKeys asks for n role tokens with distinct roles, so the sidecar holds
// n cache entries.
func loadKeys(ctx context.Context, url string, n, c int) error {
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: c}}
	next := make(chan int)
	errs := make(chan error, c)
	var wg sync.WaitGroup
	for range c {
		wg.Go(func() {
			for i := range next {
				body := fmt.Sprintf(`{"domain":"bench","role":"role%d"}`, i)
				resp, err := client.Post(url, "application/json", strings.NewReader(body))
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("key %d: status %d", i, resp.StatusCode)
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	var err error
loop:
	for i := range n {
		select {
		case next <- i:
		case err = <-errs:
			break loop
		case <-ctx.Done():
			err = ctx.Err()
			break loop
		}
	}
	close(next)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errs:
		default:
		}
	}
	return err
}

func waitReady(ctx context.Context, url string) error {
	deadline := time.Now().Add(30 * time.Second)
	var last error
	for time.Now().Before(deadline) && ctx.Err() == nil {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after 30 s: %v", url, last)
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err) // loopback always has a free port; nothing to measure without one
	}
	defer l.Close()
	return l.Addr().String()
}

// procStatus reads a "Vm..." line (KiB) of /proc/<pid>/status.
func procStatus(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), field+":"); ok {
			return strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}
