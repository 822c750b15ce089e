package sidecar

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"

	"github.com/athenz-injector/athenz-injector/pkg/tokens"
)

// Prefetch timing: retries back off from prefetchRetryMin to
// prefetchRetryMax. Loaded tokens are pinned in the cache, so it keeps
// refreshing them and never drops them as idle.
const (
	prefetchRetryMin = 250 * time.Millisecond
	prefetchRetryMax = 30 * time.Second
)

// prefetchItem is one token of ATHENZ_PREFETCH or
// ATHENZ_PREFETCH_ROLE_TOKENS.
type prefetchItem struct {
	key  tokens.Key
	name string // "access token prov:role.reader", for messages
}

// prefetchItems builds the cache keys of the prefetch targets and of the
// token files: the keys an app's request with the same domain and role and
// no other field hits. A key of both is loaded once.
func prefetchItems(access, role []tokens.Target, files []TokenFile) ([]prefetchItem, error) {
	var items []prefetchItem
	for _, t := range access {
		k, err := tokens.AccessTokenKey(t.Domain, t.Role, "", 0)
		if err != nil {
			return nil, fmt.Errorf("ATHENZ_PREFETCH %s: %w", t, err)
		}
		items = append(items, prefetchItem{key: k, name: "access token " + t.String()})
	}
	for _, t := range role {
		k, err := tokens.RoleTokenKey(t.Domain, t.Role, "", 0, 0)
		if err != nil {
			return nil, fmt.Errorf("ATHENZ_PREFETCH_ROLE_TOKENS %s: %w", t, err)
		}
		items = append(items, prefetchItem{key: k, name: "role token " + t.String()})
	}
	for _, f := range files {
		k, err := f.Key()
		if err != nil {
			return nil, fmt.Errorf("ATHENZ_TOKEN_FILES %s: %w", f, err)
		}
		if !slices.ContainsFunc(items, func(it prefetchItem) bool { return it.key == k }) {
			items = append(items, prefetchItem{key: k, name: "token file " + f.Path()})
		}
	}
	return items, nil
}

// The readiness checks, the "check" label of athenz_sidecar_ready.
const (
	checkRunning  = "running"  // not shutting down
	checkIdentity = "identity" // every credential of the identity is valid now
	checkPrefetch = "prefetch" // every prefetched token is cached and valid now
	// checkTokenFiles: every token file holds a token valid now.
	checkTokenFiles = "tokenfiles"
)

var readinessChecks = [...]string{checkRunning, checkIdentity, checkPrefetch, checkTokenFiles}

// readiness answers /readyz: every credential the sidecar was configured
// for is valid now (the identity's, each prefetched token, each token
// file), and it is not shutting down.
type readiness struct {
	identity Identity
	gate     *identityGate
	items    []prefetchItem
	cache    *tokens.Cache
	clock    tokens.Clock
	log      logr.Logger
	files    *tokenFiles // nil without ATHENZ_TOKEN_FILES

	mu      sync.Mutex // guards loaded, lastErr and logged
	loaded  []bool
	lastErr []error
	logged  string // the last reason logged, "" for ready

	prefetched atomic.Bool
	draining   atomic.Bool
}

func newReadiness(id Identity, gate *identityGate, items []prefetchItem, cache *tokens.Cache, clock tokens.Clock, log logr.Logger) *readiness {
	return &readiness{
		identity: id, gate: gate, items: items, cache: cache, clock: clock, log: log,
		loaded: make([]bool, len(items)), lastErr: make([]error, len(items)),
	}
}

// check returns nil when ready, else why not.
func (rd *readiness) check() error {
	for _, c := range readinessChecks {
		if err := rd.checkOne(c); err != nil {
			return err
		}
	}
	return nil
}

// checkOne runs one of the readiness checks.
func (rd *readiness) checkOne(check string) error {
	switch check {
	case checkRunning:
		if rd.draining.Load() {
			return errors.New("shutting down")
		}
	case checkIdentity:
		if err := rd.identity.Ready(); err != nil {
			return fmt.Errorf("identity: %w", err)
		}
	case checkPrefetch:
		if !rd.prefetched.Load() {
			return rd.loading()
		}
		return rd.expired()
	case checkTokenFiles:
		return rd.files.check()
	}
	return nil
}

// loading says which prefetch tokens have not been loaded once yet.
func (rd *readiness) loading() error {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	var missing []string
	for i, it := range rd.items {
		if rd.loaded[i] {
			continue
		}
		s := it.name
		if err := rd.lastErr[i]; err != nil {
			s += " (" + toHTTPError(err).Msg + ")"
		}
		missing = append(missing, s)
	}
	if len(missing) == 0 {
		return errors.New("prefetch starting")
	}
	return fmt.Errorf("%d of %d prefetched tokens not loaded yet: %s", len(missing), len(rd.items), strings.Join(missing, "; "))
}

