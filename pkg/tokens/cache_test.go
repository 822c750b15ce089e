package tokens_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/athenz-injector/athenz-injector/pkg/tokens"
)

var epoch = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// fakeZTS is a FetchFunc with a switchable answer and a call count. Tokens
// are named after the call number so a test can tell a refresh happened.
type fakeZTS struct {
	clock    *tokens.FakeClock
	lifetime time.Duration
	calls    atomic.Int64
	fail     atomic.Pointer[error]
	gate     chan struct{} // when non-nil, each fetch waits for it to close
}

func (f *fakeZTS) fetch(ctx context.Context, key tokens.Key) (tokens.Token, error) {
	n := f.calls.Add(1)
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return tokens.Token{}, ctx.Err()
		}
	}
	if err := f.fail.Load(); err != nil {
		return tokens.Token{}, *err
	}
	now := f.clock.Now()
	return tokens.Token{Value: fmt.Sprintf("%s#%d", key.Domain, n), Obtained: now, Expiry: now.Add(f.lifetime)}, nil
}

func (f *fakeZTS) failWith(err error) { f.fail.Store(&err) }
func (f *fakeZTS) recover()           { f.fail.Store(nil) }

func newTestCache(t *testing.T, lifetime time.Duration, opts tokens.CacheOptions) (*tokens.Cache, *fakeZTS, *tokens.FakeClock) {
	t.Helper()
	clock := tokens.NewFakeClock(epoch)
	z := &fakeZTS{clock: clock, lifetime: lifetime}
	opts.Clock = clock
	if opts.Jitter == nil {
		opts.Jitter = func() float64 { return 0.5 }
	}
	c := tokens.NewCache(z.fetch, opts)
	t.Cleanup(c.Close)
	return c, z, clock
}

func mustKey(t *testing.T, domain, roles string) tokens.Key {
	t.Helper()
	k, err := tokens.RoleTokenKey(domain, roles, "", 0, 0)
	if err != nil {
		t.Fatalf("RoleTokenKey(%q, %q): %v", domain, roles, err)
	}
	return k
}

func get(t *testing.T, c *tokens.Cache, k tokens.Key) (tokens.Token, tokens.Outcome) {
	t.Helper()
	tok, out, err := c.GetOutcome(t.Context(), k)
	if err != nil {
		t.Fatalf("GetOutcome(%v): %v", k, err)
	}
	return tok, out
}

func TestCacheHitAfterFirstFetch(t *testing.T) {
	c, z, _ := newTestCache(t, time.Hour, tokens.CacheOptions{})
	first, out := get(t, c, mustKey(t, "sports", "writer,reader"))
	if out != tokens.OutcomeMiss {
		t.Errorf("first Get outcome = %v, want miss", out)
	}
	// Same roles in another order: same entry.
	second, out := get(t, c, mustKey(t, "sports", "reader,writer"))
	if out != tokens.OutcomeHit || second.Value != first.Value {
		t.Errorf("second Get = %q (%v), want %q (hit)", second.Value, out, first.Value)
	}
	if got := z.calls.Load(); got != 1 {
		t.Errorf("ZTS calls = %d, want 1", got)
	}
}

func TestCacheConcurrentMissesMakeOneCall(t *testing.T) {
	c, z, _ := newTestCache(t, time.Hour, tokens.CacheOptions{})
	z.gate = make(chan struct{})
	key := mustKey(t, "sports", "reader")
	const callers = 200
	var wg sync.WaitGroup
	var ready sync.WaitGroup
	ready.Add(callers)
	values := make([]string, callers)
	errs := make([]error, callers)
	for i := range callers {
		wg.Go(func() {
			ready.Done()
			tok, err := c.Get(t.Context(), key)
			values[i], errs[i] = tok.Value, err
		})
	}
	ready.Wait()
	// Let the goroutines reach the cache before the one fetch returns.
	time.Sleep(20 * time.Millisecond)
	close(z.gate)
	wg.Wait()
	for i := range callers {
		if errs[i] != nil || values[i] != values[0] {
			t.Fatalf("caller %d got %q, %v; want %q, nil", i, values[i], errs[i], values[0])
		}
	}
	if got := z.calls.Load(); got != 1 {
		t.Errorf("ZTS calls for %d concurrent misses = %d, want 1", callers, got)
	}
}

