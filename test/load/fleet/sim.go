package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/athenz-injector/athenz-injector/pkg/sidecar/identity"
	"github.com/athenz-injector/athenz-injector/pkg/tokens"
	"github.com/athenz-injector/athenz-injector/pkg/tokens/ztsfake"
)

// Lifetimes of what the fake ZTS issues in the simulation: tokens of 2 h
// (issue 15), and ZTS's defaults for instance certificates with an
// N-token (a day; the N-token's day makes the sidecar renew about every
// 15 h, whatever the certificate's lifetime).
const (
	tokenLifetime = 2 * time.Hour
	certLifetime  = 24 * time.Hour
)

// sim is a fleet of Pods' sidecars, each its own identity manager and
// token cache as the sidecar wires them, against one fake ZTS over
// HTTPS, all on one fake clock.
//
// The clock moves only between events: run advances it to the next
// timer's deadline and waits until every sidecar is idle again before
// going on, so every call to ZTS happens at the fake time its timer said.
// Token caches run their refreshes inside the timer (the clock waits for
// them); identity managers wake in their own goroutines, so each
// manager's clock counts it busy from its wake-up until it sleeps again.
type sim struct {
	clock *tokens.FakeClock
	zts   *ztsfake.Server
	dir   string // identity directories, the service account token
	start time.Time
	rnd   *rand.Rand
	busy  sync.WaitGroup

	calls    callLog
	pods     []*pod
	nextID   int
	starting map[*pod]bool // started, not yet prefetched
}

// pod is one sidecar: an identity manager and a token cache with its
// prefetched keys, as pkg/sidecar builds them.
type pod struct {
	id        int
	mgr       *identity.Manager
	cache     *tokens.Cache
	keys      []tokens.Key
	clock     *managerClock
	cancel    context.CancelFunc
	done      chan struct{}
	startedAt time.Time
	readyAt   time.Time // zero until the identity and every prefetched token are there
	pinned    int
	stopped   bool
}

func newSim(seed uint64) (*sim, error) {
	// The identity managers write their files; tmpfs keeps 10,000 of them
	// (and their fsyncs) off the disk.
	base := os.Getenv("FLEET_DIR")
	if base == "" {
		base = "/dev/shm"
		if _, err := os.Stat(base); err != nil {
			base = ""
		}
	}
	dir, err := os.MkdirTemp(base, "fleet")
	if err != nil {
		return nil, err
	}
	s := &sim{
		clock:    tokens.NewFakeClock(time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)),
		dir:      dir,
		rnd:      rand.New(rand.NewPCG(seed, seed^0x5eed)),
		starting: map[*pod]bool{},
	}
	s.start = s.clock.Now()
	s.zts, err = ztsfake.Start(ztsfake.Options{
		AllowAll: true, KeyType: "ec", Now: s.clock.Now, NoKeepAlive: true,
		RoleTokenDefault: tokenLifetime, AccessTokenDefault: tokenLifetime, CertLifetime: certLifetime,
	})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "satoken"), []byte("header.claims.signature\n"), 0o600); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *sim) close() {
	for _, p := range s.pods {
		s.stopPod(p)
	}
	s.zts.Close()
	os.RemoveAll(s.dir)
}

// prefetch is what every Pod prefetches: 3 role tokens and 1 access token.
var prefetch = func() []tokens.Key {
	var keys []tokens.Key
	for _, role := range []string{"reader", "writer", "auditor"} {
		k, err := tokens.RoleTokenKey("prov", role, "", 0, 0)
		if err != nil {
			panic(err)
		}
		keys = append(keys, k)
	}
	k, err := tokens.AccessTokenKey("prov", "reader", "", 0)
	if err != nil {
		panic(err)
	}
	return append(keys, k)
}()

// startPod starts a sidecar now: its identity manager registers with ZTS
// in its own goroutine; the prefetch follows once the identity is ready
// (afterStep).
func (s *sim) startPod() (*pod, error) {
	s.nextID++
	id := s.nextID
	idDir := filepath.Join(s.dir, fmt.Sprintf("pod-%d", id))
	if err := os.Mkdir(idDir, 0o700); err != nil {
		return nil, err
	}
	p := &pod{id: id, keys: prefetch, done: make(chan struct{}), startedAt: s.clock.Now()}
	p.clock = &managerClock{FakeClock: s.clock, busy: &s.busy}
	mgr, err := identity.New(identity.Options{
		Mode:         identity.ModeCopperArgos,
		ZTSURL:       s.zts.URL(),
		RootCAs:      s.zts.CAPool(),
		Domain:       "fleet",
		Service:      fmt.Sprintf("svc%d", id%100),
		Provider:     "sys.auth.k8s",
		DNSSuffix:    "fleet.test",
		SATokenFile:  filepath.Join(s.dir, "satoken"),
		PodUID:       fmt.Sprintf("pod-%d", id),
		PodIP:        fmt.Sprintf("10.%d.%d.%d", id>>16&255, id>>8&255, id&255),
		PodNamespace: "fleet",
		NToken:       true,
		IdentityDir:  idDir,
		Clock:        p.clock,
		WrapTransport: func(rt http.RoundTripper) http.RoundTripper {
			return countingTransport{base: rt, s: s, kind: callIdentity}
		},
	})
	if err != nil {
		return nil, err
	}
	client, err := tokens.NewClient(tokens.ClientOptions{
		URL: s.zts.URL(), Transport: countingTransport{base: mgr.Transport(), s: s, kind: callToken},
		Clock: s.clock, Skew: mgr.ClockSkew(),
	})
	if err != nil {
		return nil, err
	}
	p.mgr = mgr
	// The cache's jitter comes from the simulation's seed, so that a run
	// gives the same figures again (the identity managers' jitter is
	// their own; in the simulated hours it only spreads retries that the
	// outage does not cause).
	jitter := rand.New(rand.NewPCG(s.rnd.Uint64(), uint64(id)))
	var jitterMu sync.Mutex
	p.cache = tokens.NewCache(client.Fetch, tokens.CacheOptions{Clock: s.clock, Jitter: func() float64 {
		jitterMu.Lock()
		defer jitterMu.Unlock()
		return jitter.Float64()
	}})
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	p.clock.work() // busy until Run first sleeps
	go func() {
		defer close(p.done)
		_ = mgr.Run(ctx)
	}()
	s.pods = append(s.pods, p)
	s.starting[p] = true
	return p, nil
}

