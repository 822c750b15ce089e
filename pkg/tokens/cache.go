package tokens

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// FetchFunc gets a fresh token for key from ZTS. (*Client).Fetch is one.
type FetchFunc func(ctx context.Context, key Key) (Token, error)

// Defaults of CacheOptions; docs/design/2026-12-02-token-lifecycles.md
// says why each is what it is.
const (
	DefaultMarginFraction   = 0.25
	DefaultMinMargin        = time.Minute
	DefaultIdleTTL          = time.Hour
	DefaultMaxEntries       = 10000
	DefaultFetchTimeout     = 30 * time.Second
	DefaultRetryMin         = time.Second
	DefaultRetryMax         = 2 * time.Minute
	DefaultMinFetchInterval = time.Second
	DefaultMinRefreshDelay  = 30 * time.Second
	DefaultNegativeTTL      = 10 * time.Second
	DefaultRetryFraction    = 0.8
)

// Refresh and retry timing (docs/design/2026-12-02-fleet-recovery.md).
const (
	// A token is refreshed at a random point between refreshFrom and
	// refreshTo of the way from when it was obtained to the end of its
	// hit window, which leaves time for retries.
	refreshFrom, refreshTo = 0.70, 0.95
	// QuickRetries is how many retries of a failed refresh back off
	// exponentially from RetryMin (a blip is over within a minute); later
	// ones wait RetryFraction of the time the token has left.
	QuickRetries = 6
)

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
	// MaxEntries bounds the cache; the least recently used entry goes
	// first (in O(1): recency is kept to the second). Pinned entries do not
	// count towards the bound's evictions. Default: 10000.
	MaxEntries int
	// FetchTimeout bounds one fetch (a waiting request may give up sooner
	// through its own context; the fetch goes on and fills the cache).
	// Default: 30 s.
	FetchTimeout time.Duration
	// RetryMin and RetryMax bound the exponential backoff of failed
	// background refreshes. Defaults: 1 s and 2 min.
	RetryMin, RetryMax time.Duration
	// RetryFraction: after QuickRetries failed retries of a refresh, the
	// next waits this fraction of the time the token can still be served
	// (±10%), when that is longer than the backoff. An outage then costs
	// a few calls per token, and when ZTS comes back the fleet's tokens
	// are refreshed spread over the time they have left, not at once.
	// Default 0.8; at most 0.9.
	RetryFraction float64
	// MinFetchInterval is the floor between two fetches of one key,
	// whatever starts them (a request, a refresh, a retry): a key is never
	// fetched more often, so nothing can make the cache call ZTS in a
	// loop. Default: 1 s.
	MinFetchInterval time.Duration
	// MinRefreshDelay is the floor of a background refresh: a token whose
	// refresh would fall sooner than this after it was obtained (a
	// lifetime under about a minute) is not refreshed ahead; it is fetched
	// again when asked for. Default: 30 s.
	MinRefreshDelay time.Duration
	// NegativeTTL is how long a failed fetch is remembered: requests for
	// the key within it get the same error (ZTS's status included) without
	// a call to ZTS. At least MinFetchInterval. Default: 10 s.
	NegativeTTL time.Duration
	// Jitter returns a number in [0,1) to spread refreshes; default math/rand/v2.
	Jitter func() float64
}

func (o CacheOptions) withDefaults() CacheOptions {
	if o.Clock == nil {
		o.Clock = RealClock{}
	}
	if o.MarginFraction <= 0 || o.MarginFraction >= 1 {
		o.MarginFraction = DefaultMarginFraction
	}
	o.MinMargin = PositiveOr(o.MinMargin, DefaultMinMargin)
	o.IdleTTL = PositiveOr(o.IdleTTL, DefaultIdleTTL)
	o.FetchTimeout = PositiveOr(o.FetchTimeout, DefaultFetchTimeout)
	o.RetryMin = PositiveOr(o.RetryMin, DefaultRetryMin)
	o.RetryMax = PositiveOr(o.RetryMax, DefaultRetryMax)
	o.MinFetchInterval = PositiveOr(o.MinFetchInterval, DefaultMinFetchInterval)
	o.MinRefreshDelay = PositiveOr(o.MinRefreshDelay, DefaultMinRefreshDelay)
	o.NegativeTTL = PositiveOr(o.NegativeTTL, DefaultNegativeTTL)
	o.RetryMin = max(o.RetryMin, o.MinFetchInterval)
	o.RetryMax = max(o.RetryMax, o.RetryMin)
	o.NegativeTTL = max(o.NegativeTTL, o.MinFetchInterval)
	if o.RetryFraction <= 0 || o.RetryFraction > 0.9 {
		o.RetryFraction = DefaultRetryFraction
	}
	if o.MaxEntries <= 0 {
		o.MaxEntries = DefaultMaxEntries
	}
	if o.Jitter == nil {
		o.Jitter = rand.Float64
	}
	return o
}

