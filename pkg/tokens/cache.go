package tokens

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// FetchFunc gets a fresh token for key from ZTS. (*Client).Fetch is one.
type FetchFunc func(ctx context.Context, key Key) (Token, error)

// CacheOptions configures a Cache. The zero value works; each field's
// comment gives its default.
type CacheOptions struct {
	// Clock drives expiry checks and refresh timers. Default: RealClock.
	Clock Clock
	// MarginFraction of a token's lifetime is the safety margin: a token is
	// a hit while more than the margin is left. Default: 0.25.
	MarginFraction float64
	// MinMargin is the smallest margin. Default: 1 minute. The margin is
	// never more than half the lifetime, so short-lived tokens still hit.
	MinMargin time.Duration
	// IdleTTL drops entries that nobody asked for in this long. Default: 1 h.
	IdleTTL time.Duration
	// MaxEntries bounds the cache; the least recently used entry goes first.
	// Default: 10000.
	MaxEntries int
	// FetchTimeout bounds one fetch (a waiting request may give up sooner
	// through its own context; the fetch goes on and fills the cache).
	// Default: 30 s.
	FetchTimeout time.Duration
	// RetryMin and RetryMax bound the exponential backoff of failed
	// background refreshes. Defaults: 1 s and 2 min.
	RetryMin, RetryMax time.Duration
	// Jitter returns a number in [0,1) to spread refreshes; default math/rand/v2.
	Jitter func() float64
}

// MinServeRemaining is the least lifetime a token must have left to be
// served: a token that would expire while the answer travels is as bad as an
// expired one.
const MinServeRemaining = 5 * time.Second

// Outcome says how Get answered, for metrics.
type Outcome uint8

// Outcomes of Get.
const (
	// OutcomeHit: a cached token with more than the margin left.
	OutcomeHit Outcome = iota + 1
	// OutcomeStale: a cached token inside the margin, still valid, served
	// because refreshing it failed or is under way.
	OutcomeStale
	// OutcomeMiss: the caller waited for ZTS.
	OutcomeMiss
	// OutcomeError: no valid token and ZTS failed.
	OutcomeError
)

func (o Outcome) String() string {
	switch o {
	case OutcomeHit:
		return "hit"
	case OutcomeStale:
		return "stale"
	case OutcomeMiss:
		return "miss"
	case OutcomeError:
		return "error"
	}
	return "unknown"
}

// Cache holds role and access tokens keyed by Key. After the first fetch of
// a key, requests are answered from memory: each entry is refreshed in the
// background ahead of its safety margin, with jitter; concurrent misses for
// one key share one fetch; a failed refresh keeps serving the cached token
// while it is valid and retries with exponential backoff; an expired token
// is never served. Entries idle for IdleTTL are dropped.
type Cache struct {
	fetch FetchFunc
	opts  CacheOptions

	mu      sync.RWMutex // guards entries and closed
	entries map[Key]*entry
	closed  bool

	sweep Timer // idle sweep, guarded by mu

	refreshes, refreshFailures atomic.Uint64
}

type entry struct {
	key      Key
	tok      atomic.Pointer[Token]
	lastUsed atomic.Int64 // unix nanoseconds of the last Get
	pinned   atomic.Bool  // never dropped as idle or least recently used

	mu       sync.Mutex // guards flight, timer, failures
	flight   *flight
	timer    Timer
	failures int
}

// flight is one fetch shared by everyone who needs the key meanwhile.
type flight struct {
	done chan struct{}
	tok  Token
	err  error
}

// NewCache returns a Cache that gets tokens with fetch.
func NewCache(fetch FetchFunc, opts CacheOptions) *Cache {
	if opts.Clock == nil {
		opts.Clock = RealClock{}
	}
	if opts.MarginFraction <= 0 || opts.MarginFraction >= 1 {
		opts.MarginFraction = 0.25
	}
	if opts.MinMargin <= 0 {
		opts.MinMargin = time.Minute
	}
	if opts.IdleTTL <= 0 {
		opts.IdleTTL = time.Hour
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = 10000
	}
	if opts.FetchTimeout <= 0 {
		opts.FetchTimeout = 30 * time.Second
	}
	if opts.RetryMin <= 0 {
		opts.RetryMin = time.Second
	}
	if opts.RetryMax <= 0 {
		opts.RetryMax = 2 * time.Minute
	}
	if opts.Jitter == nil {
		opts.Jitter = rand.Float64
	}
	c := &Cache{fetch: fetch, opts: opts, entries: make(map[Key]*entry)}
	c.sweep = opts.Clock.AfterFunc(opts.IdleTTL/2, c.sweepIdle)
	return c
}

