package sidecar

import (
	"context"
	"errors"
	"fmt"
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
	prefetchRetryMin   = 250 * time.Millisecond
	prefetchRetryMax   = 30 * time.Second
	identityPollPeriod = 100 * time.Millisecond
)

// prefetchItem is one token of ATHENZ_PREFETCH or
// ATHENZ_PREFETCH_ROLE_TOKENS.
type prefetchItem struct {
	key  tokens.Key
	name string // "access token prov:role.reader", for messages
}

// prefetchItems builds the cache keys of the prefetch targets: the keys an
// app's request with the same domain and role and no other field hits.
func prefetchItems(access, role []tokens.Target) ([]prefetchItem, error) {
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
	return items, nil
}

// readiness answers /readyz: the identity is ready, every prefetch token
// has been loaded once, and the sidecar is not shutting down.
type readiness struct {
	identity Identity
	items    []prefetchItem

	mu      sync.Mutex // guards loaded and lastErr
	loaded  []bool
	lastErr []error

	prefetched atomic.Bool
	draining   atomic.Bool
}

func newReadiness(id Identity, items []prefetchItem) *readiness {
	return &readiness{
		identity: id, items: items,
		loaded: make([]bool, len(items)), lastErr: make([]error, len(items)),
	}
}

func (rd *readiness) check() error {
	if rd.draining.Load() {
		return errors.New("shutting down")
	}
	if err := rd.identity.Ready(); err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	if rd.prefetched.Load() {
		return nil
	}
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

// run waits for the identity, loads every prefetch token (retrying with
// backoff, pinning them in the cache), then reports ready.
func (rd *readiness) run(ctx context.Context, cache *tokens.Cache, log logr.Logger) {
	if len(rd.items) == 0 {
		rd.prefetched.Store(true)
		return
	}
	for rd.identity.Ready() != nil {
		if !sleepCtx(ctx, identityPollPeriod) {
			return
		}
	}
	var wg sync.WaitGroup
	for i := range rd.items {
		wg.Go(func() { rd.load(ctx, cache, log, i) })
	}
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	rd.prefetched.Store(true)
	log.Info("prefetched tokens loaded", "count", len(rd.items))
}

func (rd *readiness) load(ctx context.Context, cache *tokens.Cache, log logr.Logger, i int) {
	it := rd.items[i]
	wait := prefetchRetryMin
	for {
		_, err := cache.Pin(ctx, it.key)
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
