package sidecar

import (
	"os"
	"strings"
	"testing"
)

// TestDocsInSync: every setting is documented in docs/sidecar-api.md, and
// every endpoint is in both docs/sidecar-api.md and docs/openapi.yaml.
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
}
