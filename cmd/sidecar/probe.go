package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/athenz-injector/athenz-injector/pkg/sidecar"
)

// probeTimeout bounds `sidecar probe`; the injected startup probe gives it
// two seconds.
const probeTimeout = 1500 * time.Millisecond

// probe is `sidecar probe`, the injected startup probe: run in the
// sidecar's container, it asks the sidecar's /readyz on loopback (where
// the answer says what is missing) and prints the answer, so that the
// kubelet's "Startup probe failed" Event carries the reason. It returns 0
// when the sidecar is ready, 1 otherwise.
func probe(ctx context.Context, environ []string, stdout io.Writer) int {
	addr := sidecar.DefaultHealthListen
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "ATHENZ_HEALTH_LISTEN="); ok && v != "" {
			addr = v
		}
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		fmt.Fprintf(stdout, "not ready: ATHENZ_HEALTH_LISTEN %q: %v\n", addr, err)
		return 1
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	url := "http://" + net.JoinHostPort("127.0.0.1", port) + "/readyz"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		fmt.Fprintf(stdout, "not ready: %v\n", err)
		return 1
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stdout, "not ready: the sidecar does not answer on %s yet: %v\n", url, err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	fmt.Fprintln(stdout, strings.TrimSpace(string(body)))
	if resp.StatusCode != http.StatusOK {
		return 1
	}
	return 0
}
