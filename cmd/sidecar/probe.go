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

// probeTimeout bounds `sidecar probe`; the injected probes give it two
// seconds.
const probeTimeout = 1500 * time.Millisecond

// probe is `sidecar probe [readyz|healthz]`, the injected exec probe: run
// in the sidecar's container, it asks the sidecar's /readyz (default) or
// /healthz, where the answer says what is missing, and prints the answer,
// so that the kubelet's "probe failed" Event carries the reason. It asks
// on loopback at the port of ATHENZ_HEALTH_LISTEN, or on ATHENZ_SOCKET
// when ATHENZ_HEALTH_LISTEN is off (hostNetwork Pods, which open no health
// port). It returns 0 when the answer is 200, 1 otherwise, 2 for a bad
// argument.
func probe(ctx context.Context, args, environ []string, stdout io.Writer) int {
	path := "/readyz"
	switch {
	case len(args) == 0 || (len(args) == 1 && args[0] == "readyz"):
	case len(args) == 1 && args[0] == "healthz":
		path = "/healthz"
	default:
		fmt.Fprintf(stdout, "usage: sidecar probe [readyz|healthz], not %q\n", args)
		return 2
	}
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	addr := env["ATHENZ_HEALTH_LISTEN"]
	if addr == "" {
		addr = sidecar.DefaultHealthListen
	}
	var where, url string // where is for messages; url is asked
	client := &http.Client{}
	if addr == sidecar.ListenOff {
		socket := env["ATHENZ_SOCKET"]
		if socket == "" {
			fmt.Fprintln(stdout, "not ready: ATHENZ_HEALTH_LISTEN is off and ATHENZ_SOCKET is not set")
			return 1
		}
		client.Transport = &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		}}
		where, url = socket, "http://sidecar"+path
	} else {
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			fmt.Fprintf(stdout, "not ready: ATHENZ_HEALTH_LISTEN %q: %v\n", addr, err)
			return 1
		}
		url = "http://" + net.JoinHostPort("127.0.0.1", port) + path
		where = url
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		fmt.Fprintf(stdout, "not ready: %v\n", err)
		return 1
	}
	resp, err := client.Do(req)
	if err != nil {
		fmt.Fprintf(stdout, "not ready: the sidecar does not answer on %s yet: %v\n", where, err)
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
