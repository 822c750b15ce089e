package e2e_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/athenz-injector/athenz-injector/test/framework"
)

// TestAnnotatedDeploymentGetsAWorkingSidecar is DESIGN.md's user's day:
// helm install the chart; a Deployment that does not opt in gets a plain
// Pod; `kubectl annotate deployment web athenz.io/inject=true` rolls out an
// injected Pod; its sidecar, run with exactly the injected command,
// arguments, environment and volumes, gets the Pod's identity from ZTS and
// serves tokens to the app.
func TestAnnotatedDeploymentGetsAWorkingSidecar(t *testing.T) {
	if os.Getenv(framework.AssetsEnv) == "" {
		t.Fatal(framework.ErrNoAssets)
	}
	s, err := framework.NewScenario(framework.ScenarioOptions{Dir: t.TempDir(), Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	recordInputs(t, s.Root)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("state at failure:\n%s", s.Diagnose(context.Background()))
		}
		if err := s.Close(); err != nil {
			t.Errorf("stopping the scenario: %v", err)
		}
	})
	ctx := t.Context()
	step := stepper(t)

	step("control plane, builds and helm", func() error { return s.Start(ctx) })
	step("fake ZTS", s.StartZTS)
	step("helm install", func() error {
		out, err := s.InstallChart(ctx)
		if err != nil {
			return err
		}
		if !strings.Contains(out, "STATUS: deployed") {
			t.Errorf("helm install printed no \"STATUS: deployed\":\n%s", out)
		}
		return nil
	})
	step("injector", func() error { return s.StartInjector(ctx) })
	step("profile Ready", func() error { _, err := s.WaitProfileReady(ctx); return err })

	step("deployment without the annotation", func() error {
		_, pod, err := s.DeployApp(ctx)
		if err != nil {
			return err
		}
		checkNotInjected(t, pod)
		return nil
	})

	var podName string
	step("annotate and roll out", func() error {
		dep, err := s.Annotate(ctx)
		if err != nil {
			return err
		}
		checkWorkloadMutated(t, dep)
		rs, pod, err := s.WaitInjectedPod(ctx)
		if err != nil {
			return err
		}
		t.Logf("replicaset %s, pod %s", rs.Name, pod.Name)
		checkInjected(t, s, pod)
		if t.Failed() {
			t.FailNow()
		}
		podName = pod.Name
		return nil
	})

	step("sidecar started as the Pod specifies", func() error {
		pod, err := s.CP.Clientset.CoreV1().Pods(framework.AppNamespace).Get(ctx, podName, metaGet)
		if err != nil {
			return err
		}
		c, took, err := s.RunSidecar(ctx, pod)
		if err != nil {
			return err
		}
		t.Logf("sidecar ready after %v: %s %v", took.Round(time.Millisecond), c.Command.Path, c.Command.Args)
		for _, r := range c.Command.Rewrites {
			t.Logf("  mapped %s: %s -> %s", r.What, r.From, r.To)
		}
		checkSidecarInputs(t, s, c)
		return nil
	})

	step("sidecar API", func() error {
		checkSidecarAPI(t, s)
		return nil
	})

	step("sidecar stops cleanly", func() error {
		return s.Sidecar.Stop(10 * time.Second)
	})
}

// stepper runs named steps, logs their durations, and stops the test at
// the first step that fails.
func stepper(t *testing.T) func(name string, f func() error) {
	start := time.Now()
	return func(name string, f func() error) {
		t.Helper()
		began := time.Now()
		if err := f(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if t.Failed() {
			t.FailNow()
		}
		t.Logf("step %q done in %v (total %v)", name, time.Since(began).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	}
}
