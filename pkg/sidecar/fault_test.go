package sidecar

import (
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/athenz-injector/athenz-injector/pkg/tokens"
	"github.com/athenz-injector/athenz-injector/pkg/tokens/ztsfake"
)

// The fault suite: how the sidecar behaves when ZTS refuses connections,
// answers errors, hangs, or cannot be trusted, and when the identity
// cannot be renewed. Tests run on a fake clock, so token lifetimes of hours
// pass in milliseconds; each counts what reached ZTS (the fake's counters,
// the fake's connections, the sidecar's own metrics) and bounds it.

// ztsCalls counts the sidecar's calls to ZTS at ep with code (all codes
// when code is ""), from its metrics.
func ztsCalls(f *fixture, ep ztsEndpoint, code string) uint64 {
	z := &f.srv.metrics.zts
	z.mu.Lock()
	defer z.mu.Unlock()
	var n uint64
	for k, v := range z.calls {
		if k.ep == ep && (code == "" || k.code == code) {
			n += v
		}
	}
	return n
}

// maxAttempts is the most attempts a backoff from lo doubling to hi, with
// "equal jitter" (each wait at least half the nominal one), can make in
// window after a first attempt: the bound of a loop that is not hot.
func maxAttempts(lo, hi, window time.Duration) int {
	n, spent, b := 1, time.Duration(0), lo
	for {
		spent += b / 2
		if spent > window {
			return n
		}
		n++
		b = min(2*b, hi)
	}
}

// waitFor polls cond every 5 ms for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after 10 s waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// settle waits until everything that runs on the fake clock waits on it
// again: the cache's sweep, one refresh timer per cached token, and the
// identity manager, whose renewals run in a goroutine of their own.
func settle(t *testing.T, f *fixture, clock *tokens.FakeClock) {
	t.Helper()
	waitFor(t, "the timers on the fake clock", func() bool { return clock.Pending() == 2+f.srv.cache.Len() })
}

