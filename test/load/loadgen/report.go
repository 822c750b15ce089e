package main

import (
	"fmt"
	"runtime"
	"strings"
	"time"
)

func (f figures) markdown() string {
	var b strings.Builder
	mb := func(kib int64) string { return fmt.Sprintf("%.1f MB", float64(kib)/1024) }
	ratio := f.sidecar.perSecond / f.bare.perSecond
	p99 := float64(f.sidecar.p99) / float64(f.bare.p99)
	fmt.Fprintf(&b, "Run of %s on %d CPUs, %s; %d connections, %d rounds of %s per server, alternating; the median round of each is shown.\n\n",
		time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), f.goVersion, f.opts.concurrency, f.opts.rounds, f.opts.roundTime)
	fmt.Fprintf(&b, "| server | requests/s | p50 | p99 |\n|---|---|---|---|\n")
	fmt.Fprintf(&b, "| bare net/http answering a fixed token (baseline) | %.0f | %s | %s |\n", f.bare.perSecond, us(f.bare.p50), us(f.bare.p99))
	fmt.Fprintf(&b, "| sidecar, cached `POST /roletoken` | %.0f | %s | %s |\n", f.sidecar.perSecond, us(f.sidecar.p50), us(f.sidecar.p99))
	fmt.Fprintf(&b, "| **sidecar / baseline** | **%.2f** (target ≥ 0.85) | %.2f× | **%.2f×** (target ≤ 1.2×) |\n\n",
		ratio, float64(f.sidecar.p50)/float64(f.bare.p50), p99)
	fmt.Fprintf(&b, "| memory | value | target |\n|---|---|---|\n")
	fmt.Fprintf(&b, "| sidecar peak RSS (VmHWM) after the load | %s | ≤ 20 MB |\n", mb(f.sidecarHWM))
	fmt.Fprintf(&b, "| baseline peak RSS after the same load | %s | (reference) |\n", mb(f.bareHWM))
	fmt.Fprintf(&b, "| sidecar RSS with %d cached keys (peak) | %s (%s) | ≤ 40 MB |\n", f.opts.keys, mb(f.keysRSS), mb(f.keysHWM))
	if f.sidecarSize != "" {
		fmt.Fprintf(&b, "| sidecar binary (stripped, static) | %s | |\n", f.sidecarSize)
	}
	return b.String()
}

func us(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d)/1e3) }