// PositiveOr returns d, or def when d is not positive: the default of a
// duration setting left zero.
func PositiveOr(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// MinServeRemaining is the least lifetime a cached token must have left to
// be served: a token that would expire while the answer travels is as bad
// as an expired one. (A token just fetched is served with whatever it has.)
const MinServeRemaining = 5 * time.Second

// ErrTokenExpired is returned (wrapped) when ZTS's token expires before
// it could be used: already expired when it arrived, by this node's clock
// and ZTS's issue time, or, for tokens shorter than MinFetchInterval,
// before the key may be fetched again. It is a bad answer from ZTS.
var ErrTokenExpired = errors.New("the token from zts expired before it could be used")

// ErrCacheClosed is returned by Get after Close (during shutdown).
var ErrCacheClosed = errors.New("token cache closed")

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
	// OutcomeError: no valid token and ZTS failed (now, or within the
	// negative-cache TTL).
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
// background ahead of its safety margin, with jitter, while someone asks
// for it; concurrent misses for one key share one fetch; a failed fetch is
// remembered for NegativeTTL; a failed refresh keeps serving the cached
// token while it is valid and retries with exponential backoff; no key is
// fetched twice within MinFetchInterval; an expired token is never served.
// Entries idle for IdleTTL are dropped; at MaxEntries the least recently
// used goes.
type Cache struct {
	fetch FetchFunc
	opts  CacheOptions

	// ctx ends with Close and cancels fetches under way; flights counts
	// them, so that Close returns once they have. flightMu guards
	// flights.Add against Close's Wait; it is taken last of all locks.
	ctx           context.Context
	cancel        context.CancelFunc
	flightMu      sync.Mutex
	flights       sync.WaitGroup
	flightsClosed bool

	mu      sync.RWMutex // guards entries, lru, closed and sweep; taken before any entry's mu
	entries map[Key]*entry
	lru     lruList // unpinned entries, most recently used first
	closed  bool
	sweep   Timer

	refreshes, refreshFailures atomic.Uint64
}

type entry struct {
	key Key
	tok atomic.Pointer[Token] // the last token fetched; may have expired
	// lastUsed is when the key was last asked for, in unix nanoseconds,
	// to the second: it is written (and the entry moved in lru) at most
	// once a second, so that a hot key does not bounce the cache line
	// between CPUs, nor take the cache-wide lock, on every request.
	lastUsed atomic.Int64
	pinned   atomic.Bool // never dropped as idle or least recently used

	prev, next *entry // in Cache.lru, guarded by Cache.mu

	mu        sync.Mutex // guards the fields below
	flight    *flight
	timer     Timer
	failures  int       // consecutive failed fetches
	lastFetch time.Time // when the last fetch started
	negErr    error     // the last failure, served until negUntil
	negUntil  time.Time
}

// flight is one fetch shared by everyone who needs the key meanwhile.
type flight struct {
	done chan struct{}
	tok  Token
	err  error
}

// NewCache returns a Cache that gets tokens with fetch.
func NewCache(fetch FetchFunc, opts CacheOptions) *Cache {
	opts = opts.withDefaults()
	c := &Cache{fetch: fetch, opts: opts, entries: make(map[Key]*entry)}
	c.lru.init()
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.sweep = opts.Clock.AfterFunc(opts.IdleTTL/2, c.sweepIdle)
	return c
}

// Margin returns the safety margin for a token of the given lifetime.
func (c *Cache) Margin(lifetime time.Duration) time.Duration {
	m := time.Duration(float64(lifetime) * c.opts.MarginFraction)
	m = max(m, c.opts.MinMargin)
	return min(m, lifetime/2)
}

// bounds returns, for a token of key, the least lifetime it must have left
// to be served from the cache (minLeft) and to be a hit (hitAbove). A
// key's MinExpiry raises both: the caller asked for a token with that much
// left. When ZTS gave less than MinExpiry in all, what can be honoured is
// the lifetime less the margin.
func (c *Cache) bounds(key Key, tok *Token) (minLeft, hitAbove time.Duration) {
	lifetime := tok.Lifetime()
	margin := c.Margin(lifetime)
	minLeft = max(MinServeRemaining, min(key.MinExpiry, lifetime-margin))
	return minLeft, max(margin, minLeft)
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
	return c.get(ctx, key, false)
}

// Pin is Get for a key that must stay cached however rarely it is asked
// for (the sidecar's prefetched tokens, which readiness depends on): the
// entry is pinned before it is fetched, and is never dropped as idle or to
// make room, and keeps being refreshed.
func (c *Cache) Pin(ctx context.Context, key Key) (Token, error) {
	tok, _, err := c.get(ctx, key, true)
	return tok, err
}

// Lookup returns the cached token of key, if any, whether or not it is
// still valid; it neither fetches nor counts as a use of the key.
func (c *Cache) Lookup(key Key) (Token, bool) {
	c.mu.RLock()
	e := c.entries[key]
	c.mu.RUnlock()
	if e == nil {
		return Token{}, false
	}
	tok := e.tok.Load()
	if tok == nil {
		return Token{}, false
	}
	return *tok, true
}

func (c *Cache) get(ctx context.Context, key Key, pin bool) (Token, Outcome, error) {
	now := c.opts.Clock.Now()
	e := c.lookup(key, now, pin)
	if e == nil {
		return Token{}, OutcomeError, ErrCacheClosed
	}
	if tok := e.tok.Load(); tok != nil {
		minLeft, hitAbove := c.bounds(key, tok)
		remaining := tok.Expiry.Sub(now)
		if remaining > hitAbove {
			return *tok, OutcomeHit, nil
		}
		if remaining > minLeft {
			// Inside the margin: a background refresh failed, is due or
			// was not scheduled (nobody asked for a while). Serve what we
			// have and make sure a refresh is under way, so no request
			// waits on ZTS while a valid token exists.
			c.refreshSoon(e, now)
			return *tok, OutcomeStale, nil
		}
	}
	f, err := c.startFetch(e, now)
	if err != nil {
		var soon *tooSoonError
		if tok := e.tok.Load(); tok != nil && tok.Expiry.After(now) && errors.As(err, &soon) {
			// Fetched less than MinFetchInterval ago, a token with less
			// than MinServeRemaining in all: it is what ZTS gives; serve
			// it while it is valid rather than call ZTS again so soon.
			return *tok, OutcomeStale, nil
		}
		return Token{}, OutcomeError, err
	}
	select {
	case <-f.done:
	case <-ctx.Done():
		return Token{}, OutcomeError, ctx.Err()
	}
	if f.err != nil {
		// A concurrent refresh may have left a valid token after all.
		if tok := e.tok.Load(); tok != nil {
			if minLeft, _ := c.bounds(key, tok); tok.Expiry.Sub(c.opts.Clock.Now()) > minLeft {
				return *tok, OutcomeStale, nil
			}
		}
		return Token{}, OutcomeError, f.err
	}
	return f.tok, OutcomeMiss, nil
}

// lookup returns the entry of key, inserting it if there is none, or nil
// after Close. It marks the entry used now, and pinned when pin is set.
func (c *Cache) lookup(key Key, now time.Time, pin bool) *entry {
	c.mu.RLock()
	e, closed := c.entries[key], c.closed
	c.mu.RUnlock()
	if closed {
		return nil
	}
	if e == nil || (pin && !e.pinned.Load()) {
		c.mu.Lock()
		e = c.insertLocked(key, now, pin)
		c.mu.Unlock()
		if e == nil {
			return nil
		}
	}
	if now.UnixNano()-e.lastUsed.Load() >= int64(time.Second) {
		e.lastUsed.Store(now.UnixNano())
		c.touch(e)
	}
	return e
}

// insertLocked returns the entry of key, adding it (and making room) if
// it is new, and pins it when pin is set. Nil after Close.
func (c *Cache) insertLocked(key Key, now time.Time, pin bool) *entry {
	if c.closed {
		return nil
	}
	e, ok := c.entries[key]
	if !ok {
		if len(c.entries) >= c.opts.MaxEntries {
			if victim := c.lru.back(); victim != nil {
				c.lru.remove(victim)
				delete(c.entries, victim.key)
				victim.stopTimer()
			}
		}
		e = &entry{key: key}
		e.lastUsed.Store(now.UnixNano())
		c.entries[key] = e
		if !pin {
			c.lru.pushFront(e)
		}
	}
	if pin && !e.pinned.Load() {
		if ok {
			c.lru.remove(e)
		}
		e.pinned.Store(true)
	}
	return e
}

// touch moves e to the front of the LRU list (lookup calls it at most
// once a second per entry).
func (c *Cache) touch(e *entry) {
	if e.pinned.Load() {
		return
	}
	c.mu.Lock()
	if c.entries[e.key] == e && !e.pinned.Load() {
		c.lru.moveToFront(e)
	}
	c.mu.Unlock()
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

// Close stops every timer, cancels the fetches under way and returns once
// they have returned. Get fails afterwards.
func (c *Cache) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	if c.sweep != nil {
		c.sweep.Stop()
	}
	entries := c.entries
	c.entries = map[Key]*entry{}
	c.lru.init()
	c.mu.Unlock()
	for _, e := range entries {
		e.stopTimer()
	}
	c.flightMu.Lock()
	c.flightsClosed = true
	c.flightMu.Unlock()
	c.cancel()
	c.flights.Wait()
	// A flight that ended just now may have armed a timer before it saw
	// the cache closed; setTimer checks closed, so only a timer armed
	// before Close took the lock can be left. Stop them again.
	for _, e := range entries {
		e.stopTimer()
	}
}

func (c *Cache) remove(e *entry) {
	c.mu.Lock()
	if c.entries[e.key] == e {
		delete(c.entries, e.key)
		if !e.pinned.Load() {
			c.lru.remove(e)
		}
	}
	c.mu.Unlock()
	e.stopTimer()
}

// startFetch returns the fetch under way for e, starting one unless the
// key failed within NegativeTTL (its error is returned) or was fetched
// within MinFetchInterval (an error wrapping ErrTokenExpired).
func (c *Cache) startFetch(e *entry, now time.Time) (*flight, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.flight != nil {
		return e.flight, nil
	}
	if now.Before(e.negUntil) {
		return nil, e.negErr
	}
	if c.tooSoon(e, now) {
		return nil, &tooSoonError{next: e.lastFetch.Add(c.opts.MinFetchInterval)}
	}
	return c.startFlightLocked(e, now), nil
}

// tooSoon reports whether e was fetched within MinFetchInterval; e.mu is
// held.
func (c *Cache) tooSoon(e *entry, now time.Time) bool {
	return !e.lastFetch.IsZero() && now.Sub(e.lastFetch) < c.opts.MinFetchInterval
}

// tooSoonError refuses a fetch within MinFetchInterval of the last one,
// when the token that fetch got has expired already.
type tooSoonError struct{ next time.Time }

func (e *tooSoonError) Error() string {
	return fmt.Sprintf("%v; the next fetch is allowed at %s", ErrTokenExpired, e.next.UTC().Format(time.RFC3339Nano))
}

func (e *tooSoonError) Unwrap() error { return ErrTokenExpired }

// startFlightLocked starts a fetch for e; e.mu is held and no flight is
// under way. After Close it returns a flight that failed with
// ErrCacheClosed.
func (c *Cache) startFlightLocked(e *entry, now time.Time) *flight {
	f := &flight{done: make(chan struct{})}
	c.flightMu.Lock()
	closed := c.flightsClosed
	if !closed {
		c.flights.Add(1)
	}
	c.flightMu.Unlock()
	if closed {
		f.err = ErrCacheClosed
		close(f.done)
		return f
	}
	e.flight = f
	e.lastFetch = now
	go c.runFlight(e, f)
	return f
}

func (c *Cache) runFlight(e *entry, f *flight) {
	defer c.flights.Done()
	ctx, cancel := context.WithTimeout(c.ctx, c.opts.FetchTimeout)
	tok, err := c.fetch(ctx, e.key)
	cancel()
	now := c.opts.Clock.Now()
	if err == nil && !tok.Expiry.After(now) {
		err = fmt.Errorf("%w: it expired at %s, by this node's clock at %s (a node clock ahead of ZTS's by more than the token's lifetime, when ZTS's issue time is unknown)",
			ErrTokenExpired, tok.Expiry.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	closing := c.ctx.Err() != nil
	e.mu.Lock()
	e.flight = nil
	switch {
	case err == nil:
		e.tok.Store(&tok)
		e.failures, e.negErr, e.negUntil = 0, nil, time.Time{}
	case closing:
		err = ErrCacheClosed
	default:
		e.failures++
		e.negErr, e.negUntil = err, now.Add(c.opts.NegativeTTL)
	}
	e.mu.Unlock()
	f.tok, f.err = tok, err

	// Arm the next timer before waking the waiters, so that whoever waited
	// (a test advancing a FakeClock among them) sees the entry settled.
	switch {
	case closing:
	case err == nil:
		c.scheduleRefresh(e, &tok, now)
	case e.tok.Load() == nil && !e.pinned.Load():
		// Nothing to refresh: keep the key only for the negative-cache
		// TTL (a mistyped domain must not hold a slot for long).
		c.setTimer(e, c.opts.NegativeTTL)
	default:
		c.scheduleRetry(e, now)
	}
	close(f.done)
}

// floorDelay is how long from now until e may be fetched again.
func (c *Cache) floorDelay(e *entry, now time.Time) time.Duration {
	e.mu.Lock()
	last := e.lastFetch
	e.mu.Unlock()
	return max(0, last.Add(c.opts.MinFetchInterval).Sub(now))
}

// RefreshAfter returns when a token of the given lifetime, asked for with
// no min_expiry, is refreshed, counted from when it was obtained: at a
// random point from earliest to latest. Both are 0 when such a token is
// not refreshed ahead (it is fetched again when asked for).
func (c *Cache) RefreshAfter(lifetime time.Duration) (earliest, latest time.Duration) {
	ahead := lifetime - max(c.Margin(lifetime), MinServeRemaining)
	if ahead < c.opts.MinRefreshDelay {
		return 0, 0
	}
	return time.Duration(refreshFrom * float64(ahead)), time.Duration(refreshTo * float64(ahead))
}

// scheduleRefresh arms the timer that refreshes tok ahead of the point
// where it stops being a hit: between refreshFrom and refreshTo of the way
// there (jitter, so that keys fetched together do not refresh together),
// which leaves time for retries. A token whose
// refresh would come less than MinRefreshDelay after it was obtained is
// not refreshed ahead.
func (c *Cache) scheduleRefresh(e *entry, tok *Token, now time.Time) {
	_, hitAbove := c.bounds(e.key, tok)
	ahead := tok.Expiry.Add(-hitAbove).Sub(tok.Obtained)
	if ahead < c.opts.MinRefreshDelay {
		return
	}
	at := tok.Obtained.Add(time.Duration((refreshTo - (refreshTo-refreshFrom)*c.opts.Jitter()) * float64(ahead)))
	c.setTimer(e, max(at.Sub(now), c.floorDelay(e, now)))
}

// scheduleRetry arms a retry after a failed fetch. The first QuickRetries
// back off exponentially from RetryMin with "equal jitter" (half fixed,
// half random); later ones wait RetryFraction (±10%) of the time the
// cached token can still be served less 2 RetryMax, when that is longer
// (in its last minutes a token is retried every RetryMax): the wait shrinks
// as the token ages, so it is retried more often the closer it is to
// expiry, and after a long outage each token is retried once within the
// time it has left rather than every RetryMax. Never sooner than
// MinFetchInterval.
func (c *Cache) scheduleRetry(e *entry, now time.Time) {
	e.mu.Lock()
	n := e.failures
	e.mu.Unlock()
	backoff := c.opts.RetryMin
	for i := 1; i < n && backoff < c.opts.RetryMax; i++ {
		backoff *= 2
	}
	backoff = min(backoff, c.opts.RetryMax)
	backoff = backoff/2 + time.Duration(c.opts.Jitter()*float64(backoff/2))
	if tok := e.tok.Load(); tok != nil && n > QuickRetries {
		minLeft, _ := c.bounds(e.key, tok)
		// The last 2 RetryMax are left to the backoff: a token that
		// close to expiry is retried at least every RetryMax.
		left := tok.Expiry.Sub(now) - minLeft - 2*c.opts.RetryMax
		backoff = max(backoff, time.Duration(c.opts.RetryFraction*(0.9+0.2*c.opts.Jitter())*float64(left)))
	}
	c.setTimer(e, max(backoff, c.floorDelay(e, now)))
}

// refreshSoon arms a refresh as soon as the fetch floor allows, unless one
// is under way, a retry is already armed (which keeps the backoff when
// ZTS is failing) or a failure is within its negative-cache TTL.
func (c *Cache) refreshSoon(e *entry, now time.Time) {
	e.mu.Lock()
	busy := e.flight != nil || (e.timer != nil && e.failures > 0) || now.Before(e.negUntil)
	e.mu.Unlock()
	if !busy {
		c.setTimer(e, c.floorDelay(e, now))
	}
}

// setTimer arms e's timer to run refresh after d, replacing one that is
// armed; not after Close.
func (c *Cache) setTimer(e *entry, d time.Duration) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
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

// refresh is the timer callback. It drops an entry that holds only a
// failure or that nobody asked for within IdleTTL, stops refreshing one
// that nobody asked for within its token's lifetime, and fetches the rest.
func (c *Cache) refresh(e *entry) {
	now := c.opts.Clock.Now()
	e.mu.Lock()
	e.timer = nil
	e.mu.Unlock()
	c.mu.RLock()
	live := c.entries[e.key] == e && !c.closed
	c.mu.RUnlock()
	if !live {
		return
	}
	tok, pinned := e.tok.Load(), e.pinned.Load()
	idle := now.Sub(time.Unix(0, e.lastUsed.Load()))
	e.mu.Lock()
	if e.flight != nil || c.tooSoon(e, now) {
		// A request fetched meanwhile; its flight armed what comes next.
		e.mu.Unlock()
		return
	}
	switch {
	case pinned:
	case tok == nil || idle > c.opts.IdleTTL:
		e.mu.Unlock()
		c.remove(e)
		return
	case idle > tok.Lifetime():
		// Nobody asked for it within a lifetime: stop here. The entry
		// stays; a request finds the token (or none) and fetches.
		e.mu.Unlock()
		return
	}
	f := c.startFlightLocked(e, now)
	e.mu.Unlock()
	<-f.done
	switch {
	case errors.Is(f.err, ErrCacheClosed):
	case f.err != nil:
		c.refreshFailures.Add(1)
	default:
		c.refreshes.Add(1)
	}
}

// sweepIdle drops entries nobody asked for within IdleTTL whose timer will
// not (long-lived tokens, refreshes that stopped), then re-arms itself.
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
			c.lru.remove(e)
			delete(c.entries, k)
		}
	}
	c.sweep = c.opts.Clock.AfterFunc(c.opts.IdleTTL/2, c.sweepIdle)
}

// lruList is an intrusive doubly linked list of entries around a
// sentinel: insert, remove, move and take the last in O(1).
type lruList struct{ root entry }

func (l *lruList) init() { l.root.next, l.root.prev = &l.root, &l.root }

func (l *lruList) pushFront(e *entry) {
	e.prev, e.next = &l.root, l.root.next
	l.root.next.prev = e
	l.root.next = e
}

// remove unlinks e; it is a no-op for an entry not in the list.
func (l *lruList) remove(e *entry) {
	if e.next == nil {
		return
	}
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}

func (l *lruList) moveToFront(e *entry) {
	if e.next == nil || l.root.next == e {
		return
	}
	l.remove(e)
	l.pushFront(e)
}

// back returns the least recently used entry, or nil.
func (l *lruList) back() *entry {
	if l.root.prev == &l.root {
		return nil
	}
	return l.root.prev
}