func TestCacheRefreshesAheadOfMargin(t *testing.T) {
	// 1 h tokens: margin 15 min, so the margin point is at 45 min and the
	// refresh (jitter 0.5) halfway between 0.70 and 0.95 of it: 37 min.
	c, z, clock := newTestCache(t, time.Hour, tokens.CacheOptions{})
	key := mustKey(t, "sports", "reader")
	first, _ := get(t, c, key)
	earliest, latest := c.RefreshAfter(time.Hour)
	if earliest < 31*time.Minute || latest > 43*time.Minute {
		t.Fatalf("RefreshAfter(1h) = %v to %v, want within 31 to 43 min (0.70 to 0.95 of the 45 min hit window)", earliest, latest)
	}
	refresh := (earliest + latest) / 2

	clock.Advance(refresh - 30*time.Second)
	if got := z.calls.Load(); got != 1 {
		t.Fatalf("ZTS calls at %v = %d, want 1 (no refresh yet)", clock.Now().Sub(epoch), got)
	}
	clock.Advance(time.Minute)
	if got := z.calls.Load(); got != 2 {
		t.Fatalf("ZTS calls at %v = %d, want 2 (refreshed ahead of the 45 min margin point)", clock.Now().Sub(epoch), got)
	}
	// The request after the refresh is a hit with the new token: it never
	// waited on ZTS.
	tok, out := get(t, c, key)
	if out != tokens.OutcomeHit || tok.Value == first.Value {
		t.Errorf("Get after refresh = %q (%v), want a new token as a hit", tok.Value, out)
	}
	// Over many lifetimes, every request is a hit and one refresh happens
	// per lifetime.
	for range 10 * 60 {
		clock.Advance(time.Minute)
		if _, out := get(t, c, key); out != tokens.OutcomeHit {
			t.Fatalf("Get at %v = %v, want hit", clock.Now().Sub(epoch), out)
		}
	}
	elapsed := clock.Now().Sub(epoch)
	if got, want := int(z.calls.Load()), 1+int(elapsed/refresh); got < want-1 || got > want+1 {
		t.Errorf("ZTS calls over %v of 1 h tokens = %d, want about one per %v (%d)", elapsed, got, refresh, want)
	}
}

func TestCacheServesValidTokenWhileZTSFails(t *testing.T) {
	c, z, clock := newTestCache(t, time.Hour, tokens.CacheOptions{})
	key := mustKey(t, "sports", "reader")
	first, _ := get(t, c, key)
	z.failWith(&tokens.ZTSError{Status: 503, Message: "down"})

	// Past the margin point, ZTS still failing: the old token is served.
	clock.Advance(50 * time.Minute)
	tok, out := get(t, c, key)
	if out != tokens.OutcomeStale || tok.Value != first.Value {
		t.Errorf("Get at 50 min with ZTS down = %q (%v), want the cached %q (stale)", tok.Value, out, first.Value)
	}
	if left := tok.Expiry.Sub(clock.Now()); left <= 0 {
		t.Errorf("served token has %v left, want a valid token", left)
	}
	// Retries back off: between 40.5 and 59 min (about 18 min) with a 1 s
	// start doubling to a 2 min cap, a hot loop would make thousands of
	// calls; backoff makes about 16.
	clock.Advance(9 * time.Minute)
	if got := z.calls.Load(); got > 25 {
		t.Errorf("ZTS calls while failing = %d, want backoff (at most 25)", got)
	}
	// Past expiry the token is never served.
	clock.Advance(2 * time.Minute)
	if _, _, err := c.GetOutcome(t.Context(), key); err == nil {
		t.Fatal("Get after expiry with ZTS down succeeded; an expired token must never be served")
	} else if ze := (*tokens.ZTSError)(nil); !errors.As(err, &ze) || ze.Status != 503 {
		t.Errorf("Get after expiry error = %v, want the ZTS 503", err)
	}
	// Within the negative-cache TTL of the last failure, requests get it
	// without calling ZTS.
	z.recover()
	before := z.calls.Load()
	if _, _, err := c.GetOutcome(t.Context(), key); err == nil || z.calls.Load() != before {
		t.Errorf("Get within the negative-cache TTL = %v with %d calls, want the remembered error and none", err, z.calls.Load()-before)
	}
	// ZTS returns: the next retry or request recovers.
	clock.Advance(tokens.DefaultNegativeTTL)
	tok, _ = get(t, c, key)
	if tok.Value == first.Value || tok.Expiry.Before(clock.Now()) {
		t.Errorf("Get after recovery = %q expiring %v, want a fresh token", tok.Value, tok.Expiry)
	}
}

