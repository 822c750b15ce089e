package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/athenz-injector/athenz-injector/test/framework"
)

// TestPlayedKubelet runs the demo as it runs where the machine cannot run
// a node: the control plane and the injector as local processes, the
// sidecar container of the injected Pod played as a local process, and the
// app's view with curl (or the same requests in Go). The real-node demo is
// the end-to-end suite's cluster (test/e2e) with kubectl; this keeps the
// fallback working.
func TestPlayedKubelet(t *testing.T) {
	if os.Getenv(framework.AssetsEnv) == "" {
		t.Fatal(framework.ErrNoAssets)
	}
	var buf bytes.Buffer
	out := &printer{w: &buf}
	if err := run(t.Context(), out, options{playKubelet: true, freePorts: true}); err != nil {
		t.Fatalf("the demo failed: %v\n%s", err, buf.String())
	}
	got := buf.String()
	for _, want := range []string{
		"--play-kubelet: the demo plays the kubelet",
		"ok: sidecar ready after",
		`"token":"v=Z1;d=sports;r=reader;p=sports.web`,
		"Athenz-Role-Auth",
		"ok: all stopped, nothing left behind",
		"demo done in",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the demo's output lacks %q:\n%s", want, got)
		}
	}
}
