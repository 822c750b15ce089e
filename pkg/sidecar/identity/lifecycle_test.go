package identity_test

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/AthenZ/athenz/clients/go/zts"

	"github.com/athenz-injector/athenz-injector/pkg/sidecar/identity"
	"github.com/athenz-injector/athenz-injector/pkg/tokens/ztsfake"
)

// runManager runs m until the returned stop is called (or the test ends).
func runManager(t *testing.T, m *identity.Manager) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v, want nil after the context ends", err)
		}
	}
	t.Cleanup(stop)
	return stop
}

// ntokenTimes reads t= and e= of an N-token.
func ntokenTimes(t *testing.T, tok string) (issued, expires time.Time) {
	t.Helper()
	unsigned, _, _ := strings.Cut(tok, ";s=")
	for f := range strings.SplitSeq(unsigned, ";") {
		k, v, _ := strings.Cut(f, "=")
		n, err := strconv.ParseInt(v, 10, 64)
		switch {
		case k != "t" && k != "e":
			continue
		case err != nil:
			t.Fatalf("N-token field %s=%q: %v", k, v, err)
		case k == "t":
			issued = time.Unix(n, 0)
		default:
			expires = time.Unix(n, 0)
		}
	}
	if issued.IsZero() || expires.IsZero() {
		t.Fatalf("N-token %q has no t= or e=", tok)
	}
	return issued, expires
}

// TestNTokenLifecycle (acceptance): in copper-argos mode with 7-day
// certificates and ZTS's 1-day N-tokens, the N-token source answers with a
// token that has at least a quarter of its lifetime left, every hour of 10
// days, across two restarts of the sidecar (a new Manager that adopts the
// identity left in the directory gets an N-token at once).
func TestNTokenLifecycle(t *testing.T) {
	f := newFixture(t, ztsfake.Options{CertLifetime: 7 * 24 * time.Hour}, false)
	o := f.options()
	o.NToken = true
	m := newManager(t, o)
	if err := m.Init(t.Context()); err != nil {
		t.Fatalf("Init: %v", err)
	}
	stop := runManager(t, m)
	least := 1.0 // the least part of its lifetime an N-token had left
	check := func(when string) {
		t.Helper()
		tok, exp, err := m.NTokenSource().Token()
		if err != nil {
			t.Fatalf("%s: /ntoken would fail: %v", when, err)
		}
		issued, expires := ntokenTimes(t, tok)
		// The token's times are whole seconds; Token()'s are the node's,
		// counted from when it was asked for.
		if d := exp.Sub(expires); d < -time.Second || d > time.Second {
			t.Errorf("%s: Token() says it expires at %v, the token says %v", when, exp, expires)
		}
		left, life := expires.Sub(f.clock.Now()), expires.Sub(issued)
		if left < life/4 {
			t.Fatalf("%s: N-token with %v left of %v, want at least a quarter", when, left, life)
		}
		least = min(least, float64(left)/float64(life))
	}
	check("after Init")
	restartAt := map[int]bool{3 * 24: true, 6*24 + 12: true}
	for h := 1; h <= 10*24; h++ {
		f.advance(t, time.Hour)
		if restartAt[h] {
			stop()
			m = newManager(t, o) // adopts the certificate and key in f.dir
			stop = runManager(t, m)
			waitFor(t, "the restarted manager to wait on the clock", func() bool { return f.clock.Pending() > 0 })
			check("right after the restart at hour " + strconv.Itoa(h))
		}
		check("at hour " + strconv.Itoa(h))
		if err := m.Ready(); err != nil {
			t.Fatalf("Ready() at hour %d: %v", h, err)
		}
	}
	// One register; renewals are refreshes, at least one per N-token
	// lifetime and not many more.
	if got := f.zts.Calls(ztsfake.EndpointInstanceRegister); got != 1 {
		t.Errorf("register calls = %d, want 1", got)
	}
	if got := f.zts.Calls(ztsfake.EndpointInstanceRefresh); got < 10 || got > 20 {
		t.Errorf("refresh calls over 10 days of 1-day N-tokens = %d, want 10 to 20", got)
	}
	t.Logf("over 10 days: %d refreshes, the N-token had at least %.2f of its lifetime left at every hourly check",
		f.zts.Calls(ztsfake.EndpointInstanceRefresh), least)
}

// certThumbprint is the x5t#S256 that ZTS binds an access token to.
func certThumbprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// presentedCert gets an access token through rt and returns the
// thumbprint of the client certificate it is bound to (cnf): the one the
// connection presented.
func presentedCert(t *testing.T, zc zts.ZTSClient) string {
	t.Helper()
	at, err := zc.PostAccessTokenRequest("grant_type=client_credentials&scope=prov:role.reader")
	if err != nil {
		t.Fatalf("access token through Transport(): %v", err)
	}
	parts := strings.Split(at.Access_token, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		Cnf map[string]string `json:"cnf"`
	}
	if err := json.Unmarshal(b, &claims); err != nil {
		t.Fatal(err)
	}
	return claims.Cnf["x5t#S256"]
}