func TestCacheNeverServesTokenBelowMinimum(t *testing.T) {
	c, z, clock := newTestCache(t, time.Hour, tokens.CacheOptions{})
	key := mustKey(t, "sports", "reader")
	get(t, c, key)
	z.failWith(errors.New("connection refused"))
	clock.Advance(time.Hour - tokens.MinServeRemaining)
	if tok, _, err := c.GetOutcome(t.Context(), key); err == nil {
		t.Errorf("Get with %v left = %q, want an error", tok.Expiry.Sub(clock.Now()), tok.Value)
	}
}

// TestCacheFailedFirstFetchIsNotKept: a key that never got a token is
// kept only for the negative-cache TTL, so a mistyped domain does not hold
// a slot.
func TestCacheFailedFirstFetchIsNotKept(t *testing.T) {
	c, z, clock := newTestCache(t, time.Hour, tokens.CacheOptions{})
	z.failWith(&tokens.ZTSError{Status: 404, Message: "unknown domain"})
	_, out, err := c.GetOutcome(t.Context(), mustKey(t, "nosuch", "reader"))
	if err == nil || out != tokens.OutcomeError {
		t.Fatalf("Get of a failing key = %v, %v; want an error", out, err)
	}
	clock.Advance(tokens.DefaultNegativeTTL)
	if n := c.Len(); n != 0 {
		t.Errorf("Len after a failed first fetch and the negative-cache TTL = %d, want 0", n)
	}
	if n := clock.Pending(); n != 1 {
		t.Errorf("%d timers pending, want only the idle sweep", n)
	}
}

func TestCacheEvictsIdleEntries(t *testing.T) {
	// Long-lived tokens: only the idle sweep can drop them.
	c, _, clock := newTestCache(t, 24*time.Hour, tokens.CacheOptions{IdleTTL: time.Hour})
	get(t, c, mustKey(t, "idle", "reader"))
	busy := mustKey(t, "busy", "reader")
	get(t, c, busy)
	for range 4 {
		clock.Advance(30 * time.Minute)
		get(t, c, busy)
	}
	if n := c.Len(); n != 1 {
		t.Errorf("Len after 2 h with one key idle = %d, want 1", n)
	}
}

func TestCacheSizeBoundEvictsLeastRecentlyUsed(t *testing.T) {
	c, z, clock := newTestCache(t, time.Hour, tokens.CacheOptions{MaxEntries: 3})
	keys := []tokens.Key{mustKey(t, "a", "r"), mustKey(t, "b", "r"), mustKey(t, "c", "r")}
	for _, k := range keys {
		get(t, c, k)
		clock.Advance(time.Second)
	}
	get(t, c, keys[0]) // a is now the most recent; b the least
	clock.Advance(time.Second)
	get(t, c, mustKey(t, "d", "r"))
	if n := c.Len(); n != 3 {
		t.Errorf("Len = %d, want the bound 3", n)
	}
	before := z.calls.Load()
	if _, out := get(t, c, keys[0]); out != tokens.OutcomeHit {
		t.Errorf("recently used key a: %v, want hit", out)
	}
	if _, out := get(t, c, keys[1]); out != tokens.OutcomeMiss {
		t.Errorf("least recently used key b: %v, want miss (evicted)", out)
	}
	if got := z.calls.Load() - before; got != 1 {
		t.Errorf("ZTS calls = %d, want 1 (for b)", got)
	}
}