// TestZTSOutage: when ZTS fails, a miss answers at once with the error that
// fits (502 for 5xx and unreachable, ZTS's own 4xx, 504 after
// ATHENZ_ZTS_TIMEOUT for a hang), never later than the timeout, while
// cached tokens are served without waiting, even during a hanging miss.
func TestZTSOutage(t *testing.T) {
	const timeout = time.Second
	tests := []struct {
		name       string
		fail       func(zts *ztsfake.Server)
		wantStatus int
		wantMsg    string
		wantCode   string // the ZTS call's code in the metrics
		hangs      bool
	}{
		{"ZTS answers 500", func(z *ztsfake.Server) { z.FailNext(ztsfake.EndpointRoleToken, 500, 100) }, 502, "zts answered 500", "500", false},
		{"ZTS answers 503", func(z *ztsfake.Server) {
			z.SetFailure(ztsfake.EndpointRoleToken, ztsfake.Failure{Status: 503, Message: "maintenance"})
		}, 502, "zts answered 503: maintenance", "503", false},
		{"ZTS answers 429", func(z *ztsfake.Server) {
			z.SetFailure(ztsfake.EndpointRoleToken, ztsfake.Failure{Status: 429, Message: "slow down"})
		}, 429, "zts: slow down", "429", false},
		{"ZTS hangs", func(z *ztsfake.Server) { z.SetFailure(ztsfake.EndpointRoleToken, ztsfake.Failure{Hang: true}) }, 504, "timed out", "timeout", true},
		{"ZTS down", func(z *ztsfake.Server) { z.Close() }, 502, "zts unavailable", "connection", false},
		{"ZTS resets connections", func(z *ztsfake.Server) { z.RefuseConnections(true) }, 502, "zts unavailable", "connection", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			zts := newZTS(t)
			f := startSidecar(t, zts, []string{"ATHENZ_ZTS_TIMEOUT=" + timeout.String()}, nil)
			hit := f.api + "/roletoken?domain=prov&role=reader"
			if r := do(t, nil, "GET", hit, "", "", nil); r.status != 200 {
				t.Fatalf("warming the cache: %d %s", r.status, r.body)
			}
			tt.fail(zts)

			type result struct {
				r       response
				elapsed time.Duration
			}
			done := make(chan result, 1)
			start := time.Now()
			go func() {
				r := do(t, nil, "GET", f.api+"/roletoken?domain=prov&role=writer", "", "", nil)
				done <- result{r, time.Since(start)}
			}()
			if tt.hangs {
				waitFor(t, "the miss to reach ZTS", func() bool { return zts.CallsFor(ztsfake.EndpointRoleToken, "prov:writer") > 0 })
			}
			// Hits while the miss is under way (hanging, for the hang).
			var slowest time.Duration
			for range 20 {
				s := time.Now()
				if r := do(t, nil, "GET", hit, "", "", nil); r.status != 200 {
					t.Errorf("cached token during the outage = %d %s, want 200", r.status, r.body)
				}
				slowest = max(slowest, time.Since(s))
			}
			if slowest > 500*time.Millisecond {
				t.Errorf("slowest hit during the outage took %v, want no wait on ZTS", slowest)
			}
			if tt.hangs {
				select {
				case <-done:
					t.Fatalf("the miss answered while ZTS hangs, before the hits were done")
				default:
				}
			}
			got := <-done
			if got.r.status != tt.wantStatus {
				t.Fatalf("miss during the outage = %d %s, want %d", got.r.status, got.r.body, tt.wantStatus)
			}
			if msg := got.r.errorMessage(t); !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("message %q, want it to contain %q", msg, tt.wantMsg)
			}
			switch {
			case tt.hangs && (got.elapsed < timeout || got.elapsed > timeout+time.Second):
				t.Errorf("miss against a hanging ZTS answered after %v, want ATHENZ_ZTS_TIMEOUT (%v)", got.elapsed, timeout)
			case !tt.hangs && got.elapsed > timeout/2:
				t.Errorf("miss answered after %v, want at once (ZTS failed fast)", got.elapsed)
			}
			if n := ztsCalls(f, ztsRoleToken, tt.wantCode); n != 1 {
				t.Errorf("ZTS role token calls with code %s = %d, want 1 (one miss, no retry on the request path)", tt.wantCode, n)
			}
		})
	}
}

