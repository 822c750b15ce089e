// Command loadgen measures the sidecar's cached token path against a bare
// net/http server in the same run, and the sidecar's memory, and writes the
// figures into docs/performance.md. `make bench` runs it.
//
// Both servers run as separate processes under the same load from this
// process, in alternating rounds, so machine noise hits both alike; the
// report uses the median round of each. The fake ZTS runs in this process:
// it answers only the first request of each key, the rest is cache.
//
// Traffic stays on 127.0.0.1. Every loop is bounded in time and count.
package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
)

func main() {
	var opts options
	flag.StringVar(&opts.sidecarBin, "sidecar", "bin/sidecar", "sidecar binary to measure")
	flag.DurationVar(&opts.roundTime, "round", 5e9, "length of one load round")
	flag.IntVar(&opts.rounds, "rounds", 3, "rounds per server (the median is reported)")
	flag.IntVar(&opts.concurrency, "c", 16, "concurrent connections")
	flag.IntVar(&opts.keys, "keys", 10000, "distinct keys for the memory figure")
	flag.StringVar(&opts.report, "report", "docs/performance.md", "file whose loadgen section is rewritten (empty: print only)")
	bare := flag.String("bare", "", "internal: serve the bare baseline on this address")
	flag.Parse()
	if *bare != "" {
		serveBare(*bare)
		return
	}
	if err := run(opts); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// bareToken is what the baseline answers: the size of a real role token
// answer, so both servers write about the same bytes.
var bareToken = []byte(`{"token":"v=Z1;d=bench;r=reader;a=9109ee08b79e6b63;t=1528853625;e=1528860825;k=0;s=` +
	`s9WwmhDeO_En3dvAKvh7OKoUserfqJ0LT5Pct5Gfw5lKNKGH4vgsHLI1t0JFSQJWA1ij9ay_vWw1eKaiESfNJQOKPjAANdFZlcXqCCRUCuyAKlbX6KmWtQ9JaKSkCS8a6ReOuAmCToSqHf3STdKYF2tv1ZN17ic4se4VmT5aTig-","expiryTime":1528860825}`)

// serveBare is the baseline: a net/http server that reads the request and
// answers a fixed token, doing none of the sidecar's work.
func serveBare(addr string) {
	mux := http.NewServeMux()
	mux.HandleFunc("/roletoken", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(bareToken)
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	if err := http.ListenAndServe(addr, mux); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen bare:", err)
		os.Exit(1)
	}
}