func TestCacheWaiterCancelDoesNotCancelFetch(t *testing.T) {
	c, z, _ := newTestCache(t, time.Hour, tokens.CacheOptions{})
	z.gate = make(chan struct{})
	key := mustKey(t, "sports", "reader")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := c.Get(ctx, key); !errors.Is(err, context.Canceled) {
		t.Fatalf("Get with a cancelled context = %v, want context.Canceled", err)
	}
	close(z.gate)
	if _, err := c.Get(t.Context(), key); err != nil {
		t.Fatalf("Get after the fetch finished: %v", err)
	}
	if got := z.calls.Load(); got != 1 {
		t.Errorf("ZTS calls = %d, want 1 (the cancelled waiter's fetch filled the cache)", got)
	}
}

func TestCacheMargin(t *testing.T) {
	c := tokens.NewCache(nil, tokens.CacheOptions{Clock: tokens.NewFakeClock(epoch)})
	t.Cleanup(c.Close)
	tests := []struct {
		name     string
		lifetime time.Duration
		want     time.Duration
	}{
		{name: "quarter of a long lifetime", lifetime: 2 * time.Hour, want: 30 * time.Minute},
		{name: "at least a minute", lifetime: 2 * time.Minute, want: time.Minute},
		{name: "at most half of a short lifetime", lifetime: 60 * time.Second, want: 30 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := c.Margin(tt.lifetime); got != tt.want {
				t.Errorf("Margin(%v) = %v, want %v", tt.lifetime, got, tt.want)
			}
		})
	}
}

func TestCachePinnedEntriesSurviveIdleness(t *testing.T) {
	c, z, clock := newTestCache(t, time.Hour, tokens.CacheOptions{IdleTTL: time.Hour, MaxEntries: 2})
	pinned := mustKey(t, "pinned", "r")
	if _, err := c.Pin(t.Context(), pinned); err != nil {
		t.Fatalf("Pin: %v", err)
	}
	get(t, c, mustKey(t, "idle", "r"))
	clock.Advance(3 * time.Hour)
	if n := c.Len(); n != 1 {
		t.Fatalf("Len after 3 idle hours = %d, want 1 (the pinned entry)", n)
	}
	// Pinned and never asked for: still refreshed, so a request is a hit.
	if _, out := get(t, c, pinned); out != tokens.OutcomeHit {
		t.Errorf("pinned key after 3 h: %v, want hit", out)
	}
	// A full cache evicts the unpinned entry, not the pinned one.
	get(t, c, mustKey(t, "a", "r"))
	get(t, c, mustKey(t, "b", "r"))
	before := z.calls.Load()
	if _, out := get(t, c, pinned); out != tokens.OutcomeHit {
		t.Errorf("pinned key in a full cache: %v, want hit", out)
	}
	if z.calls.Load() != before {
		t.Error("pinned key was fetched again")
	}
}

func TestKeysIgnoreCase(t *testing.T) {
	a := mustKey(t, "Sports", "Reader,writer")
	b := mustKey(t, "sports", "WRITER,reader")
	if a != b {
		t.Errorf("keys differ only in case: %+v vs %+v; ZTS lower-cases names, so they must be equal", a, b)
	}
}