// TestTransportAfterRotation (suspected, confirmed): a connection to ZTS
// that is busy when the certificate rotates must not go on carrying calls
// with the old certificate. Over HTTP/2 the busy connection takes new
// calls at once; ZTS (Jetty) speaks HTTP/1.1 only, but a proxy in front of
// it may not. Over HTTP/1.1 the keep-alive connection goes back to the
// pool when its answer is read, after the rotation closed the idle ones.
func TestTransportAfterRotation(t *testing.T) {
	for _, http2 := range []bool{false, true} {
		t.Run(map[bool]string{false: "HTTP/1.1", true: "HTTP/2"}[http2], func(t *testing.T) {
			testTransportAfterRotation(t, http2)
		})
	}
}

func testTransportAfterRotation(t *testing.T, http2 bool) {
	f := newFixture(t, ztsfake.Options{HTTP2: http2}, false)
	f.zts.Grant("prov", "reader", "client.api")
	m := newManager(t, f.options())
	if err := m.Init(t.Context()); err != nil {
		t.Fatalf("Init: %v", err)
	}
	startRun(t, m)
	zc := zts.NewClient(f.zts.URL(), m.Transport())
	first := leafOf(t, m.CertificateChainPEM())
	if got := presentedCert(t, zc); got != certThumbprint(first) {
		t.Fatalf("before the rotation the connection presented %s, want the certificate %s", got, certThumbprint(first))
	}

	// A slow call holds the kept-alive connection while the certificate
	// rotates (2/3 of the 1 h lifetime).
	f.zts.SetLatency(ztsfake.EndpointJWKS, 500*time.Millisecond)
	slow := make(chan error, 1)
	go func() {
		_, err := zc.GetJWKList(nil, "")
		slow <- err
	}()
	waitFor(t, "the slow call to reach ZTS", func() bool { return f.zts.Calls(ztsfake.EndpointJWKS) == 1 })
	f.advance(t, 45*time.Minute)
	second := leafOf(t, m.CertificateChainPEM())
	if second.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Fatal("the certificate did not rotate")
	}
	// A call while the slow one still runs: Go's transport stops closing
	// connections that become idle once a call looks for one.
	check := func(when string) {
		t.Helper()
		if got := presentedCert(t, zc); got != certThumbprint(second) {
			t.Errorf("%s a call presented %s (the old certificate: %v), want the new one %s",
				when, got, got == certThumbprint(first), certThumbprint(second))
		}
	}
	check("during the slow call,")
	if err := <-slow; err != nil {
		t.Fatalf("the slow call: %v", err)
	}
	check("once the slow call ended,")
}

// TestCopperArgosClockSkew: with ZTS's clock 2 h ahead of the node's or
// behind it, and 1 h certificates, the identity is judged by ZTS's clock
// (measured from the N-token's issue time): ready all along, the
// certificate presented is one ZTS accepts, renewed about every 40
// minutes, not in a loop.
func TestCopperArgosClockSkew(t *testing.T) {
	for _, offset := range []time.Duration{2 * time.Hour, -2 * time.Hour} {
		t.Run(offset.String(), func(t *testing.T) {
			f := newFixture(t, ztsfake.Options{}, false)
			f.zts.SetClockOffset(offset)
			f.zts.Grant("prov", "reader", "client.api")
			o := f.options()
			o.NToken = true
			m := newManager(t, o)
			if err := m.Init(t.Context()); err != nil {
				t.Fatalf("Init: %v", err)
			}
			startRun(t, m)
			for h := 0; h < 10*60; h += 20 {
				if h > 0 {
					f.advance(t, 20*time.Minute)
				}
				if err := m.Ready(); err != nil {
					t.Fatalf("Ready() at %d min: %v", h, err)
				}
				if err := f.roleTokenThrough(m); err != nil {
					t.Fatalf("a call through Transport() at %d min: %v", h, err)
				}
				if _, _, err := m.NTokenSource().Token(); err != nil {
					t.Fatalf("N-token at %d min: %v", h, err)
				}
			}
			if got, ok := m.ClockSkew().Offset(); !ok || got < offset-time.Second || got > offset+time.Second {
				t.Errorf("measured skew %v (%v), want %v", got, ok, offset)
			}
			if n := f.zts.Calls(ztsfake.EndpointInstanceRefresh) + f.zts.Calls(ztsfake.EndpointInstanceRegister); n < 12 || n > 18 {
				t.Errorf("%d certificates in 10 h of 1 h certificates, want one about every 40 minutes", n)
			}
		})
	}
}
