package e2e_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/athenz-injector/athenz-injector/api/v1alpha1"
	"github.com/athenz-injector/athenz-injector/test/framework"
)

// TestKubectlAthenz runs the kubectl plugin as a user does (`kubectl
// athenz ...`, the plugin found on the PATH) against the cluster:
// status lists the test's Pods by sidecar and profile and flags the one
// whose profile changed since; why explains an injected Pod and one that
// did not opt in. With ATHENZ_E2E_PLUGIN_OUT set, the outputs are written
// there (they are docs/operations.md's examples).
func TestKubectlAthenz(t *testing.T) {
	t.Parallel()
	ns := "plugin"
	newNamespace(t, ns, nil)
	ctx := t.Context()
	// A profile of the namespace's own, narrowing the chart's: changing
	// it makes its Pods outdated.
	var chart v1alpha1.SidecarProfile
	if err := cluster.Client.Get(ctx, key(framework.ReleaseNamespace, framework.ProfileName), &chart); err != nil {
		t.Fatal(err)
	}
	own := &v1alpha1.SidecarProfile{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "default"}, Spec: *chart.Spec.DeepCopy()}
	own.Spec.ZTS.CA = &v1alpha1.CABundle{ConfigMap: &v1alpha1.KeyReference{Name: "athenz-zts-ca-" + framework.ProfileName, Key: "ca.pem"}}
	if err := cluster.Client.Create(ctx, own); err != nil {
		t.Fatal(err)
	}
	web := waitReady(t, createPod(t, injectedPod(ns, "web", nil)), 2*time.Minute)
	plain := injectedPod(ns, "plain", nil)
	delete(plain.Annotations, framework.AnnotationInject)
	waitReady(t, createPod(t, plain), 2*time.Minute)
	job := injectedPod(ns, "batch", map[string]string{"athenz.io/init-only": "true"})
	job.Spec.RestartPolicy = corev1.RestartPolicyNever
	job.Spec.Containers[0].Command, job.Spec.Containers[0].Args = []string{"cat", "/var/run/athenz/service.cert.pem"}, nil
	job.Spec.Containers[0].ReadinessProbe = nil
	createPod(t, job)
	if _, err := cluster.WaitPod(ctx, ns, "batch", 2*time.Minute, "Succeeded", func(p *corev1.Pod) (bool, string) {
		return p.Status.Phase == corev1.PodSucceeded, string(p.Status.Phase)
	}); err != nil {
		t.Fatal(err)
	}
	before := own.DeepCopy()
	own.Spec.Sidecar.Image = "ghcr.io/athenz-injector/athenz-sidecar:next"
	if err := cluster.Client.Patch(ctx, own, client.MergeFrom(before)); err != nil {
		t.Fatal(err)
	}

	plugin := buildPlugin(t)
	status := plugin.run(t, "status", "-n", ns)
	for _, want := range []string{
		"NAMESPACE", "web", "plugin/default", framework.SidecarImage, "OUTDATED",
		"batch", "done", "outdated: image " + framework.SidecarImage + ", the profile gives ghcr.io/athenz-injector/athenz-sidecar:next",
		"outdated: profile changed since (generation 1 -> 2)",
	} {
		if !strings.Contains(status, want) {
			t.Errorf("kubectl athenz status -n %s lacks %q:\n%s", ns, want, status)
		}
	}
	if strings.Contains(status, "plain") {
		t.Errorf("kubectl athenz status lists the Pod that did not opt in:\n%s", status)
	}
	all := plugin.run(t, "status", "-A")
	if !strings.Contains(all, "plugin/default") || !strings.Contains(all, framework.ReleaseNamespace+"/"+framework.ProfileName) {
		t.Errorf("kubectl athenz status -A lacks this test's and other tests' Pods:\n%s", all)
	}
	whyWeb := plugin.run(t, "why", "pod/"+web.Name, "-n", ns)
	for _, want := range []string{"INJECTED by injector", "with SidecarProfile plugin/default", "identity " + ns + "." + framework.Service, "Sidecar now: ready", "outdated: image"} {
		if !strings.Contains(whyWeb, want) {
			t.Errorf("kubectl athenz why pod/%s lacks %q:\n%s", web.Name, want, whyWeb)
		}
	}
	whyPlain := plugin.run(t, "why", "pod/plain", "-n", ns)
	if !strings.Contains(whyPlain, "NOT INJECTED: it does not opt in") {
		t.Errorf("kubectl athenz why pod/plain:\n%s\nwant that it does not opt in", whyPlain)
	}
	if dir := os.Getenv("ATHENZ_E2E_PLUGIN_OUT"); dir != "" {
		for name, out := range map[string]string{"status.txt": status, "why-injected.txt": whyWeb, "why-plain.txt": whyPlain} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(out), 0o644); err != nil {
				t.Error(err)
			}
		}
	}
}

// kubectlPlugin is kubectl with the plugin on its PATH.
type kubectlPlugin struct{ kubectl, dir string }