// TestCachePinSurvivesEvictionDuringFetch (suspected, confirmed): a key
// being pinned is pinned from the start of its fetch, so a full cache that
// makes room while the fetch is under way drops another entry, not the
// prefetched token.
func TestCachePinSurvivesEvictionDuringFetch(t *testing.T) {
	clock := tokens.NewFakeClock(epoch)
	gate := make(chan struct{})
	pinned := mustKey(t, "pinned", "r")
	var calls atomic.Int64
	fetch := func(ctx context.Context, key tokens.Key) (tokens.Token, error) {
		calls.Add(1)
		if key == pinned {
			select {
			case <-gate:
			case <-ctx.Done():
				return tokens.Token{}, ctx.Err()
			}
		}
		now := clock.Now()
		return tokens.Token{Value: key.Domain, Obtained: now, Expiry: now.Add(time.Hour)}, nil
	}
	c := tokens.NewCache(fetch, tokens.CacheOptions{Clock: clock, MaxEntries: 2})
	t.Cleanup(c.Close)
	done := make(chan error, 1)
	go func() {
		_, err := c.Pin(t.Context(), pinned)
		done <- err
	}()
	for calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	// Two new keys fill the cache while the pinned key's fetch waits; the
	// pinned key is the least recently used.
	clock.Advance(time.Second)
	get(t, c, mustKey(t, "a", "r"))
	clock.Advance(time.Second)
	get(t, c, mustKey(t, "b", "r"))
	close(gate)
	if err := <-done; err != nil {
		t.Fatalf("Pin: %v", err)
	}
	before := calls.Load()
	if _, out := get(t, c, pinned); out != tokens.OutcomeHit || calls.Load() != before {
		t.Errorf("pinned key after the cache made room during its fetch: %v with %d more fetches, want a hit", out, calls.Load()-before)
	}
}

// TestCacheCloseLeavesNothing (acceptance, with FuzzCache): Close cancels
// fetches under way and returns once they have, and stops every timer.
func TestCacheCloseLeavesNothing(t *testing.T) {
	clock := tokens.NewFakeClock(epoch)
	var active atomic.Int64
	started := make(chan struct{}, 10)
	fetch := func(ctx context.Context, key tokens.Key) (tokens.Token, error) {
		active.Add(1)
		defer active.Add(-1)
		started <- struct{}{}
		<-ctx.Done() // ZTS hangs
		return tokens.Token{}, ctx.Err()
	}
	c := tokens.NewCache(fetch, tokens.CacheOptions{Clock: clock})
	ctx, cancel := context.WithCancel(t.Context())
	go func() { _, _ = c.Get(ctx, mustKey(t, "sports", "reader")) }()
	<-started
	c.Close()
	cancel()
	if n := active.Load(); n != 0 {
		t.Errorf("%d fetches still running after Close returned, want 0", n)
	}
	if n := clock.Pending(); n != 0 {
		t.Errorf("%d timers pending after Close, want 0", n)
	}
	if _, err := c.Get(t.Context(), mustKey(t, "sports", "reader")); !errors.Is(err, tokens.ErrCacheClosed) {
		t.Errorf("Get after Close = %v, want ErrCacheClosed", err)
	}
}

// fuzzLifetimes are the token lifetimes the fuzzed ZTS hands out:
// ordinary, short, shorter than the serving minimum, already expired on
// arrival (a node clock ahead of ZTS that nothing corrected).
var fuzzLifetimes = [8]time.Duration{3 * time.Hour, 10 * time.Second, time.Second, 0, -time.Hour, 2 * time.Minute, 5 * time.Second, time.Hour}

// FuzzCache (acceptance): for any sequence of requests, clock moves and
// ZTS answers, on a fake clock: no expired token is ever served, no key is
// fetched more than once per 100 ms, and Close leaves no timer and no
// fetch behind. Each op is two bytes: what, and its argument.
func FuzzCache(f *testing.F) {
	// Set an answer for key a: {3, 3*lifetime index}; ask for a: {0, 0}.
	f.Add([]byte{0, 0, 1, 10, 0, 0, 2, 100, 0, 0})
	f.Add([]byte{3, 3, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 2, 60, 0, 0})            // 10 s tokens
	f.Add([]byte{3, 12, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 2, 1, 0, 0})            // expired on arrival
	f.Add([]byte{3, 9, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0})                         // 0 s tokens
	f.Add([]byte{4, 0, 0, 0, 0, 0, 0, 0, 1, 3, 0, 0, 4, 3, 0, 0, 2, 3, 0, 0}) // 403, then 503
	f.Add([]byte{0, 0, 4, 3, 2, 40, 0, 0, 2, 200, 0, 0, 4, 6, 0, 0})          // ZTS down over a refresh
	f.Add([]byte{5, 0, 3, 6, 0, 0, 2, 2, 0, 0, 1, 255, 0, 0, 3, 15, 2, 120})  // pinned, 1 s then 2 min tokens
	f.Fuzz(runCacheOps)
}

