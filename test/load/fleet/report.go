package main

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Targets of issue 15.
const (
	targetSteadyPeak   = 1.5 // peak minute over the mean, steady state
	targetRecoveryPeak = 2.0 // peak minute after the outage over the steady mean
)

// stats are the mean and the peak of counts.
func stats(v []int) (mean float64, peak int) {
	if len(v) == 0 {
		return 0, 0
	}
	sum := 0
	for _, x := range v {
		sum += x
		peak = max(peak, x)
	}
	return float64(sum) / float64(len(v)), peak
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

func (r results) markdown(command string) string {
	var b strings.Builder
	c := r.cfg
	mean, peak := stats(r.steadyPerMin)
	outageMean, outagePeak := stats(r.outagePerMin)
	_, recPeak := stats(r.recoveryPerMin)
	recPeakAt := slices.Index(r.recoveryPerMin, recPeak)
	fmt.Fprintf(&b, "`%s` (run of %s, %s, %.0f s of wall time on %d CPUs for %d calls to ZTS):\n\n",
		command, time.Now().UTC().Format("2006-01-02"), runtime.Version(), r.wall.Seconds(), runtime.NumCPU(), r.events)
	fmt.Fprintf(&b, "%d Pods started spread over %v (the mean refresh interval of a 2 h token), ran %v, then:\n\n", c.pods, r.spread.Round(time.Second), c.warmup)
	fmt.Fprintf(&b, "| figure | value | target |\n|---|---|---|\n")
	fmt.Fprintf(&b, "| steady state, ZTS calls per second (mean over %v) | %.2f (%.1f per minute; identity calls %.1f%% of them) | |\n",
		c.steady, mean/60, mean, 100*float64(r.steadyIdentity)/max(1, mean*float64(len(r.steadyPerMin))))
	fmt.Fprintf(&b, "| steady state, peak minute / mean | **%.2f** (%d calls; for calls at independent random times, the median peak of %d minutes would be %.2f) | ≤ %.1f: %s |\n",
		float64(peak)/mean, peak, len(r.steadyPerMin), float64(poissonPeak(mean, len(r.steadyPerMin)))/mean, targetSteadyPeak, verdict(float64(peak) <= targetSteadyPeak*mean))
	fmt.Fprintf(&b, "| %v outage (connections refused): calls per minute, mean / steady mean, peak / steady mean | %.2f, %.2f | |\n", c.outage, outageMean/mean, float64(outagePeak)/mean)
	fmt.Fprintf(&b, "| prefetched tokens without a token to serve, per Pod and minute, during the outage and %v after | **%d** of %d checks; least time left on a token %v | 0: %s |\n",
		c.recovery, r.lost, r.checks, r.minLeft.Round(time.Second), verdict(r.lost == 0))
	fmt.Fprintf(&b, "| Pod-minutes with the identity not ready, same window | %d | 0: %s |\n", r.notReady, verdict(r.notReady == 0))
	fmt.Fprintf(&b, "| after recovery, peak minute / steady mean | **%.2f** (%d calls, minute %d after) | ≤ %.1f: %s |\n",
		float64(recPeak)/mean, recPeak, recPeakAt+1, targetRecoveryPeak, verdict(float64(recPeak) <= targetRecoveryPeak*mean))
	fmt.Fprintf(&b, "| after recovery, the least peak / steady mean any retry rule could reach with this refresh schedule (one that knew when ZTS came back and fetched the failed tokens in order of expiry at a constant rate; no counting noise) | %.2f (with the counting noise of %d Pods, the median peak of 30 minutes at that rate: %.2f) | |\n",
		r.bound, c.pods, float64(poissonPeak(r.bound*mean, 30))/mean)
	_, restartPeak := stats(r.restartPerSec)
	fmt.Fprintf(&b, "| mass restart: %d sidecars started within %v: ZTS calls, peak second | %d calls in the first 10 min (%d identity), peak %d per second (%.0f× the steady rate) | |\n",
		c.restart, c.restartWithin, r.restartCalls, r.restartIdentityCalls, restartPeak, float64(restartPeak)/(mean/60))
	if n := len(r.readyIn); n > 0 {
		fmt.Fprintf(&b, "| mass restart: time from the first start until ready, median / all | %v / %v | |\n",
			r.readyIn[n/2].Round(time.Millisecond), r.readyIn[n-1].Round(time.Millisecond))
	}
	b.WriteString("\nCalls per minute (tokens and identities), the steady window then the outage and recovery:\n\n```\n")
	writeSeries(&b, "steady", r.steadyPerMin)
	writeSeries(&b, "outage", r.outagePerMin)
	writeSeries(&b, "recovery", r.recoveryPerMin)
	writeSeries(&b, "restart/s", r.restartPerSec[:min(30, len(r.restartPerSec))])
	b.WriteString("```\n")
	return b.String()
}

func writeSeries(b *strings.Builder, name string, v []int) {
	fmt.Fprintf(b, "%-9s", name)
	for i, x := range v {
		if i > 0 && i%20 == 0 {
			fmt.Fprintf(b, "\n%-9s", "")
		}
		fmt.Fprintf(b, " %d", x)
	}
	b.WriteString("\n")
}

// poissonPeak is the median of the largest of n counts of a Poisson
// process with the given mean per count: the peak minute that calls at
// independent random times would show, the reference for "no waves".
func poissonPeak(mean float64, n int) int {
	if mean <= 0 || n <= 0 {
		return 0
	}
	want := math.Pow(0.5, 1/float64(n)) // P(one count <= m) for P(max <= m) = 0.5
	cdf := 0.0
	for m := 0; ; m++ {
		// Each term in logarithms: e^-mean alone underflows to 0 for a
		// mean above about 745 (10,000 Pods make more calls a minute).
		lg, _ := math.Lgamma(float64(m + 1))
		cdf += math.Exp(float64(m)*math.Log(mean) - mean - lg)
		if cdf >= want || m > int(10*mean)+100 {
			return m
		}
	}
}
