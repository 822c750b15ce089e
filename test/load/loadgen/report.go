package main

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Targets of issue 15, judged on the own-CPU placement (on the shared one
// when the machine has a single CPU).
const (
	targetThroughput = 0.9 // sidecar req/s over the floor's, at least
	targetP99        = 1.5 // sidecar p99 over the floor's, at most
	targetCPU        = 1.3 // sidecar CPU per request over the floor's, at most
	targetIdleRSS    = 1.3 // sidecar idle RSS over the floor's, at most
	targetBinary     = 1.4 // sidecar binary over the floor's, at most
	targetKeysMB     = 40  // sidecar RSS with opts.keys cached keys, MB
	// maxInterference is the most other work on the server's CPU, as a
	// share of a round, that leaves the pinned figures meaningful.
	maxInterference = 0.05
	targetPeakMB    = 20 // sidecar peak RSS after the load rounds, MB (the harness's earlier target)
)

// stat is one figure of a round.
type stat struct {
	name   string
	of     func(round) float64
	format func(float64) string
	target float64 // sidecar over floor, at most (at least for throughput); 0: none
}

var stats = []stat{
	{"requests/s", func(r round) float64 { return r.perSecond() }, func(v float64) string { return fmt.Sprintf("%.0f", v) }, targetThroughput},
	{"p50", quantileOf(0.50), ms, 0},
	{"p90", quantileOf(0.90), ms, 0},
	{"p99", quantileOf(0.99), ms, targetP99},
	{"p99.9", quantileOf(0.999), ms, 0},
	{"CPU per request", func(r round) float64 { return float64(r.cpuPerRequest()) }, func(v float64) string { return fmt.Sprintf("%.1f µs", v/1e3) }, targetCPU},
}

func quantileOf(q float64) func(round) float64 {
	return func(r round) float64 { return float64(r.quantile(q)) }
}

func ms(ns float64) string { return fmt.Sprintf("%.2f ms", ns/1e6) }

// median returns the median of a figure over rounds.
func median(rs []round, of func(round) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = of(r)
	}
	slices.Sort(v)
	return v[len(v)/2]
}