// runCacheOps is FuzzCache's body.
func runCacheOps(t *testing.T, ops []byte) {
	{
		if len(ops) > 400 {
			ops = ops[:400]
		}
		clock := tokens.NewFakeClock(epoch)
		type answer struct {
			lifetime time.Duration
			status   int // 0: a token
		}
		var (
			mu        sync.Mutex
			answers   [3]answer
			lastFetch [3]time.Time
			fetches   int
			problems  []string
		)
		for i := range answers {
			answers[i].lifetime = time.Hour
		}
		keys := [3]tokens.Key{mustKey(t, "a", "r"), mustKey(t, "b", "r"), mustKey(t, "c", "r")}
		index := func(k tokens.Key) int { return int(k.Domain[0] - 'a') }
		fetch := func(_ context.Context, key tokens.Key) (tokens.Token, error) {
			mu.Lock()
			defer mu.Unlock()
			i, now := index(key), clock.Now()
			fetches++
			if fetches > 100000 {
				// A day of pinned 2-minute tokens is about 5000 fetches
				// per key; this many is a loop the spacing check missed.
				problems = append(problems, "more than 100000 fetches: a loop")
				return tokens.Token{}, errors.New("loop")
			}
			if !lastFetch[i].IsZero() && now.Sub(lastFetch[i]) < 100*time.Millisecond {
				problems = append(problems, fmt.Sprintf("key %s fetched again after %v", key.Domain, now.Sub(lastFetch[i])))
			}
			lastFetch[i] = now
			if a := answers[i]; a.status != 0 {
				return tokens.Token{}, &tokens.ZTSError{Status: a.status, Message: "no"}
			}
			return tokens.Token{Value: fmt.Sprintf("%s#%d", key.Domain, fetches), Obtained: now, Expiry: now.Add(answers[i].lifetime)}, nil
		}
		c := tokens.NewCache(fetch, tokens.CacheOptions{Clock: clock, Jitter: func() float64 { return 0.5 }})
		// At most a simulated day, so that an execution stays short.
		advance := func(d time.Duration) {
			if left := epoch.Add(24 * time.Hour).Sub(clock.Now()); d > left {
				d = max(left, 0)
			}
			clock.Advance(d)
		}
		for i := 0; i+1 < len(ops); i += 2 {
			op, arg := ops[i]%6, ops[i+1]
			k := int(arg) % 3
			switch op {
			case 0, 5:
				var (
					tok tokens.Token
					err error
				)
				if op == 0 {
					tok, err = c.Get(t.Context(), keys[k])
				} else {
					tok, err = c.Pin(t.Context(), keys[k])
				}
				if err == nil && !tok.Expiry.After(clock.Now()) {
					t.Fatalf("op %d: served %q, which expired at %v (now %v)", i/2, tok.Value, tok.Expiry, clock.Now())
				}
			case 1:
				advance(time.Duration(arg) * 50 * time.Millisecond)
			case 2:
				advance(time.Duration(arg) * time.Minute)
			case 3:
				mu.Lock()
				answers[k] = answer{lifetime: fuzzLifetimes[int(arg)/3%len(fuzzLifetimes)]}
				mu.Unlock()
			case 4:
				mu.Lock()
				answers[k].status = [3]int{http.StatusForbidden, http.StatusServiceUnavailable, 0}[int(arg)/3%3]
				mu.Unlock()
			}
			mu.Lock()
			if len(problems) > 0 {
				p := problems
				mu.Unlock()
				t.Fatalf("after op %d: %v", i/2, p)
			}
			mu.Unlock()
		}
		c.Close()
		if n := clock.Pending(); n != 0 {
			t.Errorf("%d timers pending after Close", n)
		}
	}
}