// expired says which prefetched tokens are no longer valid: the cache
// refreshes them, and ZTS has been failing for their whole margin.
func (rd *readiness) expired() error {
	now := rd.clock.Now()
	var gone []string
	for _, it := range rd.items {
		if tok, ok := rd.cache.Lookup(it.key); !ok || tok.Expiry.Sub(now) <= tokens.MinServeRemaining {
			gone = append(gone, it.name)
		}
	}
	if len(gone) == 0 {
		return nil
	}
	return fmt.Errorf("%d of %d prefetched tokens expired, their refreshes failing: %s", len(gone), len(rd.items), strings.Join(gone, "; "))
}

// observe logs a change of readiness: the reason, which /readyz tells
// loopback callers only, is in the log for everyone else.
func (rd *readiness) observe(err error) {
	reason := ""
	if err != nil {
		reason = err.Error()
	}
	rd.mu.Lock()
	changed := reason != rd.logged
	rd.logged = reason
	rd.mu.Unlock()
	switch {
	case !changed:
	case err == nil:
		rd.log.Info("ready")
	default:
		rd.log.Info("not ready", "reason", reason)
	}
}

// run waits for the identity, loads every prefetch token (retrying with
// backoff, pinning them in the cache), then reports ready.
func (rd *readiness) run(ctx context.Context, log logr.Logger) {
	if len(rd.items) == 0 {
		rd.prefetched.Store(true)
		return
	}
	if rd.gate.waitReady(ctx) != nil {
		return
	}
	var wg sync.WaitGroup
	for i := range rd.items {
		wg.Go(func() { rd.load(ctx, log, i) })
	}
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	if rd.files != nil {
		rd.files.sync() // the files exist before the sidecar reports ready
	}
	rd.prefetched.Store(true)
	log.Info("prefetched tokens loaded", "count", len(rd.items))
}

func (rd *readiness) load(ctx context.Context, log logr.Logger, i int) {
	it := rd.items[i]
	wait := prefetchRetryMin
	for {
		_, err := rd.cache.Pin(ctx, it.key)
		if ctx.Err() != nil {
			return
		}
		rd.mu.Lock()
		rd.lastErr[i] = err
		rd.loaded[i] = err == nil
		rd.mu.Unlock()
		if err == nil {
			return
		}
		log.Error(err, "prefetching token", "token", it.name, "retryin", wait.String())
		if !sleepCtx(ctx, wait) {
			return
		}
		wait = min(2*wait, prefetchRetryMax)
	}
}

// sleepCtx waits d and reports whether it did before ctx ended.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// fromLoopback reports whether r came from this Pod: a loopback address,
// or the Unix socket (inside the identity volume).
func fromLoopback(r *http.Request) bool {
	if _, ok := r.Context().Value(http.LocalAddrContextKey).(*net.UnixAddr); ok {
		return true
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

// identityGatePoll is how often a wait for the identity looks.
const identityGatePoll = 5 * time.Millisecond

// identityGate holds work that needs the identity until it is in place.
// Token fetches wait for its first attempt: before that ZTS refuses them
// (401: no certificate yet), and the cache would remember the refusal for
// its negative-cache TTL, so an app that asked as the sidecar started got
// errors for 10 s (files mode, issue 15). After a failed attempt a fetch
// goes ahead and reports what ZTS says (a TLS failure, an outage).
type identityGate struct {
	id Identity
	// attempted reports whether the identity has finished an attempt,
	// failed or not; nil: wait for Ready alone.
	attempted func() bool
	open      atomic.Bool // the identity was ready once
}

// waitReady returns once the identity is ready, or ctx's error.
func (g *identityGate) waitReady(ctx context.Context) error {
	return g.wait(ctx, 0, func() bool { return false })
}

// waitFirstAttempt returns once the identity is ready or has failed an
// attempt, or a 503 naming why not after limit, or ctx's error.
func (g *identityGate) waitFirstAttempt(ctx context.Context, limit time.Duration) error {
	return g.wait(ctx, limit, func() bool { return g.attempted != nil && g.attempted() })
}

func (g *identityGate) wait(ctx context.Context, limit time.Duration, enough func() bool) error {
	if g.open.Load() {
		return nil
	}
	var expired <-chan time.Time
	if limit > 0 {
		t := time.NewTimer(limit)
		defer t.Stop()
		expired = t.C
	}
	tick := time.NewTicker(identityGatePoll)
	defer tick.Stop()
	for {
		err := g.id.Ready()
		if err == nil {
			g.open.Store(true)
			return nil
		}
		if enough() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-expired:
			return &HTTPError{Code: http.StatusServiceUnavailable, Msg: "no identity yet: " + err.Error(), Err: err}
		case <-tick.C:
		}
	}
}
