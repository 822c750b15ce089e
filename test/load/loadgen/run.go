package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/athenz-injector/athenz-injector/pkg/tokens/ztsfake"
	"github.com/athenz-injector/athenz-injector/test/load/proc"
	"github.com/athenz-injector/athenz-injector/test/load/report"
)

type options struct {
	sidecarBin, floorBin string
	roundTime            time.Duration
	rounds               int
	starts               int
	concurrency          int
	keys                 int
	report               string
}

// requestBody is the cached request every round sends.
var requestBody = []byte(`{"domain":"bench","role":"reader"}`)

// kind is one of the two servers measured.
type kind string

const (
	floorKind   kind = "floor"
	sidecarKind kind = "sidecar"
)

// placement says which CPUs the server and this harness run on; nil means
// every CPU this harness may use.
type placement struct {
	name          string
	server, other []int
}

func (p placement) pinned() bool { return p.server != nil }

// placementResult is what the rounds of one placement found.
type placementResult struct {
	placement
	where  string // as the kernel reported it
	rounds map[kind][]round
	// interference is the most CPU time other work took on the server's
	// CPU during a round, as a fraction of the round (pinned only).
	interference float64
	peakRSS      map[kind]int64 // VmHWM after the rounds, KiB
}

// startup is one start of a server: its time to the first token, and its
// memory idle (ready, no request yet) and after the first token.
type startup struct {
	firstToken          time.Duration
	idleRSS, tokenRSS   int64 // KiB
	idleAnon, tokenAnon int64 // RssAnon, KiB
}

type figures struct {
	opts       options
	goVersion  string
	placements []placementResult
	startups   map[kind][]startup
	binSize    map[kind]int64
	keysRSS    int64 // sidecar VmRSS with opts.keys cached keys, KiB
	keysHWM    int64
	loadavg    string // /proc/loadavg when the run began
}

// harness holds what every server start needs.
type harness struct {
	opts options
	dir  string
	zts  *ztsfake.Server
}

func run(opts options) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "loadgen")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	h := &harness{opts: opts, dir: dir}
	if err := h.startZTS(); err != nil {
		return err
	}
	defer h.zts.Close()

	f := figures{opts: opts, goVersion: runtime.Version(), startups: map[kind][]startup{}, binSize: map[kind]int64{}}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f.loadavg = strings.TrimSpace(string(b))
	}
	for k, bin := range map[kind]string{floorKind: opts.floorBin, sidecarKind: opts.sidecarBin} {
		st, err := os.Stat(bin)
		if err != nil {
			return fmt.Errorf("%s binary: %w (make build-%s)", k, err, k)
		}
		f.binSize[k] = st.Size()
	}

	placements := []placement{{name: "shared"}}
	if cpus, err := proc.AllowedCPUs(); err != nil || len(cpus) < 2 {
		fmt.Fprintln(os.Stderr, "loadgen: measuring the shared placement only: needs Linux and two CPUs")
	} else {
		last := len(cpus) - 1
		placements = append([]placement{{name: "own CPU", server: cpus[last:], other: cpus[:last]}}, placements...)
	}

	fmt.Fprintf(os.Stderr, "== start and memory, %d starts of each server\n", opts.starts)
	for i := range opts.starts {
		for _, k := range []kind{floorKind, sidecarKind} {
			s, err := h.measureStart(ctx, k, placements[0], i)
			if err != nil {
				return fmt.Errorf("%s start %d: %w", k, i+1, err)
			}
			f.startups[k] = append(f.startups[k], s)
		}
	}
	for _, p := range placements {
		fmt.Fprintf(os.Stderr, "== placement %q\n", p.name)
		r, err := h.measureLoad(ctx, p)
		if err != nil {
			return fmt.Errorf("placement %q: %w", p.name, err)
		}
		f.placements = append(f.placements, r)
	}
	fmt.Fprintf(os.Stderr, "== %d distinct keys\n", opts.keys)
	if f.keysRSS, f.keysHWM, err = h.measureKeys(ctx); err != nil {
		return err
	}

	md := f.markdown()
	fmt.Println(md)
	if opts.report != "" {
		return report.WriteSection(opts.report, "loadgen", md)
	}
	return nil
}

