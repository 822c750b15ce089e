// Command tlsorigin measures the sidecar's proxy with TLS origination
// against a direct Go http.Client that presents the same certificate, in
// the same run, and writes the figures into docs/performance.md (section
// "tlsorigin"). `make bench` runs it; by hand:
//
//	make build-sidecar && go run ./test/load/tlsorigin -sidecar bin/sidecar -report docs/performance.md
//
// Three processes: this one (the fake ZTS and the load), the sidecar
// (files mode, ATHENZ_PROXY_TLS_HOSTS=127.0.0.1) and an upstream that
// requires a client certificate of ZTS's CA (this binary again, with
// -serve-upstream). The direct client calls https://upstream with the
// Pod's certificate and the Athenz-Role-Auth header the proxy would add;
// the app calls http://upstream through the proxy, which adds the role
// token from its cache and originates TLS with the same certificate.
// Rounds alternate between the two, so machine noise hits both alike; the
// report shows the median round of each.
//
// Traffic stays on 127.0.0.1. Every loop is bounded in time.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"
)

type options struct {
	sidecarBin  string
	roundTime   time.Duration
	rounds      int
	concurrency int
	bodyBytes   int
	http2       bool
	delay       time.Duration
	report      string
}

func main() {
	var o options
	flag.StringVar(&o.sidecarBin, "sidecar", "bin/sidecar", "sidecar binary to measure")
	flag.DurationVar(&o.roundTime, "round", 5*time.Second, "length of one load round")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds per client (the median is reported)")
	flag.IntVar(&o.concurrency, "c", 16, "concurrent requests")
	flag.IntVar(&o.bodyBytes, "body", 512, "bytes of the upstream's answer")
	flag.BoolVar(&o.http2, "http2", true, "the upstream offers HTTP/2 (both clients then use it)")
	flag.StringVar(&o.report, "report", "docs/performance.md", "file whose tlsorigin section is rewritten (empty: print only)")
	flag.DurationVar(&o.delay, "delay", 2*time.Millisecond, "the service time of the remote upstream (the second upstream answers at once)")
	upstream := flag.String("serve-upstream", "", "internal: serve the mTLS upstream on this address")
	dir := flag.String("upstream-dir", "", "internal: the upstream's certificate files")
	flag.Parse()
	if *upstream != "" {
		if err := serveUpstream(*upstream, *dir, o.bodyBytes, o.http2, o.delay); err != nil {
			fmt.Fprintln(os.Stderr, "tlsorigin upstream:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "tlsorigin:", err)
		os.Exit(1)
	}
}