// TestZTSRefusingConnections: ZTS resets every connection for 55 minutes
// of an access token's 60: every request for a cached token succeeds
// (fresh, then stale but valid), misses answer 502 at once, the cache's
// refresh retries back off, and once ZTS is back the token is refreshed.
func TestZTSRefusingConnections(t *testing.T) {
	clock := tokens.NewFakeClock(time.Now())
	zts := ztsfake.NewTest(t, ztsfake.Options{KeyType: "ec", Now: clock.Now})
	zts.Grant("prov", "reader", testDomain+"."+testService)
	zts.Grant("prov", "writer", testDomain+"."+testService)
	f := startSidecar(t, zts, []string{"ATHENZ_ZTS_TIMEOUT=2s"}, func(c *Config) { c.Clock = clock })
	cached := []string{"/accesstoken?domain=prov&role=reader", "/roletoken?domain=prov&role=reader"}
	for _, p := range cached {
		if r := do(t, nil, "GET", f.api+p, "", "", nil); r.status != 200 {
			t.Fatalf("warming %s: %d %s", p, r.status, r.body)
		}
	}
	before := ztsCalls(f, ztsAccessToken, "")

	zts.RefuseConnections(true)
	failures, requests := 0, 0
	for minute := 1; minute <= 55; minute++ {
		clock.Advance(time.Minute)
		for _, p := range cached {
			requests++
			r := do(t, nil, "GET", f.api+p, "", "", nil)
			if r.status != 200 {
				failures++
				t.Errorf("minute %d: GET %s = %d %s, want the cached token", minute, p, r.status, r.body)
			}
		}
		if minute == 10 || minute == 50 {
			start := time.Now()
			r := do(t, nil, "GET", f.api+"/roletoken?domain=prov&role=writer", "", "", nil)
			if r.status != http.StatusBadGateway || !strings.Contains(r.errorMessage(t), "zts unavailable") {
				t.Errorf("minute %d: miss = %d %s, want 502 zts unavailable", minute, r.status, r.body)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("minute %d: miss answered after %v, want at once (ZTS resets connections)", minute, d)
			}
		}
	}
	if failures != 0 {
		t.Errorf("%d of %d requests for cached tokens failed during the outage, want 0", failures, requests)
	}
	// The access token (1 h) fell due for refresh at 38 to 43 minutes, so
	// its retries ran for 12 to 17 minutes.
	retries := int(ztsCalls(f, ztsAccessToken, "") - before)
	if bound := maxAttempts(time.Second, 2*time.Minute, 17*time.Minute); retries < 3 || retries > bound {
		t.Errorf("access token refresh attempts during the outage = %d, want from 3 (it retries) to %d (backoff)", retries, bound)
	}
	_, reset := zts.Connections()
	t.Logf("outage: %d requests for cached tokens, %d failed; %d access token refresh attempts; %d connections reset", requests, failures, retries, reset)
	if reset == 0 {
		t.Errorf("ZTS reset no connection: the outage was not real")
	}
	fams, _ := scrape(t, f)
	if stale, _ := metricValue(fams, metricTokenRequests, "type", "accesstoken", "outcome", "stale"); stale == 0 {
		t.Errorf("no stale answers counted; want the token served inside its margin while refreshes fail")
	}
	if n, _ := metricValue(fams, metricTokenRefreshFailures); n == 0 {
		t.Errorf("%s = 0, want the failed refreshes counted", metricTokenRefreshFailures)
	}

	// ZTS is back: the next retry refreshes the access token.
	zts.RefuseConnections(false)
	okBefore, _ := f.srv.cache.Refreshes()
	for i := 0; ; i++ {
		clock.Advance(10 * time.Second)
		if ok, _ := f.srv.cache.Refreshes(); ok > okBefore {
			break
		}
		if i > 12 {
			t.Fatalf("no successful refresh 2 min after ZTS came back")
		}
	}
	var body struct {
		ExpiresIn int64 `json:"expires_in"`
	}
	r := do(t, nil, "GET", f.api+cached[0], "", "", nil)
	r.json(t, &body)
	if r.status != 200 || body.ExpiresIn < 3000 {
		t.Errorf("access token after ZTS came back = %d %s, want a fresh one (about 3600 s)", r.status, r.body)
	}
	if r := do(t, nil, "GET", f.api+"/roletoken?domain=prov&role=writer", "", "", nil); r.status != 200 {
		t.Errorf("miss after ZTS came back = %d %s, want 200", r.status, r.body)
	}
}

