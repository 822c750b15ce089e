package e2e_test

import (
	"testing"
	"time"

	"github.com/athenz-injector/athenz-injector/test/framework"
)

func TestPlainApp(t *testing.T) {
	s := cluster
	ctx := t.Context()
	dep, pod, err := s.DeployApp(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = dep
	if _, err := s.WaitPod(ctx, pod.Namespace, pod.Name, time.Minute, "Ready", framework.PodReady); err != nil {
		t.Fatal(err)
	}
	out, err := s.Exec(ctx, pod.Namespace, pod.Name, "app", "curl", "-s", "localhost:8080/healthz")
	t.Logf("exec: %q %v", out, err)
}
