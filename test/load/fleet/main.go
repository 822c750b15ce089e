// Command fleet simulates a cluster's sidecars against ZTS: N Pods'
// identity managers and token caches (the sidecar's own code, with their
// real refresh schedules and jitter) in one process, against the fake ZTS
// over real HTTPS (every call a TLS handshake, as for a sidecar whose
// calls come minutes apart), on a fake clock that moves from one timer to
// the next, so hours pass in minutes. Each Pod prefetches 3 role tokens
// and 1 access token of 2 h. The run measures, in fake time:
//
//   - the steady state: ZTS calls per minute, their mean and peak minute;
//   - a ZTS outage (connections refused) and the recovery after it: the
//     calls per minute, and every minute whether each Pod still has each
//     prefetched token to serve and its identity;
//   - a mass restart: sidecars replaced within seconds, as by a node
//     drain; the calls per second and how long until each is ready.
//
// It writes the figures into docs/performance.md (section fleet-N). The
// long runs are not part of `make test` (a short one is); by hand:
//
//	go run ./test/load/fleet -pods 1000 -report docs/performance.md
//	go run ./test/load/fleet -pods 10000 -report docs/performance.md
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/athenz-injector/athenz-injector/test/load/report"
)

func main() {
	cfg := config{}
	flag.IntVar(&cfg.pods, "pods", 1000, "Pods in the fleet")
	flag.DurationVar(&cfg.warmup, "warmup", 2*time.Hour, "fake time before the steady state is measured")
	flag.DurationVar(&cfg.steady, "steady", 2*time.Hour, "fake time the steady state is measured over")
	flag.DurationVar(&cfg.outage, "outage", 30*time.Minute, "how long ZTS refuses connections")
	flag.DurationVar(&cfg.recovery, "recovery", 90*time.Minute, "how long the recovery is watched")
	flag.IntVar(&cfg.restart, "restart", 1000, "sidecars replaced in the mass restart")
	flag.DurationVar(&cfg.restartWithin, "restart-within", 10*time.Second, "the mass restart's sidecars start within this")
	seed := flag.Uint64("seed", 1, "seed of the Pods' start times, the caches' jitter and the restart's choices")
	reportFile := flag.String("report", "", "Markdown file whose fleet-N section gets the figures (empty: print only)")
	flag.Parse()
	cfg.seed = *seed
	if err := cfg.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		os.Exit(2)
	}
	start := time.Now()
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "fleet %6.1fs: %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	res, err := simulate(cfg, logf)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		os.Exit(1)
	}
	md := res.markdown(commandLine())
	fmt.Println(md)
	if *reportFile != "" {
		if err := report.WriteSection(*reportFile, "fleet-"+strconv.Itoa(cfg.pods), md); err != nil {
			fmt.Fprintln(os.Stderr, "fleet:", err)
			os.Exit(1)
		}
	}
}

// commandLine is the command that reproduces the run, for the report.
func commandLine() string {
	cmd := "go run ./test/load/fleet"
	flag.Visit(func(f *flag.Flag) {
		if f.Name != "report" {
			cmd += " -" + f.Name + "=" + f.Value.String()
		}
	})
	return cmd
}