// TestZTSErrorsBackOff: while ZTS answers 500 or 429, the cache's refresh
// retries of each token back off exponentially with jitter (counted over
// 15 simulated minutes, in 1 s steps), requests for those tokens are
// served from the cache and make no ZTS call of their own, and a miss makes
// exactly one call.
func TestZTSErrorsBackOff(t *testing.T) {
	for _, status := range []int{500, 429} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			t.Parallel()
			clock := tokens.NewFakeClock(time.Now())
			zts := ztsfake.NewTest(t, ztsfake.Options{KeyType: "ec", Now: clock.Now})
			for _, role := range []string{"reader", "writer", "admin"} {
				zts.Grant("prov", role, testDomain+"."+testService)
			}
			f := startSidecar(t, zts, nil, func(c *Config) { c.Clock = clock })
			keys := []struct{ query, ztsKey string }{
				{"domain=prov&role=reader", "prov:reader"},
				{"domain=prov&role=writer", "prov:writer"},
				{"domain=prov&role=reader,writer", "prov:reader,writer"},
			}
			ask := func(q string) response { return do(t, nil, "GET", f.api+"/roletoken?"+q, "", "", nil) }
			for _, k := range keys {
				if r := ask(k.query); r.status != 200 {
					t.Fatalf("warming %s: %d %s", k.query, r.status, r.body)
				}
			}
			// The 2 h role tokens fall due at 63 to 85.5 minutes (0.70 to
			// 0.95 of their 90 min hit window). Keep them in use (the cache
			// drops keys idle for an hour), then fail ZTS just before.
			for range 62 {
				clock.Advance(time.Minute)
				for _, k := range keys {
					if r := ask(k.query); r.status != 200 {
						t.Fatalf("GET %s = %d %s", k.query, r.status, r.body)
					}
				}
			}

			zts.SetFailure(ztsfake.EndpointRoleToken, ztsfake.Failure{Status: status, Message: "busy"})
			const steps = 30 * 60
			calls := make([][]int, len(keys)) // seconds at which each key's refresh called ZTS
			last := make([]int, len(keys))
			for i, k := range keys {
				last[i] = zts.CallsFor(ztsfake.EndpointRoleToken, k.ztsKey)
			}
			for s := 1; s <= steps; s++ {
				clock.Advance(time.Second)
				for i, k := range keys {
					n := zts.CallsFor(ztsfake.EndpointRoleToken, k.ztsKey)
					for range n - last[i] {
						calls[i] = append(calls[i], s)
					}
					last[i] = n
				}
				if s%30 == 0 {
					for i, k := range keys {
						before := zts.CallsFor(ztsfake.EndpointRoleToken, k.ztsKey)
						if r := ask(k.query); r.status != 200 {
							t.Errorf("second %d: GET %s = %d %s, want the cached token", s, k.query, r.status, r.body)
						}
						if after := zts.CallsFor(ztsfake.EndpointRoleToken, k.ztsKey); after != before {
							t.Errorf("second %d: a request for cached %s called ZTS (%d calls), want none", s, k.query, after-before)
						}
						last[i] = zts.CallsFor(ztsfake.EndpointRoleToken, k.ztsKey)
					}
				}
			}
			var gaps [][]int
			for i, k := range keys {
				c := calls[i]
				t.Logf("%s: refresh calls at seconds %v", k.ztsKey, c)
				if len(c) < 4 {
					t.Errorf("%s: %d refresh calls in 30 min of failures, want retries", k.ztsKey, len(c))
					continue
				}
				if bound := maxAttempts(time.Second, 2*time.Minute, time.Duration(steps-c[0]+1)*time.Second); len(c) > bound {
					t.Errorf("%s: %d calls at seconds %v, want at most %d (backoff from 1 s to 2 min)", k.ztsKey, len(c), c, bound)
				}
				// Each wait is at least half its nominal backoff (1 s
				// doubling to 2 min), less the 1 s resolution of the steps.
				var g []int
				nominal := 1
				for j := 1; j < len(c); j++ {
					gap := c[j] - c[j-1]
					if gap < nominal/2-1 {
						t.Errorf("%s: retry %d came %d s after the previous, want at least %d s (backoff); calls at %v", k.ztsKey, j, gap, nominal/2, c)
					}
					g = append(g, gap)
					nominal = min(2*nominal, 120)
				}
				gaps = append(gaps, g)
			}
			// Jitter: the keys do not retry in lockstep.
			if len(gaps) == len(keys) && fmt.Sprint(gaps[0]) == fmt.Sprint(gaps[1]) && fmt.Sprint(gaps[1]) == fmt.Sprint(gaps[2]) {
				t.Errorf("every key retried after the same waits %v, want jitter", gaps[0])
			}

			// A miss makes one call and answers with ZTS's failure; the
			// misses that follow within the negative-cache TTL get the
			// same answer without calling ZTS.
			for i := range 3 {
				r := ask("domain=prov&role=admin")
				want := http.StatusBadGateway
				if status == 429 {
					want = 429 // a ZTS 4xx is passed on
				}
				if r.status != want {
					t.Errorf("miss %d = %d %s, want %d", i, r.status, r.body, want)
				}
			}
			if n := zts.CallsFor(ztsfake.EndpointRoleToken, "prov:admin"); n != 1 {
				t.Errorf("ZTS calls for 3 misses within the negative-cache TTL = %d, want 1", n)
			}
			fams, _ := scrape(t, f)
			if n, _ := metricValue(fams, metricZTSRequests, "endpoint", "roletoken", "code", fmt.Sprint(status)); int(n) < 12 {
				t.Errorf("%s{roletoken,%d} = %v, want every failed call counted", metricZTSRequests, status, n)
			}
		})
	}
}