// Margin returns the safety margin for a token of the given lifetime.
func (c *Cache) Margin(lifetime time.Duration) time.Duration {
	m := time.Duration(float64(lifetime) * c.opts.MarginFraction)
	m = max(m, c.opts.MinMargin)
	return min(m, lifetime/2)
}

// Get returns a token for key: from memory when one with more than the
// margin left is cached, else from ZTS (one call however many callers ask
// at once). A still-valid cached token is returned instead of an error when
// ZTS fails.
func (c *Cache) Get(ctx context.Context, key Key) (Token, error) {
	tok, _, err := c.GetOutcome(ctx, key)
	return tok, err
}

// GetOutcome is Get that also says how the answer was found.
func (c *Cache) GetOutcome(ctx context.Context, key Key) (Token, Outcome, error) {
	now := c.opts.Clock.Now()
	c.mu.RLock()
	e := c.entries[key]
	closed := c.closed
	c.mu.RUnlock()
	if closed {
		return Token{}, OutcomeError, ErrCacheClosed
	}
	if e != nil {
		e.lastUsed.Store(now.UnixNano())
		if tok := e.tok.Load(); tok != nil {
			remaining := tok.Expiry.Sub(now)
			if remaining > c.Margin(tok.Lifetime()) {
				return *tok, OutcomeHit, nil
			}
			if remaining > MinServeRemaining {
				// Inside the margin: a background refresh failed or is due.
				// Serve what we have and make sure a refresh is under way,
				// so no request waits on ZTS while a valid token exists.
				c.refreshSoon(e)
				return *tok, OutcomeStale, nil
			}
		}
	} else {
		e = c.insert(key, now)
	}
	f := c.startFlight(e)
	select {
	case <-f.done:
	case <-ctx.Done():
		return Token{}, OutcomeError, ctx.Err()
	}
	if f.err != nil {
		// A concurrent refresh may have left a valid token after all.
		if tok := e.tok.Load(); tok != nil && tok.Expiry.Sub(c.opts.Clock.Now()) > MinServeRemaining {
			return *tok, OutcomeStale, nil
		}
		return Token{}, OutcomeError, f.err
	}
	return f.tok, OutcomeMiss, nil
}

// ErrCacheClosed is returned by Get after Close (during shutdown).
var ErrCacheClosed = errors.New("token cache closed")

// Pin is Get for a key that must stay cached however rarely it is asked
// for (the sidecar's prefetched tokens, which readiness depends on): after
// a successful Pin the entry is never dropped as idle or to make room, and
// keeps being refreshed.
func (c *Cache) Pin(ctx context.Context, key Key) (Token, error) {
	tok, _, err := c.GetOutcome(ctx, key)
	if err != nil {
		return Token{}, err
	}
	c.mu.RLock()
	e := c.entries[key]
	c.mu.RUnlock()
	if e != nil {
		e.pinned.Store(true)
	}
	return tok, nil
}

// Len returns the number of entries.
func (c *Cache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}

// Refreshes returns how many background refreshes succeeded and failed.
func (c *Cache) Refreshes() (ok, failed uint64) {
	return c.refreshes.Load(), c.refreshFailures.Load()
}

// Close stops every timer. Get fails afterwards.
func (c *Cache) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.sweep != nil {
		c.sweep.Stop()
	}
	for _, e := range c.entries {
		e.stopTimer()
	}
	c.entries = map[Key]*entry{}
}

func (c *Cache) insert(key Key, now time.Time) *entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[key]; ok {
		return e
	}
	if len(c.entries) >= c.opts.MaxEntries {
		c.evictLRULocked()
	}
	e := &entry{key: key}
	e.lastUsed.Store(now.UnixNano())
	c.entries[key] = e
	return e
}

// evictLRULocked drops the least recently used entry. A linear scan is fine:
// it runs only when a new key arrives at a full cache.
func (c *Cache) evictLRULocked() {
	var oldest *entry
	for _, e := range c.entries {
		if e.pinned.Load() {
			continue
		}
		if oldest == nil || e.lastUsed.Load() < oldest.lastUsed.Load() {
			oldest = e
		}
	}
	if oldest != nil {
		oldest.stopTimer()
		delete(c.entries, oldest.key)
	}
}

func (c *Cache) remove(e *entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries[e.key] == e {
		delete(c.entries, e.key)
	}
	e.stopTimer()
}

