package sidecar

import (
	"os"
	"strings"
	"testing"
)

// TestDocsInSync: every setting is documented in docs/sidecar-api.md,
// every endpoint of the token API is in both docs/sidecar-api.md and
// docs/openapi.yaml, /metrics is in docs/sidecar-api.md, and every metric
// is in docs/operations.md.
func TestDocsInSync(t *testing.T) {
	md, err := os.ReadFile("../../docs/sidecar-api.md")
	if err != nil {
		t.Fatal(err)
	}
	api, err := os.ReadFile("../../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range envVars {
		if !strings.Contains(string(md), "`"+ev.name+"`") {
			t.Errorf("docs/sidecar-api.md does not document %s", ev.name)
		}
	}
	for _, p := range []string{"/ntoken", "/svccert", "/roletoken", "/accesstoken", "/access-token", "/healthz", "/readyz", "/proxy/ntoken", "/proxy/roletoken"} {
		if !strings.Contains(string(md), p) {
			t.Errorf("docs/sidecar-api.md does not mention %s", p)
		}
		if !strings.Contains(string(api), "\n  "+p+":\n") {
			t.Errorf("docs/openapi.yaml has no path %s", p)
		}
	}
	if !strings.Contains(string(md), "/metrics") {
		t.Errorf("docs/sidecar-api.md does not mention /metrics")
	}
	ops, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range metricNames {
		if !strings.Contains(string(ops), "`"+name+"`") {
			t.Errorf("docs/operations.md does not list the metric %s", name)
		}
	}
	for _, v := range append(append(tokenTypeNames[:], ztsEndpointNames[:]...), "hit", "stale", "miss", "error", "rejected", "timeout", "tls", "connection", "canceled") {
		if !strings.Contains(string(ops), "`"+v+"`") {
			t.Errorf("docs/operations.md does not list the label value %s", v)
		}
	}
}