// TestZTSTLSFailure: with an ATHENZ_ZTS_CA_FILE that is not ZTS's CA, a
// token request answers 502 naming TLS and the CA file, /readyz says why,
// and the identity's attempts back off (counted over 10 simulated minutes).
func TestZTSTLSFailure(t *testing.T) {
	clock := tokens.NewFakeClock(time.Now())
	zts := ztsfake.NewTest(t, ztsfake.Options{KeyType: "ec", Now: clock.Now})
	zts.Grant("prov", "reader", testDomain+"."+testService)
	other := ztsfake.NewTest(t, ztsfake.Options{KeyType: "ec"})
	env, pub := keyFileEnv(t, zts)
	env = overrideEnv(env, []string{
		"ATHENZ_ZTS_CA_FILE=" + writeFile(t, t.TempDir(), "other-ca.pem", other.CACertPEM()),
	})
	f := startWithEnvNoWait(t, zts, env, pub, func(c *Config) { c.Clock = clock })
	waitFor(t, "the first identity attempt", func() bool { return ztsCalls(f, ztsKeyRefresh, "tls") >= 1 })

	start := time.Now()
	r := do(t, nil, "GET", f.api+"/roletoken?domain=prov&role=reader", "", "", nil)
	if r.status != http.StatusBadGateway {
		t.Fatalf("role token with an untrusted ZTS = %d %s, want 502", r.status, r.body)
	}
	msg := r.errorMessage(t)
	for _, want := range []string{"tls", "certificate signed by unknown authority", "ATHENZ_ZTS_CA_FILE"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q, want it to name %q", msg, want)
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("answered after %v, want at once", d)
	}
	r = do(t, nil, "GET", f.health+"/readyz", "", "", nil)
	if r.status != http.StatusServiceUnavailable || !strings.Contains(r.errorMessage(t), "certificate signed by unknown authority") {
		t.Errorf("/readyz = %d %s, want 503 naming the TLS failure", r.status, r.body)
	}

	accepted, _ := zts.Connections()
	settle(t, f, clock)
	for range 600 {
		clock.Advance(time.Second)
		settle(t, f, clock)
	}
	attempts := int(ztsCalls(f, ztsKeyRefresh, "tls"))
	t.Logf("identity attempts over 10 min with a TLS failure: %d", attempts)
	if bound := maxAttempts(time.Second, time.Minute, 10*time.Minute) + 1; attempts < 6 || attempts > bound {
		t.Errorf("identity attempts with a TLS failure over 10 min = %d, want from 6 (it retries) to %d (backoff)", attempts, bound)
	}
	if now, _ := zts.Connections(); now-accepted > attempts {
		t.Errorf("%d connections to ZTS for %d identity attempts, want no more", now-accepted, attempts)
	}
	if n := ztsCalls(f, ztsRoleToken, "tls"); n != 1 {
		t.Errorf("role token calls = %d, want 1 (the one request; failures are not retried on their own)", n)
	}
}

