// Command floor is the baseline of the sidecar's load harness
// (test/load/loadgen): a bare net/http server that does the least any
// token server must, decode the JSON request and answer a token, and
// nothing else. It answers POST /roletoken with a fixed role token of a
// real token's size, and GET /healthz. Its speed, CPU time, memory,
// binary size and start time are the floor the sidecar's are measured
// against; `make build-floor` builds it as the sidecar is built.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
)

// token is what every request gets: the size of a real role token answer,
// so both servers write about the same bytes.
var token = []byte(`{"token":"v=Z1;d=bench;r=reader;a=9109ee08b79e6b63;t=1528853625;e=1528860825;k=0;s=` +
	`s9WwmhDeO_En3dvAKvh7OKoUserfqJ0LT5Pct5Gfw5lKNKGH4vgsHLI1t0JFSQJWA1ij9ay_vWw1eKaiESfNJQOKPjAANdFZlcXqCCRUCuyAKlbX6KmWtQ9JaKSkCS8a6ReOuAmCToSqHf3STdKYF2tv1ZN17ic4se4VmT5aTig-","expiryTime":1528860825}` + "\n")

func main() {
	listen := flag.String("listen", "127.0.0.1:8081", "address to serve on")
	flag.Parse()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /roletoken", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Domain string `json:"domain"`
			Role   string `json:"role"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, "malformed JSON", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(token)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	if err := http.ListenAndServe(*listen, mux); err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
}
