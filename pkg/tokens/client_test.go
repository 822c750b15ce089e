package tokens_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/athenz-injector/athenz-injector/pkg/tokens"
	"github.com/athenz-injector/athenz-injector/pkg/tokens/ztsfake"
)

func newTestClient(t *testing.T, opts ztsfake.Options, timeout time.Duration) (*tokens.Client, *ztsfake.Server) {
	t.Helper()
	zts := ztsfake.NewTest(t, opts)
	tr, err := zts.IdentityTransport("client", "app")
	if err != nil {
		t.Fatalf("IdentityTransport: %v", err)
	}
	t.Cleanup(tr.CloseIdleConnections)
	c, err := tokens.NewClient(tokens.ClientOptions{URL: zts.URL(), Transport: tr, Timeout: timeout})
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	return c, zts
}

func TestClientFetchesTokens(t *testing.T) {
	c, zts := newTestClient(t, ztsfake.Options{}, 5*time.Second)
	zts.Grant("sports", "reader", "client.app")

	rk, _ := tokens.RoleTokenKey("sports", "reader", "", 0, 0)
	rt, err := c.Fetch(t.Context(), rk)
	if err != nil {
		t.Fatalf("Fetch(role token): %v", err)
	}
	if !strings.HasPrefix(rt.Value, "v=Z1;d=sports;r=reader;") {
		t.Errorf("role token = %q, want v=Z1;d=sports;r=reader;...", rt.Value)
	}
	if life := rt.Lifetime(); life < 119*time.Minute || life > 2*time.Hour+time.Minute {
		t.Errorf("role token lifetime = %v, want ZTS's 2 h default", life)
	}

	ak, _ := tokens.AccessTokenKey("sports", "reader", "", 600*time.Second)
	at, err := c.Fetch(t.Context(), ak)
	if err != nil {
		t.Fatalf("Fetch(access token): %v", err)
	}
	if left := time.Until(at.Expiry); left > 600*time.Second || left < 590*time.Second {
		t.Errorf("access token asked for 600 s has %v left", left)
	}
	if n := zts.CallsFor(ztsfake.EndpointAccessToken, "sports:role.reader"); n != 1 {
		t.Errorf("access token calls for scope sports:role.reader = %d, want 1", n)
	}
}

func TestClientErrors(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(*ztsfake.Server)
		domain  string
		check   func(error) bool
		wantMsg string
	}{
		{name: "role not granted is a 403 with ZTS's message", domain: "sports",
			check: func(err error) bool {
				var ze *tokens.ZTSError
				return errors.As(err, &ze) && ze.Status == http.StatusForbidden
			}},
		{name: "unknown domain is a 404", domain: "nosuch",
			check: func(err error) bool {
				var ze *tokens.ZTSError
				return errors.As(err, &ze) && ze.Status == http.StatusNotFound
			}},
		{name: "ZTS 500 keeps its status", domain: "sports",
			setup: func(z *ztsfake.Server) { z.FailNext(ztsfake.EndpointRoleToken, 500, 1) },
			check: func(err error) bool { var ze *tokens.ZTSError; return errors.As(err, &ze) && ze.Status == 500 }},
		{name: "hang is a timeout", domain: "sports",
			setup: func(z *ztsfake.Server) { z.SetFailure(ztsfake.EndpointRoleToken, ztsfake.Failure{Hang: true}) },
			check: func(err error) bool { return errors.Is(err, tokens.ErrZTSTimeout) }},
		{name: "closed server is unavailable", domain: "sports",
			setup: func(z *ztsfake.Server) { z.Close() },
			check: func(err error) bool { return errors.Is(err, tokens.ErrZTSUnavailable) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, zts := newTestClient(t, ztsfake.Options{}, 300*time.Millisecond)
			zts.AddDomain("sports")
			if tt.setup != nil {
				tt.setup(zts)
			}
			k, _ := tokens.RoleTokenKey(tt.domain, "reader", "", 0, 0)
			_, err := c.Fetch(t.Context(), k)
			if err == nil || !tt.check(err) {
				t.Fatalf("Fetch = %v, not the expected kind of error", err)
			}
		})
	}
}

// TestCacheOverRealClient: 200 concurrent requests for one key not yet
// cached make exactly one ZTS call, through the real client.
func TestCacheOverRealClient(t *testing.T) {
	c, zts := newTestClient(t, ztsfake.Options{}, 5*time.Second)
	zts.Grant("sports", "reader", "client.app")
	zts.SetLatency(ztsfake.EndpointRoleToken, 100*time.Millisecond)
	cache := tokens.NewCache(c.Fetch, tokens.CacheOptions{})
	t.Cleanup(cache.Close)
	k, _ := tokens.RoleTokenKey("sports", "reader", "", 0, 0)
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for range 200 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			if _, err := cache.Get(ctx, k); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Get: %v", err)
	}
	if n := zts.CallsFor(ztsfake.EndpointRoleToken, "sports:reader"); n != 1 {
		t.Errorf("ZTS role token calls for 200 concurrent misses = %d, want 1", n)
	}
}

// TestClientKeepsTransportCause: a transport failure is ErrZTSUnavailable
// and keeps its cause for errors.As, so the sidecar can tell a TLS failure
// (ZTS's certificate not trusted) from others.
func TestClientKeepsTransportCause(t *testing.T) {
	zts := ztsfake.NewTest(t, ztsfake.Options{})
	c, err := tokens.NewClient(tokens.ClientOptions{URL: zts.URL(), Transport: &http.Transport{}, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := tokens.RoleTokenKey("sports", "reader", "", 0, 0)
	_, err = c.Fetch(t.Context(), key)
	var verr *tls.CertificateVerificationError
	if !errors.Is(err, tokens.ErrZTSUnavailable) || !errors.As(err, &verr) {
		t.Errorf("Fetch from a ZTS whose CA is not trusted = %v, want ErrZTSUnavailable wrapping *tls.CertificateVerificationError", err)
	}
}

func TestCheckZTSURL(t *testing.T) {
	for _, c := range []struct {
		url string
		ok  bool
	}{
		{"https://zts.example.com:4443/zts/v1", true},
		{"https://zts/zts/v1", true},
		{"http://zts.example.com/zts/v1", false},
		{"https:///zts/v1", false},
		{"https://zts.example.com/zts/v1?x=1", false},
		{"https://zts.example.com/zts/v1#top", false},
		{"zts.example.com:4443", false},
		{"https://zts.example.com/%zz", false},
	} {
		err := tokens.CheckZTSURL(c.url)
		if (err == nil) != c.ok {
			t.Errorf("CheckZTSURL(%q) = %v, want ok %v", c.url, err, c.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "https://host[:port]/zts/v1") {
			t.Errorf("CheckZTSURL(%q) = %q: does not say what it wants", c.url, err)
		}
	}
}