// TestIdentityRefreshFailsUntilNearExpiry: in copper-argos mode with a
// 10 min certificate, refreshes fail from the renewal point (about 6.5
// min) to 8.5 min; meanwhile /svccert serves the old certificate, /readyz
// stays ready and token calls authenticate with it. When ZTS recovers, a
// new certificate arrives before the old one expires.
func TestIdentityRefreshFailsUntilNearExpiry(t *testing.T) {
	clock := tokens.NewFakeClock(time.Now())
	zts := ztsfake.NewTest(t, ztsfake.Options{KeyType: "ec", Now: clock.Now, CertLifetime: 10 * time.Minute})
	zts.Grant("prov", "reader", testDomain+"."+testService)
	env, dir := copperArgosEnv(t, zts)
	f := startWithEnv(t, zts, env, nil, func(c *Config) { c.Clock = clock })
	waitReady(t, f)
	first := svccertLeaf(t, f)
	zts.SetFailure(ztsfake.EndpointInstanceRefresh, ztsfake.Failure{Status: 500, Message: "database down"})

	settle(t, f, clock)
	step := 0
	for clock.Now().Before(first.NotAfter.Add(-90 * time.Second)) {
		clock.Advance(10 * time.Second)
		settle(t, f, clock)
		step++
		if leaf := svccertLeaf(t, f); leaf.SerialNumber.Cmp(first.SerialNumber) != 0 {
			t.Fatalf("the certificate changed while refresh fails")
		}
		if r := do(t, nil, "GET", f.health+"/readyz", "", "", nil); r.status != 200 {
			t.Fatalf("/readyz at %v = %d %s, want ready with a valid certificate", clock.Now().Sub(first.NotBefore), r.status, r.body)
		}
		if step%6 == 0 { // a miss, over mTLS with the old certificate
			r := do(t, nil, "GET", f.api+fmt.Sprintf("/roletoken?domain=prov&role=reader&max_expiry=%d", 3600+step), "", "", nil)
			if r.status != 200 {
				t.Errorf("role token with the old certificate = %d %s, want 200", r.status, r.body)
			}
		}
	}
	failed := int(ztsCalls(f, ztsInstanceRefresh, "500"))
	t.Logf("failed refresh attempts until %v before expiry: %d", first.NotAfter.Sub(clock.Now()), failed)
	if bound := maxAttempts(time.Second, time.Minute, 3*time.Minute); failed < 3 || failed > bound {
		t.Errorf("failed refresh attempts = %d, want from 3 (it retries) to %d (backoff)", failed, bound)
	}
	keyFile := readPEM(t, dir+"/service.key.pem")

	// ZTS recovers; a new certificate comes before the old one expires.
	zts.SetFailure(ztsfake.EndpointInstanceRefresh, ztsfake.Failure{})
	for {
		clock.Advance(5 * time.Second)
		settle(t, f, clock)
		if leaf := svccertLeaf(t, f); leaf.SerialNumber.Cmp(first.SerialNumber) != 0 {
			if !clock.Now().Before(first.NotAfter) {
				t.Errorf("new certificate at %v, after the old one expired at %v", clock.Now(), first.NotAfter)
			}
			if !leaf.NotAfter.After(first.NotAfter) {
				t.Errorf("new certificate expires %v, not after the old one (%v)", leaf.NotAfter, first.NotAfter)
			}
			break
		}
		if !clock.Now().Before(first.NotAfter) {
			t.Fatalf("no new certificate before the old one expired at %v", first.NotAfter)
		}
	}
	if n := zts.Calls(ztsfake.EndpointInstanceRegister); n != 1 {
		t.Errorf("register calls = %d, want 1: the certificate was refreshed, not registered again", n)
	}
	if got := readPEM(t, dir+"/service.key.pem"); got != keyFile {
		t.Errorf("the key changed with the refresh, want the same key (ATHENZ_ROTATE_KEY is off)")
	}
	fams, _ := scrape(t, f)
	if n, _ := metricValue(fams, metricIdentityFailures); int(n) != failed {
		t.Errorf("%s = %v, want %d", metricIdentityFailures, n, failed)
	}
	if n, _ := metricValue(fams, metricIdentityRenewals); n != 2 {
		t.Errorf("%s = %v, want 2", metricIdentityRenewals, n)
	}
}

// readPEM returns the bytes of the first PEM block of a file.
func readPEM(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	return string(block.Bytes)
}