// startFlight returns the fetch under way for e, starting one if none is.
func (c *Cache) startFlight(e *entry) *flight {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.flight != nil {
		return e.flight
	}
	f := &flight{done: make(chan struct{})}
	e.flight = f
	go c.runFlight(e, f)
	return f
}

func (c *Cache) runFlight(e *entry, f *flight) {
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.FetchTimeout)
	defer cancel()
	tok, err := c.fetch(ctx, e.key)
	e.mu.Lock()
	e.flight = nil
	if err == nil {
		e.tok.Store(&tok)
		e.failures = 0
	} else {
		e.failures++
	}
	e.mu.Unlock()
	f.tok, f.err = tok, err

	// Arm the next timer before waking the waiters, so that whoever waited
	// (a test advancing a FakeClock among them) sees the entry settled.
	switch {
	case err == nil:
		c.scheduleRefresh(e, tok)
	case e.tok.Load() == nil:
		// Nothing cached and nothing to refresh: do not keep a key that
		// failed (a mistyped domain must not pin a slot).
		c.remove(e)
	default:
		c.scheduleRetry(e)
	}
	close(f.done)
}

// scheduleRefresh arms the timer that refreshes tok ahead of its margin:
// the margin point is lifetime minus margin, and the refresh falls between
// 85% and 95% of the way to it (jitter, so that keys fetched together do not
// refresh together), which leaves time for retries before the margin.
func (c *Cache) scheduleRefresh(e *entry, tok Token) {
	lifetime := tok.Lifetime()
	toMargin := lifetime - c.Margin(lifetime)
	ahead := time.Duration((0.95 - 0.1*c.opts.Jitter()) * float64(toMargin))
	delay := tok.Obtained.Add(ahead).Sub(c.opts.Clock.Now())
	c.setTimer(e, max(delay, 0))
}

// scheduleRetry arms a retry after a failed refresh with exponential
// backoff and "equal jitter" (half fixed, half random).
func (c *Cache) scheduleRetry(e *entry) {
	e.mu.Lock()
	n := e.failures
	e.mu.Unlock()
	backoff := c.opts.RetryMin
	for i := 1; i < n && backoff < c.opts.RetryMax; i++ {
		backoff *= 2
	}
	backoff = min(backoff, c.opts.RetryMax)
	backoff = backoff/2 + time.Duration(c.opts.Jitter()*float64(backoff/2))
	c.setTimer(e, backoff)
}

// refreshSoon starts a refresh now unless one is under way or a retry is
// already scheduled (which keeps the backoff when ZTS is failing).
func (c *Cache) refreshSoon(e *entry) {
	e.mu.Lock()
	busy := e.flight != nil || (e.timer != nil && e.failures > 0)
	e.mu.Unlock()
	if !busy {
		c.startFlight(e)
	}
}

func (c *Cache) setTimer(e *entry, d time.Duration) {
	c.mu.RLock()
	closed := c.closed
	c.mu.RUnlock()
	if closed {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.timer != nil {
		e.timer.Stop()
	}
	e.timer = c.opts.Clock.AfterFunc(d, func() { c.refresh(e) })
}

func (e *entry) stopTimer() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
}

// refresh is the timer callback: drop the entry if idle, else fetch.
func (c *Cache) refresh(e *entry) {
	now := c.opts.Clock.Now()
	e.mu.Lock()
	e.timer = nil
	e.mu.Unlock()
	if !e.pinned.Load() && now.Sub(time.Unix(0, e.lastUsed.Load())) > c.opts.IdleTTL {
		c.remove(e)
		return
	}
	c.mu.RLock()
	live := c.entries[e.key] == e && !c.closed
	c.mu.RUnlock()
	if !live {
		return
	}
	f := c.startFlight(e)
	<-f.done
	if f.err != nil {
		c.refreshFailures.Add(1)
	} else {
		c.refreshes.Add(1)
	}
}

// sweepIdle drops idle entries whose refresh is far off (long-lived
// tokens), then re-arms itself.
func (c *Cache) sweepIdle() {
	now := c.opts.Clock.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	for k, e := range c.entries {
		if !e.pinned.Load() && now.Sub(time.Unix(0, e.lastUsed.Load())) > c.opts.IdleTTL {
			e.stopTimer()
			delete(c.entries, k)
		}
	}
	c.sweep = c.opts.Clock.AfterFunc(c.opts.IdleTTL/2, c.sweepIdle)
}