// buildPlugin builds cmd/kubectl-athenz into a directory of its own.
func buildPlugin(t *testing.T) kubectlPlugin {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.CommandContext(t.Context(), "go", "build", "-o", filepath.Join(dir, "kubectl-athenz"), "./cmd/kubectl-athenz")
	cmd.Dir = cluster.Root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building kubectl-athenz: %v\n%s", err, out)
	}
	return kubectlPlugin{kubectl: filepath.Join(cluster.Node.Assets, "kubectl"), dir: dir}
}

// run runs `kubectl athenz args...` and returns its output; it fails the
// test when the plugin fails.
func (p kubectlPlugin) run(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.kubectl, append([]string{"athenz"}, args...)...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+cluster.CP.Kubeconfig, "PATH="+p.dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kubectl athenz %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	t.Logf("$ kubectl athenz %s\n%s", strings.Join(args, " "), stdout.String())
	return stdout.String()
}

// TestHelmTest runs the chart's `helm test`: it passes with the installed
// injector, and fails when injection is broken (a profile that cannot be
// used in the test namespace) and when the webhook's caBundle is wrong.
// Not parallel: it breaks admission of namespace default and, for a
// moment, of every namespace.
func TestHelmTest(t *testing.T) {
	ctx := t.Context()
	helmTest := func() (string, error) {
		hctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		out, err := cluster.Helm.Run(hctx, "test", framework.ReleaseName, "--namespace", framework.ReleaseNamespace, "--logs")
		return out, err
	}
	out, err := helmTest()
	if err != nil {
		t.Fatalf("helm test with the installed injector: %v\n%s", err, out)
	}
	t.Logf("helm test, injector working:\n%s", out)

	// Broken injection: a profile in namespace default that no Pod can use
	// (a domain template with an unknown placeholder).
	bad := &v1alpha1.SidecarProfile{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "default"}, Spec: v1alpha1.SidecarProfileSpec{
		ZTS:            v1alpha1.ZTS{URL: "https://zts.example.com:4443/zts/v1"},
		Identity:       v1alpha1.Identity{Provider: framework.Provider, DNSSuffix: framework.DNSSuffix},
		DomainTemplate: "{cluster}",
	}}
	if err := cluster.Client.Create(ctx, bad); err != nil {
		t.Fatal(err)
	}
	out, err = helmTest()
	_ = cluster.Client.Delete(context.Background(), bad)
	if err == nil || !strings.Contains(out, "FAIL: the API server refused the opted-in Pod: admission webhook") {
		t.Errorf("helm test with injection broken: %v, want a failure with the injector's refusal in the test Pod's log:\n%s", err, out)
	}
	t.Logf("helm test, injection broken (%v):\n%s", err, out)

	// A wrong caBundle: another CA's certificate. The injector's rotator
	// puts the right one back within its interval (30 s); the test runs
	// right after the change.
	var mwc admissionregv1.MutatingWebhookConfiguration
	if err := cluster.Client.Get(ctx, client.ObjectKey{Name: framework.ReleaseName}, &mwc); err != nil {
		t.Fatal(err)
	}
	good := mwc.DeepCopy()
	stop := make(chan struct{})
	broken := make(chan struct{})
	go func() {
		// The injector's rotator puts the right caBundle back every 30 s:
		// break it again, until the helm test is done.
		defer close(broken)
		for {
			setCABundle(t, good, cluster.ZTS.CACertPEM())
			select {
			case <-stop:
				return
			case <-time.After(300 * time.Millisecond):
			}
		}
	}()
	time.Sleep(time.Second)
	out, err = helmTest()
	close(stop)
	<-broken
	// Put it back before the parallel tests start, conflicts with the
	// rotator notwithstanding.
	for i := 0; i < 20 && !setCABundle(t, good, nil); i++ {
		time.Sleep(200 * time.Millisecond)
	}
	if err == nil || !strings.Contains(out, "x509: certificate signed by unknown authority") {
		t.Errorf("helm test with a wrong caBundle: %v, want a failure that names the certificate:\n%s", err, out)
	}
	t.Logf("helm test, wrong caBundle (%v):\n%s", err, out)
}

// setCABundle sets every webhook's caBundle to bundle, or to good's when
// bundle is nil; false when another writer came first (a conflict).
func setCABundle(t *testing.T, good *admissionregv1.MutatingWebhookConfiguration, bundle []byte) bool {
	t.Helper()
	var now admissionregv1.MutatingWebhookConfiguration
	if err := cluster.Client.Get(context.Background(), client.ObjectKeyFromObject(good), &now); err != nil {
		t.Error(err)
		return false
	}
	for i := range now.Webhooks {
		b := bundle
		if b == nil {
			b = good.Webhooks[i].ClientConfig.CABundle
		}
		now.Webhooks[i].ClientConfig.CABundle = b
	}
	err := cluster.Client.Update(context.Background(), &now)
	if err != nil && !apierrors.IsConflict(err) {
		t.Errorf("setting the caBundle: %v", err)
	}
	return err == nil
}
