package tokens_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"

	"github.com/athenz-injector/athenz-injector/pkg/tokens"
	"github.com/athenz-injector/athenz-injector/pkg/tokens/ztsfake"
)

// The tests in this file run the cache over the real client against the
// fake ZTS, on a fake clock shared by both (ZTS's moved by SetClockOffset),
// for hours or days of simulated time.

// budget is a RoundTripper that counts calls and fails every call past its
// limit, so that a cache that loops on ZTS fails its test instead of
// hanging it.
type budget struct {
	base  http.RoundTripper
	limit int64
	calls atomic.Int64
}

var errBudget = errors.New("test budget of ZTS calls exhausted: the cache calls ZTS in a loop")

func (b *budget) RoundTrip(r *http.Request) (*http.Response, error) {
	if b.calls.Add(1) > b.limit {
		return nil, errBudget
	}
	return b.base.RoundTrip(r)
}

// ztsCache is a cache over the real client and a fake ZTS with ZTS's clock
// offset from the node's (the cache's) by offset.
type ztsCache struct {
	cache  *tokens.Cache
	zts    *ztsfake.Server
	clock  *tokens.FakeClock
	offset time.Duration
	budget *budget
	skew   *tokens.ClockSkew
	logs   *[]string
}

func newZTSCache(t *testing.T, offset time.Duration, opts tokens.CacheOptions) *ztsCache {
	t.Helper()
	clock := tokens.NewFakeClock(time.Unix(time.Now().Unix(), 0))
	// The client certificate must outlive the simulation.
	zts := ztsfake.NewTest(t, ztsfake.Options{Now: clock.Now, CertLifetime: 30 * 24 * time.Hour, KeyType: "ec"})
	zts.SetClockOffset(offset)
	zts.Grant("prov", "reader", "client.app")
	zts.AddDomain("secret")
	tr, err := zts.IdentityTransport("client", "app")
	if err != nil {
		t.Fatalf("IdentityTransport: %v", err)
	}
	t.Cleanup(tr.CloseIdleConnections)
	b := &budget{base: tr, limit: 5000}
	var logs []string
	skew := tokens.NewClockSkew(funcr.New(func(_, args string) { logs = append(logs, args) }, funcr.Options{}))
	client, err := tokens.NewClient(tokens.ClientOptions{URL: zts.URL(), Transport: b, Timeout: 5 * time.Second, Clock: clock, Skew: skew})
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	opts.Clock = clock
	if opts.Jitter == nil {
		opts.Jitter = func() float64 { return 0.5 }
	}
	c := tokens.NewCache(client.Fetch, opts)
	t.Cleanup(c.Close)
	return &ztsCache{cache: c, zts: zts, clock: clock, offset: offset, budget: b, skew: skew, logs: &logs}
}

// ztsNow is the time on ZTS's clock.
func (z *ztsCache) ztsNow() time.Time { return z.clock.Now().Add(z.offset) }

// ztsExpiry reads the expiry ZTS wrote into a token: e= of a role token,
// exp of an access token (a JWT).
func ztsExpiry(t *testing.T, tok string) time.Time {
	t.Helper()
	if strings.HasPrefix(tok, "v=Z1;") {
		for f := range strings.SplitSeq(tok, ";") {
			if v, ok := strings.CutPrefix(f, "e="); ok {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					t.Fatalf("role token e=%q: %v", v, err)
				}
				return time.Unix(n, 0)
			}
		}
		t.Fatalf("role token %q has no e=", tok)
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("access token %q is not a JWT", tok)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("access token claims: %v", err)
	}
	var claims struct {
		Exp int64 `json:"exp"`
	}
	if err := json.Unmarshal(b, &claims); err != nil {
		t.Fatalf("access token claims: %v", err)
	}
	return time.Unix(claims.Exp, 0)
}

// callLog records, per key, the times (on the node's clock) at which the
// ZTS call count of the key went up.
type callLog struct {
	zts   *ztsfake.Server
	seen  map[string]int
	times map[string][]time.Time
}

func newCallLog(zts *ztsfake.Server) *callLog {
	return &callLog{zts: zts, seen: map[string]int{}, times: map[string][]time.Time{}}
}

// note reads the counters at now; a rise of n records n calls at now.
func (l *callLog) note(now time.Time, ep ztsfake.Endpoint, key string) {
	n := l.zts.CallsFor(ep, key)
	for range n - l.seen[key] {
		l.times[key] = append(l.times[key], now)
	}
	l.seen[key] = n
}

