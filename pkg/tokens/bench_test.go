package tokens_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/athenz-injector/athenz-injector/pkg/tokens"
)

// BenchmarkCache measures the cache alone, with a fetch that answers at
// once: a hit (the hot path of every cached token request), and a new key
// arriving at a full cache of 1,000 and 10,000 entries (insert, evict the
// least recently used, fetch). The insert must cost the same at both sizes:
// eviction is O(1), not a scan under the cache-wide lock.
func BenchmarkCache(b *testing.B) {
	fetch := func(_ context.Context, key tokens.Key) (tokens.Token, error) {
		now := time.Now()
		return tokens.Token{Value: key.Domain, Obtained: now, Expiry: now.Add(time.Hour)}, nil
	}
	keys := func(b *testing.B, prefix string, n int) []tokens.Key {
		out := make([]tokens.Key, n)
		for i := range out {
			k, err := tokens.RoleTokenKey(fmt.Sprintf("%s%d", prefix, i), "reader", "", 0, 0)
			if err != nil {
				b.Fatal(err)
			}
			out[i] = k
		}
		return out
	}
	b.Run("hit", func(b *testing.B) {
		c := tokens.NewCache(fetch, tokens.CacheOptions{})
		defer c.Close()
		k := keys(b, "hot", 1)[0]
		if _, err := c.Get(b.Context(), k); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			ctx := context.Background()
			for pb.Next() {
				if _, err := c.Get(ctx, k); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	for _, size := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("insert-full-%d", size), func(b *testing.B) {
			c := tokens.NewCache(fetch, tokens.CacheOptions{MaxEntries: size})
			defer c.Close()
			ctx := context.Background()
			for _, k := range keys(b, "old", size) {
				if _, err := c.Get(ctx, k); err != nil {
					b.Fatal(err)
				}
			}
			fresh := keys(b, "new", b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for _, k := range fresh {
				if _, err := c.Get(ctx, k); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if n := c.Len(); n != size {
				b.Fatalf("Len = %d, want the bound %d", n, size)
			}
		})
	}
}