func medianDuration(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func medianInt(vs []int64) int64 {
	s := slices.Clone(vs)
	slices.Sort(s)
	return s[len(s)/2]
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

func (f figures) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Run of %s on %d CPUs, %s; machine load average when the run began: %s. %d connections, %d rounds of %s per server and placement, alternating floor and sidecar; each figure is the median over the rounds.\n\n",
		time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), f.goVersion, f.loadavg, f.opts.concurrency, f.opts.rounds, f.opts.roundTime)
	for _, p := range f.placements {
		fmt.Fprintf(&b, "- **%s**: %s.", p.name, p.where)
		if p.pinned() {
			fmt.Fprintf(&b, " Other work took at most %.1f%% of the server's CPU during a round", 100*p.interference)
			if p.interference > maxInterference {
				fmt.Fprintf(&b, ": **more than %.0f%%, the run was disturbed; rerun it on a quiet machine** (docs/design/2026-12-02-sidecar-p99-tail.md)", 100*maxInterference)
			}
			b.WriteString(".")
		}
		b.WriteString("\n")
	}
	judged := f.placements[0].name
	fmt.Fprintf(&b, "\nCached `POST /roletoken`; targets judged on the %s placement:\n\n", judged)
	fmt.Fprintf(&b, "| placement | server |")
	for _, s := range stats {
		fmt.Fprintf(&b, " %s |", s.name)
	}
	b.WriteString("\n|---|---|" + strings.Repeat("---|", len(stats)) + "\n")
	for _, p := range f.placements {
		for _, k := range []kind{floorKind, sidecarKind} {
			fmt.Fprintf(&b, "| %s | %s |", p.name, k)
			for _, s := range stats {
				fmt.Fprintf(&b, " %s |", s.format(median(p.rounds[k], s.of)))
			}
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "| %s | **sidecar / floor** |", p.name)
		for _, s := range stats {
			r := median(p.rounds[sidecarKind], s.of) / median(p.rounds[floorKind], s.of)
			switch {
			case s.target == 0 || p.name != judged:
				fmt.Fprintf(&b, " %.2f× |", r)
			case s.target < 1:
				fmt.Fprintf(&b, " **%.2f×** (≥ %.1f: %s) |", r, s.target, verdict(r >= s.target))
			default:
				fmt.Fprintf(&b, " **%.2f×** (≤ %.1f: %s) |", r, s.target, verdict(r <= s.target))
			}
		}
		b.WriteString("\n")
	}

	mb := func(kib int64) string { return fmt.Sprintf("%.1f MB", float64(kib)/1024) }
	su := func(k kind, of func(startup) int64) int64 {
		var v []int64
		for _, s := range f.startups[k] {
			v = append(v, of(s))
		}
		return medianInt(v)
	}
	row := func(name string, floor, sidecar float64, format func(float64) string, target float64) {
		t := ""
		if target > 0 {
			t = fmt.Sprintf("≤ %.1f×: %s", target, verdict(sidecar/floor <= target))
		}
		fmt.Fprintf(&b, "| %s | %s | %s | **%.2f×** | %s |\n", name, format(floor), format(sidecar), sidecar/floor, t)
	}
	kibMB := func(v float64) string { return mb(int64(v)) }
	fmt.Fprintf(&b, "\nStart and memory, the median of %d starts of each server (placed as in the %s placement). Idle: %s after it was ready, before any request; the first token: asked for from the moment the process starts until one is answered (the sidecar's goes to ZTS):\n\n", f.opts.starts, judged, idleSettle)
	fmt.Fprintf(&b, "| figure | floor | sidecar | sidecar / floor | target |\n|---|---|---|---|---|\n")
	row("RSS idle (VmRSS)", float64(su(floorKind, func(s startup) int64 { return s.idleRSS })), float64(su(sidecarKind, func(s startup) int64 { return s.idleRSS })), kibMB, targetIdleRSS)
	row("of which anonymous (RssAnon)", float64(su(floorKind, func(s startup) int64 { return s.idleAnon })), float64(su(sidecarKind, func(s startup) int64 { return s.idleAnon })), kibMB, 0)
	row("RSS after the first token", float64(su(floorKind, func(s startup) int64 { return s.tokenRSS })), float64(su(sidecarKind, func(s startup) int64 { return s.tokenRSS })), kibMB, 0)
	for _, p := range f.placements {
		row("peak RSS (VmHWM) after the "+p.name+" rounds", float64(p.peakRSS[floorKind]), float64(p.peakRSS[sidecarKind]), kibMB, 0)
		fmt.Fprintf(&b, "| | | | | sidecar ≤ %d MB: %s |\n", targetPeakMB, verdict(float64(p.peakRSS[sidecarKind])/1024 <= targetPeakMB))
	}
	row("binary (static, stripped)", float64(f.binSize[floorKind]), float64(f.binSize[sidecarKind]), func(v float64) string { return fmt.Sprintf("%.2f MB", v/1e6) }, targetBinary)
	firstToken := func(k kind) float64 {
		var d []time.Duration
		for _, s := range f.startups[k] {
			d = append(d, s.firstToken)
		}
		return float64(medianDuration(d))
	}
	row("start to first token", firstToken(floorKind), firstToken(sidecarKind), func(v float64) string { return fmt.Sprintf("%.1f ms", v/1e6) }, 0)
	fmt.Fprintf(&b, "\nThe sidecar with %d distinct cached keys: %s RSS (peak %s); target ≤ %d MB: %s.\n",
		f.opts.keys, mb(f.keysRSS), mb(f.keysHWM), targetKeysMB, verdict(float64(f.keysHWM)/1024 <= targetKeysMB))
	return b.String()
}
