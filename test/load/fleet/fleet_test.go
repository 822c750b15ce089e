package main

import (
	"testing"
	"time"
)

// TestFleetShort runs the fleet simulation small (`go run ./test/load/fleet`
// runs it at 1,000 and 10,000 Pods): 40 Pods, a 30 min outage and a
// restart of half of them. No Pod is without a prefetched token or its
// identity at any minute of the outage or after it; an outage costs a
// token a handful of calls (the retries wait a share of the time it has
// left), not one every 2 min; every restarted sidecar gets ready.
func TestFleetShort(t *testing.T) {
	cfg := config{
		pods: 40, warmup: 2 * time.Hour, steady: 20 * time.Minute, outage: 30 * time.Minute, recovery: time.Hour,
		restart: 20, restartWithin: 10 * time.Second, seed: 7,
	}
	res, err := simulate(cfg, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + res.markdown("TestFleetShort"))
	mean, _ := stats(res.steadyPerMin)
	if mean <= 0 {
		t.Fatalf("no calls to ZTS in the steady state: the caches did not refresh")
	}
	if res.checks != cfg.pods*len(prefetch)*int((cfg.outage+cfg.recovery)/time.Minute) {
		t.Errorf("%d token checks, want one per Pod, token and minute of the outage and recovery", res.checks)
	}
	if res.lost != 0 || res.notReady != 0 {
		t.Errorf("during the outage and after: %d checks found no token to serve, %d Pod-minutes no identity; want none", res.lost, res.notReady)
	}
	outageCalls := 0
	for _, n := range res.outagePerMin {
		outageCalls += n
	}
	// About 1.5 of a Pod's 4 tokens fall due in 30 min; each makes 7
	// quick attempts in its first minute and a few more. Retrying every
	// 1 to 2 min, as before, made about 40 per Pod.
	if perPod := float64(outageCalls) / float64(cfg.pods); perPod > 20 {
		t.Errorf("%.1f calls per Pod during the %v outage, want at most 20 (retries spaced by the time left)", perPod, cfg.outage)
	}
	if len(res.readyIn) != cfg.restart {
		t.Fatalf("%d restarted sidecars ready, want %d", len(res.readyIn), cfg.restart)
	}
	if last := res.readyIn[len(res.readyIn)-1]; last > cfg.restartWithin+time.Second {
		t.Errorf("the last restarted sidecar was ready %v after the first start, want within the %v they started in (ZTS answers)", last, cfg.restartWithin)
	}
	if res.restartIdentityCalls != cfg.restart {
		t.Errorf("%d identity calls in the restart, want one registration per new sidecar (%d)", res.restartIdentityCalls, cfg.restart)
	}
}

func TestPoissonPeak(t *testing.T) {
	tests := []struct {
		mean     float64
		n        int
		min, max int
	}{
		{50, 1, 49, 50},   // the median of one count is about the mean
		{50, 120, 65, 72}, // 120 minutes: about mean + 2.6 sd
		{500, 120, 545, 570},
		{1000, 30, 1050, 1075}, // beyond where e^-mean underflows
		{0, 10, 0, 0},
	}
	for _, tt := range tests {
		if got := poissonPeak(tt.mean, tt.n); got < tt.min || got > tt.max {
			t.Errorf("poissonPeak(%v, %d) = %d, want %d to %d", tt.mean, tt.n, got, tt.min, tt.max)
		}
	}
}