// TestCacheTokenExpiredOnArrival: a token that is already expired when it
// arrives (the node's clock ahead of ZTS's by more than its lifetime, and
// no issue time to correct by) is an error, never served; requests get
// the error from memory for the negative-cache TTL, one ZTS call each
// time it passes; nothing refreshes it in the background.
func TestCacheTokenExpiredOnArrival(t *testing.T) {
	c, z, clock := newTestCache(t, -time.Hour, tokens.CacheOptions{})
	key := mustKey(t, "sports", "reader")
	for i := range 300 { // every 100 ms for 30 s
		if tok, _, err := c.GetOutcome(t.Context(), key); !errors.Is(err, tokens.ErrTokenExpired) {
			t.Fatalf("request %d: %q, %v; want ErrTokenExpired", i, tok.Value, err)
		}
		clock.Advance(100 * time.Millisecond)
	}
	if n := z.calls.Load(); n != 3 {
		t.Errorf("ZTS calls over 30 s of requests = %d, want 3 (one per %v)", n, tokens.DefaultNegativeTTL)
	}
	clock.Advance(time.Hour)
	if n := z.calls.Load(); n != 3 {
		t.Errorf("ZTS calls an hour after the last request = %d, want still 3", n)
	}
	if n := clock.Pending(); n != 1 {
		t.Errorf("%d timers pending, want only the idle sweep", n)
	}
}

// TestCacheRetryAfterLongOutage: after its quick retries, a refresh that
// keeps failing is retried at RetryFraction of the time the token has
// left, so a 30 min outage costs a token a handful of calls rather than
// one every RetryMax (the fleet of issue 15 came back with 26 times its
// steady call rate); the token is served throughout, and refreshed once
// ZTS is back, before it expires.
func TestCacheRetryAfterLongOutage(t *testing.T) {
	c, z, clock := newTestCache(t, 2*time.Hour, tokens.CacheOptions{})
	key := mustKey(t, "sports", "reader")
	first, _ := get(t, c, key)
	// 2 h token: hit window 90 min, refresh (jitter 0.5) at 0.825 of it:
	// 74 min, with 46 min left. ZTS goes down just before.
	earliest, latest := c.RefreshAfter(2 * time.Hour)
	clock.Advance((earliest+latest)/2 - time.Minute)
	z.failWith(&tokens.ZTSError{Status: 503, Message: "down"})
	var at []time.Duration // when ZTS was called, after the first
	last := z.calls.Load()
	for range 30 * 60 {
		clock.Advance(time.Second)
		if n := z.calls.Load(); n != last {
			at = append(at, clock.Now().Sub(epoch))
			last = n
		}
		if tok, _ := get(t, c, key); tok.Value != first.Value {
			t.Fatalf("served %q during the outage, want the cached %q", tok.Value, first.Value)
		}
	}
	t.Logf("refresh attempts during a 30 min outage, at %v", at)
	// 1 + 6 quick retries (1 s doubling, within about a minute), then
	// each waiting 0.8 of what the token has left: the next after 30 min.
	if len(at) < 7 || len(at) > 9 {
		t.Errorf("%d attempts in the 30 min outage, want 7 to 9", len(at))
	}
	for i := 7; i < len(at); i++ {
		// What the token had left, less the last 4 min (2 RetryMax) that
		// are the backoff's.
		left := 2*time.Hour - at[i-1] - tokens.MinServeRemaining - 4*time.Minute
		if gap := at[i] - at[i-1]; gap < time.Duration(0.8*0.9*float64(left))-time.Second || gap > time.Duration(0.8*1.1*float64(left))+time.Second {
			t.Errorf("attempt %d came %v after the previous, want 0.8 (±10%%) of the %v the token had left before its last 4 min", i, gap, left)
		}
	}
	z.recover()
	recovered := clock.Now()
	for clock.Now().Before(first.Expiry) {
		clock.Advance(time.Second)
		tok, _ := get(t, c, key)
		if tok.Value != first.Value {
			t.Logf("refreshed %v after ZTS came back, %v before the old token expired", clock.Now().Sub(recovered), first.Expiry.Sub(clock.Now()))
			return
		}
	}
	t.Fatal("the token was not refreshed before it expired, after ZTS came back")
}
