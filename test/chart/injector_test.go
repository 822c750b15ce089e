package chart_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/athenz-injector/athenz-injector/pkg/webhook/webhooktest"
	"github.com/athenz-injector/athenz-injector/test/framework"
)

// The tests here run the injector binary as a Deployment describes it:
// with the Deployment's arguments, acting as its ServiceAccount, with its
// Secret and ConfigMap volumes materialized from the API server the way
// kubelet would, on free loopback ports. There is no kubelet in envtest;
// this is how "the Pod would start and become ready" is shown.

var (
	binDir     string
	binDirOnce sync.Once
)

func TestMain(m *testing.M) {
	// The clients of these tests log nothing worth reading.
	ctrllog.SetLogger(logr.Discard())
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// injectorBinary builds cmd/injector once per test binary.
var injectorBinary = sync.OnceValues(func() (string, error) {
	root, err := webhooktest.RepoRoot()
	if err != nil {
		return "", err
	}
	binDirOnce.Do(func() { binDir, err = os.MkdirTemp("", "athenz-injector-chart-test-") })
	if err != nil {
		return "", err
	}
	bin := filepath.Join(binDir, "injector")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/injector")
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/injector: %v\n%s", err, out.String())
	}
	return bin, nil
})

// podRun is an injector started from a Deployment.
type podRun struct {
	*framework.Injector
	// ProviderAddr is where the provider callback listens, if the
	// Deployment turns it on.
	ProviderAddr string
	// Mounts maps each volume mount path to its local directory.
	Mounts map[string]string
}

// flags that StartInjector sets itself, on loopback and in local
// directories.
var localFlags = map[string]bool{
	"--webhook-port": true, "--cert-dir": true, "--metrics-bind-address": true,
	"--health-probe-bind-address": true, "--namespace": true, "--kubeconfig": true,
}

// startFromDeployment starts the injector of dep's first container with
// kubeconfig, waiting up to readyTimeout for /readyz. Arguments naming a
// path under a volume mount are rewritten to the volume's local copy; the
// provider callback gets a free loopback address.
func startFromDeployment(t *testing.T, cs kubernetes.Interface, dep *appsv1.Deployment, kubeconfig string, readyTimeout time.Duration) (*podRun, error) {
	t.Helper()
	bin, err := injectorBinary()
	if err != nil {
		t.Fatal(err)
	}
	mounts, err := materializeVolumes(t, cs, dep)
	if err != nil {
		return nil, err
	}
	ctr := dep.Spec.Template.Spec.Containers[0]
	var certDir string
	run := &podRun{Mounts: mounts}
	var args []string
	for _, a := range ctr.Args {
		name, value, _ := strings.Cut(a, "=")
		switch {
		case name == "--cert-dir":
			certDir = localPath(mounts, value)
			continue
		case localFlags[name]:
			continue
		case name == "--provider-bind-address":
			if run.ProviderAddr, err = framework.FreeAddr(); err != nil {
				t.Fatal(err)
			}
			value = run.ProviderAddr
		default:
			value = localPath(mounts, value)
		}
		if value == "" && !strings.Contains(a, "=") {
			args = append(args, name)
			continue
		}
		args = append(args, name+"="+value)
	}
	if certDir == "" {
		t.Fatalf("Deployment %s/%s passes no --cert-dir", dep.Namespace, dep.Name)
	}
	ctx, cancel := context.WithTimeout(t.Context(), readyTimeout+10*time.Second)
	defer cancel()
	inj, err := framework.StartInjector(ctx, framework.InjectorOptions{
		Binary:       bin,
		Kubeconfig:   kubeconfig,
		Namespace:    dep.Namespace,
		CertDir:      certDir,
		Dir:          t.TempDir(),
		Args:         args,
		ReadyTimeout: readyTimeout,
	})
	if err != nil {
		return nil, err
	}
	run.Injector = inj
	t.Cleanup(func() { _ = inj.Stop(0) })
	return run, nil
}

// localPath rewrites a path under a mount to the mount's local directory.
func localPath(mounts map[string]string, value string) string {
	for mountPath, dir := range mounts {
		if value == mountPath {
			return dir
		}
		if rest, ok := strings.CutPrefix(value, mountPath+"/"); ok {
			return filepath.Join(dir, rest)
		}
	}
	return value
}

// materializeVolumes does what kubelet does with the first container's
// volume mounts (framework.PlayedKubelet fills them) and returns each mount
// path's local directory.
func materializeVolumes(t *testing.T, cs kubernetes.Interface, dep *appsv1.Deployment) (map[string]string, error) {
	t.Helper()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: dep.Namespace, Name: dep.Name}, Spec: dep.Spec.Template.Spec}
	ctr := &pod.Spec.Containers[0]
	k := &framework.PlayedKubelet{Clientset: cs}
	dirs, err := k.PrepareVolumes(t.Context(), pod, ctr, t.TempDir())
	if err != nil {
		return nil, err
	}
	mounts := map[string]string{}
	for _, m := range ctr.VolumeMounts {
		mounts[m.MountPath] = filepath.Join(dirs[m.Name], m.SubPath)
	}
	return mounts, nil
}

// applyAll creates or updates every object server-side, as the
// administrator, in order.
func applyAll(ctx context.Context, c client.Client, objs []*unstructured.Unstructured) error {
	var errs []error
	for _, o := range objs {
		o = o.DeepCopy()
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(o), client.FieldOwner("athenz-injector-test"), client.ForceOwnership); err != nil {
			errs = append(errs, fmt.Errorf("applying %s %s/%s: %w", o.GetKind(), o.GetNamespace(), o.GetName(), err))
		}
	}
	return errors.Join(errs...)
}