// stopPod stops a sidecar, as its Pod's deletion does.
func (s *sim) stopPod(p *pod) {
	if p.stopped {
		return
	}
	p.stopped = true
	p.cancel()
	<-p.done
	p.clock.idle()
	p.cache.Close()
	delete(s.starting, p)
}

// afterStep prefetches the tokens of the Pods whose identity became
// ready, pinning them in their cache as the sidecar's readiness does (a
// failed prefetch is tried again after the next step).
func (s *sim) afterStep() {
	for p := range s.starting {
		if p.mgr.Ready() != nil {
			continue
		}
		for p.pinned < len(p.keys) {
			if _, err := p.cache.Pin(context.Background(), p.keys[p.pinned]); err != nil {
				break
			}
			p.pinned++
		}
		if p.pinned == len(p.keys) {
			p.readyAt = s.clock.Now()
			delete(s.starting, p)
		}
	}
}

// run moves the clock to end, one timer deadline at a time, waiting for
// the work each one starts before it goes on. With each set, it also
// stops at every whole minute of fake time since the start and calls each
// once the work of that instant is done.
func (s *sim) run(end time.Time, each func(now time.Time)) {
	nextMinute := s.start.Add(s.clock.Now().Sub(s.start).Truncate(time.Minute) + time.Minute)
	for {
		s.busy.Wait()
		s.afterStep()
		now := s.clock.Now()
		if each != nil && !now.Before(nextMinute) {
			each(now)
			nextMinute = nextMinute.Add(time.Minute)
		}
		if !now.Before(end) {
			return
		}
		next, ok := s.clock.Next()
		if !ok || next.After(end) {
			next = end
		}
		if each != nil && nextMinute.Before(next) {
			next = nextMinute
		}
		s.clock.Advance(next.Sub(now))
	}
}

// at runs f at fake time t (inside the clock's Advance, as a timer).
func (s *sim) at(t time.Time, f func()) { s.clock.AfterFunc(t.Sub(s.clock.Now()), f) }

// managerClock is the fake clock as one identity manager sees it. The
// manager sleeps between renewals with AfterFunc and works in its own
// goroutine when woken: it counts as busy in sim.busy from the wake-up
// until it arms its next sleep (or stops).
type managerClock struct {
	*tokens.FakeClock
	busy    *sync.WaitGroup
	mu      sync.Mutex
	working bool
}

func (c *managerClock) AfterFunc(d time.Duration, f func()) tokens.Timer {
	c.idle()
	return c.FakeClock.AfterFunc(d, func() {
		c.work()
		f()
	})
}

func (c *managerClock) work() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.working {
		c.working = true
		c.busy.Add(1)
	}
}

func (c *managerClock) idle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.working {
		c.working = false
		c.busy.Done()
	}
}

// callKind says who called ZTS.
type callKind int

const (
	callToken    callKind = iota // a token cache: role and access tokens
	callIdentity                 // an identity manager: register, refresh
	numCallKinds
)

// callLog counts calls to ZTS by second of fake time since the start, by
// kind and by whether they got an answer below 500.
type callLog struct {
	mu  sync.Mutex
	sec [][numCallKinds][2]int // [second][kind][failed]
}

func (l *callLog) add(at int, kind callKind, failed bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for len(l.sec) <= at {
		l.sec = append(l.sec, [numCallKinds][2]int{})
	}
	f := 0
	if failed {
		f = 1
	}
	l.sec[at][kind][f]++
}

// count returns the calls in [from, to) seconds; failed < 0 counts both
// outcomes, kind < 0 both kinds.
func (l *callLog) count(from, to int, kind callKind, failed int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for s := max(from, 0); s < min(to, len(l.sec)); s++ {
		for k := range numCallKinds {
			if kind >= 0 && k != kind {
				continue
			}
			for f := range 2 {
				if failed >= 0 && f != failed {
					continue
				}
				n += l.sec[s][k][f]
			}
		}
	}
	return n
}

// countingTransport counts every call to ZTS at the fake time it starts.
type countingTransport struct {
	base http.RoundTripper
	s    *sim
	kind callKind
}

func (t countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	at := int(t.s.clock.Now().Sub(t.s.start) / time.Second)
	resp, err := t.base.RoundTrip(r)
	t.s.calls.add(at, t.kind, err != nil || resp.StatusCode >= 500)
	return resp, err
}