// checkSpacing fails unless every window of length window holds at most
// perWindow calls of key.
func (l *callLog) checkSpacing(t *testing.T, key string, window time.Duration, perWindow int) {
	t.Helper()
	ts := l.times[key]
	for i := 0; i+perWindow < len(ts); i++ {
		if d := ts[i+perWindow].Sub(ts[i]); d < window {
			t.Errorf("%s: %d ZTS calls within %v (from %v to %v after the first), want at most %d per %v",
				key, perWindow+1, d, ts[i].Sub(ts[0]), ts[i+perWindow].Sub(ts[0]), perWindow, window)
			return
		}
	}
}

func mustRoleKey(t *testing.T, domain, roles string, minExpiry, maxExpiry time.Duration) tokens.Key {
	t.Helper()
	k, err := tokens.RoleTokenKey(domain, roles, "", minExpiry, maxExpiry)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustAccessKey(t *testing.T, domain, roles string, expiry time.Duration) tokens.Key {
	t.Helper()
	k, err := tokens.AccessTokenKey(domain, roles, "", expiry)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestCacheClockSkew (acceptance): with ZTS's clock 2 h ahead of the node's
// and 2 h behind, and tokens of 3 h, no token served is expired by ZTS's
// clock and ZTS sees at most 2 calls per key per token lifetime. With a
// skew larger than a token's lifetime (4 h), the cache still answers, with
// a token judged by ZTS's clock, and never calls ZTS in a loop.
func TestCacheClockSkew(t *testing.T) {
	const lifetime = 3 * time.Hour
	for _, offset := range []time.Duration{2 * time.Hour, -2 * time.Hour, 4 * time.Hour, -4 * time.Hour} {
		t.Run(fmt.Sprintf("ZTS %+v", offset), func(t *testing.T) {
			z := newZTSCache(t, offset, tokens.CacheOptions{})
			keys := []struct {
				key    tokens.Key
				ep     ztsfake.Endpoint
				callID string
			}{
				{mustRoleKey(t, "prov", "reader", 0, lifetime), ztsfake.EndpointRoleToken, "prov:reader"},
				{mustAccessKey(t, "prov", "reader", lifetime), ztsfake.EndpointAccessToken, "prov:role.reader"},
			}
			calls := newCallLog(z.zts)
			for step := range 12 * 60 {
				if step > 0 {
					z.clock.Advance(time.Minute)
				}
				for _, k := range keys {
					tok, err := z.cache.Get(t.Context(), k.key)
					calls.note(z.clock.Now(), k.ep, k.callID)
					if err != nil {
						t.Fatalf("%v at %v: %v", k.key.Kind, time.Duration(step)*time.Minute, err)
					}
					if exp := ztsExpiry(t, tok.Value); !exp.After(z.ztsNow()) {
						t.Fatalf("%v at %v: served a token that expired at %v by ZTS's clock (ZTS's now %v)",
							k.key.Kind, time.Duration(step)*time.Minute, exp.UTC(), z.ztsNow().UTC())
					}
					if !tok.Expiry.After(z.clock.Now()) {
						t.Fatalf("%v at %v: served a token whose Expiry %v is not after the node's now %v",
							k.key.Kind, time.Duration(step)*time.Minute, tok.Expiry.UTC(), z.clock.Now().UTC())
					}
				}
			}
			for _, k := range keys {
				calls.checkSpacing(t, k.callID, lifetime, 2)
				t.Logf("%s: %d ZTS calls in 12 h", k.callID, len(calls.times[k.callID]))
			}
			if n := z.budget.calls.Load(); n > 20 {
				t.Errorf("%d ZTS calls for 2 keys over 12 h of 3 h tokens, want about one per key per 2 h", n)
			}
			// The skew was measured (to the second: issue times have no
			// more), and logged once.
			if got, ok := z.skew.Offset(); !ok || got < offset-time.Second || got > offset+time.Second {
				t.Errorf("measured skew %v (%v), want ZTS ahead by %v", got, ok, offset)
			}
			if len(*z.logs) != 1 || !strings.Contains((*z.logs)[0], `"ztsaheadby"="`+strings.TrimSuffix(offset.String(), "0m0s")) {
				t.Errorf("log lines %q, want one that says ZTS is ahead by %v", *z.logs, offset)
			}
		})
	}
}

// TestCacheShortTokens (acceptance): a max_expiry=10 token requested once
// makes at most 2 ZTS calls in the following hour; requested every second
// for a minute, at most one ZTS call per 5 s.
func TestCacheShortTokens(t *testing.T) {
	key := mustRoleKey(t, "prov", "reader", 0, 10*time.Second)
	t.Run("requested once", func(t *testing.T) {
		z := newZTSCache(t, 0, tokens.CacheOptions{})
		if _, err := z.cache.Get(t.Context(), key); err != nil {
			t.Fatal(err)
		}
		for range 60 {
			z.clock.Advance(time.Minute)
		}
		n := z.zts.CallsFor(ztsfake.EndpointRoleToken, "prov:reader")
		if n > 2 {
			t.Errorf("a 10 s token requested once: %d ZTS calls in the following hour, want at most 2", n)
		}
		t.Logf("requested once: %d ZTS calls in the hour", n)
	})
	t.Run("requested every second", func(t *testing.T) {
		z := newZTSCache(t, 0, tokens.CacheOptions{})
		calls := newCallLog(z.zts)
		for s := range 60 {
			if s > 0 {
				z.clock.Advance(time.Second)
			}
			tok, err := z.cache.Get(t.Context(), key)
			calls.note(z.clock.Now(), ztsfake.EndpointRoleToken, "prov:reader")
			if err != nil {
				t.Fatalf("at %d s: %v", s, err)
			}
			if exp := ztsExpiry(t, tok.Value); !exp.After(z.ztsNow()) {
				t.Fatalf("at %d s: served a token that expired at %v", s, exp)
			}
		}
		calls.checkSpacing(t, "prov:reader", 5*time.Second, 1)
		var at []time.Duration
		for _, c := range calls.times["prov:reader"] {
			at = append(at, c.Sub(calls.times["prov:reader"][0]))
		}
		t.Logf("requested every second for a minute: ZTS calls at %v after the first", at)
	})
}

// TestCacheMinExpiryOnHit (acceptance): a cached token is a hit only with
// at least min_expiry left. The seed (athenz-client-sidecar) answers 70
// minutes after the first fetch with a 2 h token that has 50 minutes left;
// Athenz's Java ZTSClient cache honours min_expiry, and so does this one.
func TestCacheMinExpiryOnHit(t *testing.T) {
	z := newZTSCache(t, 0, tokens.CacheOptions{})
	key := mustRoleKey(t, "prov", "reader", time.Hour, 0)
	for m := range 5 * 60 {
		if m > 0 {
			z.clock.Advance(time.Minute)
		}
		if m%10 != 0 && m != 70 {
			continue
		}
		tok, err := z.cache.Get(t.Context(), key)
		if err != nil {
			t.Fatalf("at %d min: %v", m, err)
		}
		if left := ztsExpiry(t, tok.Value).Sub(z.ztsNow()); left < time.Hour {
			t.Errorf("at %d min: token with %v left, want at least min_expiry (1 h)", m, left)
		}
	}
}

// TestCacheNegativeCaching (acceptance): a 403 retried 100 times makes one
// ZTS call within the negative-cache TTL, and each retry gets the 403; the
// next call happens once the TTL has passed.
func TestCacheNegativeCaching(t *testing.T) {
	z := newZTSCache(t, 0, tokens.CacheOptions{})
	key := mustRoleKey(t, "secret", "reader", 0, 0)
	for i := range 100 {
		_, err := z.cache.Get(t.Context(), key)
		var ze *tokens.ZTSError
		if !errors.As(err, &ze) || ze.Status != http.StatusForbidden {
			t.Fatalf("request %d: %v, want ZTS's 403", i, err)
		}
		z.clock.Advance(10 * time.Millisecond)
	}
	if n := z.zts.CallsFor(ztsfake.EndpointRoleToken, "secret:reader"); n != 1 {
		t.Errorf("100 requests for a refused token within the negative-cache TTL: %d ZTS calls, want 1", n)
	}
	z.clock.Advance(tokens.DefaultNegativeTTL)
	if _, err := z.cache.Get(t.Context(), key); err == nil {
		t.Fatal("request after the TTL succeeded, want the 403 again")
	}
	if n := z.zts.CallsFor(ztsfake.EndpointRoleToken, "secret:reader"); n != 2 {
		t.Errorf("ZTS calls after the negative-cache TTL = %d, want 2", n)
	}
}