// startZTS starts the fake ZTS in this process and writes the sidecar's
// identity (files mode) into h.dir. It answers the first request of each
// key; the rest is the sidecar's cache.
func (h *harness) startZTS() error {
	zts, err := ztsfake.Start(ztsfake.Options{AllowAll: true, KeyType: "ec"})
	if err != nil {
		return fmt.Errorf("starting fake zts: %w", err)
	}
	h.zts = zts
	certPEM, keyPEM, err := zts.IssueIdentity("bench", "client")
	if err != nil {
		return err
	}
	files := map[string][]byte{"cert.pem": certPEM, "key.pem": keyPEM, "ca.pem": zts.CACertPEM()}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(h.dir, name), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// server is a running floor or sidecar.
type server struct {
	kind      kind
	cmd       *exec.Cmd
	addr      string // of POST /roletoken
	readyURL  string
	started   time.Time
	done      chan error
	exit      error // the exit status, once stopped
	logFile   string
	closeOnce sync.Once
}

// start starts a server of kind k on cpus (nil: any).
func (h *harness) start(k kind, cpus []int, name string) (*server, error) {
	addr, err := proc.FreeAddr()
	if err != nil {
		return nil, err
	}
	s := &server{kind: k, addr: addr, done: make(chan error, 1), logFile: filepath.Join(h.dir, name+".log")}
	switch k {
	case floorKind:
		s.cmd = exec.Command(h.opts.floorBin, "-listen", addr)
		s.readyURL = "http://" + addr + "/healthz"
	case sidecarKind:
		health, err := proc.FreeAddr()
		if err != nil {
			return nil, err
		}
		idDir := filepath.Join(h.dir, name+"-identity")
		if err := os.Mkdir(idDir, 0o700); err != nil {
			return nil, err
		}
		s.cmd = exec.Command(h.opts.sidecarBin)
		s.cmd.Env = []string{
			"PATH=" + os.Getenv("PATH"),
			"ATHENZ_ZTS_URL=" + h.zts.URL(),
			"ATHENZ_ZTS_CA_FILE=" + filepath.Join(h.dir, "ca.pem"),
			"ATHENZ_IDENTITY_MODE=files",
			"ATHENZ_CERT_FILE=" + filepath.Join(h.dir, "cert.pem"),
			"ATHENZ_KEY_FILE=" + filepath.Join(h.dir, "key.pem"),
			"ATHENZ_IDENTITY_DIR=" + idDir,
			"ATHENZ_LISTEN=" + addr,
			"ATHENZ_HEALTH_LISTEN=" + health,
			"ATHENZ_LOG_LEVEL=error",
		}
		s.readyURL = "http://" + health + "/readyz"
	}
	log, err := os.Create(s.logFile)
	if err != nil {
		return nil, err
	}
	defer log.Close()
	s.cmd.Stdout, s.cmd.Stderr = log, log
	s.started = time.Now()
	if cpus != nil {
		err = proc.StartPinned(s.cmd, cpus)
	} else {
		err = s.cmd.Start()
	}
	if err != nil {
		return nil, fmt.Errorf("starting %s: %w", k, err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	return s, nil
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// stop kills the server and waits for it.
func (s *server) stop() {
	s.closeOnce.Do(func() {
		_ = s.cmd.Process.Kill()
		s.exit = <-s.done // "signal: killed", normally
	})
}

// failed describes a server that stopped or failed, with its log.
func (s *server) failed(err error) error {
	log, _ := os.ReadFile(s.logFile)
	return fmt.Errorf("%s: %w\n%s", s.kind, err, log)
}

// waitReady polls the server's readiness URL until it answers 200.
func (s *server) waitReady(ctx context.Context) error {
	return s.poll(ctx, "ready", 10*time.Millisecond, func() (*http.Response, error) { return http.Get(s.readyURL) })
}

// firstToken polls POST /roletoken until it answers 200 and returns the
// time since the process started.
func (s *server) firstToken(ctx context.Context) (time.Duration, error) {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	err := s.poll(ctx, "answering tokens", time.Millisecond, func() (*http.Response, error) {
		return client.Post("http://"+s.addr+"/roletoken", "application/json", bytes.NewReader(requestBody))
	})
	return time.Since(s.started), err
}

// poll calls ask every interval until it answers 200, for at most 30 s
// from the server's start, or until the server exits.
func (s *server) poll(ctx context.Context, what string, interval time.Duration, ask func() (*http.Response, error)) error {
	deadline := s.started.Add(30 * time.Second)
	var last error
	for time.Now().Before(deadline) && ctx.Err() == nil {
		select {
		case err := <-s.done:
			s.done <- err
			return s.failed(fmt.Errorf("exited before it was %s: %v", what, err))
		default:
		}
		resp, err := ask()
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		last = err
		time.Sleep(interval)
	}
	return s.failed(fmt.Errorf("not %s after 30 s: %v", what, last))
}

// idleSettle is how long a server idles after it is ready before its idle
// memory is read: long enough for start-up work to end.
const idleSettle = time.Second

// measureStart starts a server twice: once for its time to the first
// token, asked for as soon as it listens; once for its memory, read
// idle (ready, no request yet) and after the first token.
func (h *harness) measureStart(ctx context.Context, k kind, p placement, i int) (startup, error) {
	var st startup
	s, err := h.start(k, p.server, fmt.Sprintf("%s-start-%d", k, i))
	if err != nil {
		return st, err
	}
	st.firstToken, err = s.firstToken(ctx)
	s.stop()
	if err != nil {
		return st, err
	}

	s, err = h.start(k, p.server, fmt.Sprintf("%s-memory-%d", k, i))
	if err != nil {
		return st, err
	}
	defer s.stop()
	if err := s.waitReady(ctx); err != nil {
		return st, err
	}
	time.Sleep(idleSettle)
	st.idleRSS, st.idleAnon, err = rss(s.pid())
	if err != nil {
		return st, err
	}
	if _, err := s.firstToken(ctx); err != nil {
		return st, err
	}
	st.tokenRSS, st.tokenAnon, err = rss(s.pid())
	return st, err
}

func rss(pid int) (total, anon int64, err error) {
	if total, err = proc.Status(pid, "VmRSS"); err != nil {
		return 0, 0, err
	}
	anon, err = proc.Status(pid, "RssAnon")
	return total, anon, err
}

// measureLoad starts both servers placed as p says and loads them in
// alternating rounds.
func (h *harness) measureLoad(ctx context.Context, p placement) (res placementResult, err error) {
	res = placementResult{placement: p, rounds: map[kind][]round{}, peakRSS: map[kind]int64{}}
	servers := map[kind]*server{}
	for _, k := range []kind{floorKind, sidecarKind} {
		s, err := h.start(k, p.server, fmt.Sprintf("%s-%s", k, strings.ReplaceAll(p.name, " ", "-")))
		if err != nil {
			return res, err
		}
		defer s.stop()
		if err := s.waitReady(ctx); err != nil {
			return res, err
		}
		servers[k] = s
	}
	if p.pinned() {
		// The load runs on the other CPUs, and so does the fake ZTS (it
		// answers the sidecar's first miss only).
		if err := proc.PinSelf(p.other); err != nil {
			return res, err
		}
		prev := runtime.GOMAXPROCS(len(p.other))
		defer func() {
			runtime.GOMAXPROCS(prev)
			if perr := proc.PinSelf(slices.Concat(p.other, p.server)); perr != nil && err == nil {
				err = perr
			}
		}()
	}
	res.where = proc.Where(filepath.Base(h.opts.floorBin), filepath.Base(h.opts.sidecarBin))
	// Warm up: the sidecar's first request is a miss that goes to ZTS;
	// the rounds measure hits, on warm connections and caches.
	for _, k := range []kind{floorKind, sidecarKind} {
		if _, err := load(ctx, servers[k].addr, "/roletoken", requestBody, h.opts.concurrency, time.Second); err != nil {
			return res, err
		}
	}
	for i := range h.opts.rounds {
		fmt.Fprintf(os.Stderr, "round %d/%d\n", i+1, h.opts.rounds)
		for _, k := range []kind{floorKind, sidecarKind} {
			r, interference, err := h.round(ctx, servers[k], p)
			if err != nil {
				return res, err
			}
			res.rounds[k] = append(res.rounds[k], r)
			res.interference = max(res.interference, interference)
		}
	}
	for k, s := range servers {
		if res.peakRSS[k], err = proc.Status(s.pid(), "VmHWM"); err != nil {
			return res, err
		}
	}
	return res, nil
}

// round runs one round against s and reads the CPU time s used. On a
// pinned placement it also reports the share of the round the server's
// CPU spent on anything else.
func (h *harness) round(ctx context.Context, s *server, p placement) (round, float64, error) {
	cpu0, cerr := proc.CPUTime(s.pid())
	var busy0 time.Duration
	var berr error
	if p.pinned() {
		busy0, berr = proc.CPUBusy(p.server[0])
	}
	r, err := load(ctx, s.addr, "/roletoken", requestBody, h.opts.concurrency, h.opts.roundTime)
	if err != nil {
		return r, 0, s.failed(err)
	}
	cpu1, cerr1 := proc.CPUTime(s.pid())
	if cerr == nil && cerr1 == nil {
		r.cpu = cpu1 - cpu0
	}
	var interference float64
	if p.pinned() && len(p.server) == 1 && berr == nil {
		if busy1, err := proc.CPUBusy(p.server[0]); err == nil {
			interference = max(0, (busy1-busy0-r.cpu).Seconds()/r.elapsed.Seconds())
		}
	}
	return r, interference, nil
}

// measureKeys starts a sidecar, asks it for opts.keys role tokens with
// distinct roles, so that it holds that many cache entries, and reads its
// memory.
func (h *harness) measureKeys(ctx context.Context) (rss, hwm int64, err error) {
	s, err := h.start(sidecarKind, nil, "sidecar-keys")
	if err != nil {
		return 0, 0, err
	}
	defer s.stop()
	if err := s.waitReady(ctx); err != nil {
		return 0, 0, err
	}
	if err := loadKeys(ctx, "http://"+s.addr+"/roletoken", h.opts.keys, 16); err != nil {
		return 0, 0, s.failed(err)
	}
	if rss, err = proc.Status(s.pid(), "VmRSS"); err != nil {
		return 0, 0, err
	}
	hwm, err = proc.Status(s.pid(), "VmHWM")
	return rss, hwm, err
}

// loadKeys asks for n role tokens with distinct roles from c clients.
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
