// Command loadgen measures the sidecar's cached token path against the
// floor (test/load/floor: a bare net/http server that decodes the JSON
// request and answers a fixed token) in the same run, and their start
// time, memory and binary size, and writes the figures into
// docs/performance.md. `make bench` runs it; by hand:
//
//	make build-sidecar build-floor && go run ./test/load/loadgen -report docs/performance.md
//
// Both servers run as separate processes under the same load from this
// process, in alternating rounds, so machine noise hits both alike. On
// Linux with two CPUs or more it measures two placements: the server on
// a CPU of its own and the load on the others (sched_setaffinity, as a
// sidecar's CPU is its own in a Pod: the figure the targets are judged
// on), then every process on every CPU. The fake ZTS runs in this
// process: it answers only the first request, the rest is cache.
//
// Traffic stays on 127.0.0.1. Every loop is bounded in time and count.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"
)

func main() {
	var opts options
	flag.StringVar(&opts.sidecarBin, "sidecar", "bin/sidecar", "sidecar binary to measure (make build-sidecar)")
	flag.StringVar(&opts.floorBin, "floor", "bin/floor", "floor binary to measure it against (make build-floor)")
	flag.DurationVar(&opts.roundTime, "round", 8*time.Second, "length of one load round")
	flag.IntVar(&opts.rounds, "rounds", 3, "rounds per server and placement (each figure is the median)")
	flag.IntVar(&opts.starts, "starts", 3, "starts of each server for the start and memory figures (the median is reported)")
	flag.IntVar(&opts.concurrency, "c", 32, "concurrent connections")
	flag.IntVar(&opts.keys, "keys", 10000, "distinct keys for the memory figure")
	flag.StringVar(&opts.report, "report", "docs/performance.md", "file whose loadgen section is rewritten (empty: print only)")
	flag.Parse()
	if err := run(opts); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}
