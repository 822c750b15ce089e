package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/athenz-injector/athenz-injector/test/framework"
)

// TestFreshNamespace: the ZTS CA reaches a namespace made a moment ago
// with no step by its user: an injected Pod created right away starts.
func TestFreshNamespace(t *testing.T) {
	t.Parallel()
	ns := "fresh"
	newNamespace(t, ns, nil)
	pod := createPod(t, injectedPod(ns, "web", nil))
	waitReady(t, pod, 2*time.Minute)
	var cm corev1.ConfigMap
	if err := cluster.Client.Get(t.Context(), key(ns, "athenz-zts-ca-"+framework.ProfileName), &cm); err != nil {
		t.Fatalf("the injector's copy of the ZTS CA: %v", err)
	}
	if cm.Data["ca.pem"] != string(cluster.ZTS.CACertPEM()) {
		t.Errorf("the copy of the ZTS CA in %s holds %q, want the fake ZTS's CA", ns, cm.Data["ca.pem"])
	}
}

// TestSidecarKilled: the sidecar's process is killed; the kubelet
// restarts the container, which adopts the identity in the Pod's volume,
// and the app is answered again (tokens and /ntoken) without restarting.
func TestSidecarKilled(t *testing.T) {
	t.Parallel()
	ns := "killed"
	newNamespace(t, ns, nil)
	pod := waitReady(t, createPod(t, injectedPod(ns, "web", nil)), 2*time.Minute)
	app := inApp(pod)
	calls := []string{"/ntoken", "/roletoken?domain=" + framework.Domain + "&role=" + framework.Role,
		"/accesstoken?domain=" + framework.Domain + "&role=" + framework.Role}
	for _, c := range calls {
		app.want(t, 200, "http://127.0.0.1:8081"+c)
	}

	pid := containerPid(t, pod, framework.SidecarContainer)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("killing the sidecar (pid %d): %v", pid, err)
	}
	t.Logf("killed the sidecar's process %d", pid)
	pod, err := cluster.WaitPod(t.Context(), ns, pod.Name, time.Minute, "with its sidecar restarted and ready", func(p *corev1.Pod) (bool, string) {
		st := containerStatus(p, framework.SidecarContainer)
		if st == nil {
			return false, "no sidecar status"
		}
		ready, _ := framework.PodReady(p)
		return st.RestartCount >= 1 && st.Ready && ready, fmt.Sprintf("sidecar restarts %d ready %v", st.RestartCount, st.Ready)
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range calls {
		app.want(t, 200, "http://127.0.0.1:8081"+c)
	}
	if st := containerStatus(pod, framework.AppContainer); st == nil || st.RestartCount != 0 {
		t.Errorf("the app container restarted: %+v", st)
	}
}

// TestRotation: with 2-minute certificates the sidecar renews the Pod's
// identity during the test; the app, reading the files every 20 ms, sees
// the new certificate and never a half-written or mismatched pair, and
// the Pod's readiness never drops.
func TestRotation(t *testing.T) {
	t.Parallel()
	ns := "rotation"
	newNamespace(t, ns, nil)
	pod := waitReady(t, createPod(t, injectedPod(ns, "web", nil)), 2*time.Minute)
	notReady := watchReadiness(t, pod)
	app := inApp(pod)
	first := parseCert(t, "GET /svccert", app.want(t, 200, "http://127.0.0.1:8081/svccert"))
	t.Logf("first certificate: serial %s, valid until %s", first.SerialNumber, first.NotAfter.UTC().Format(time.RFC3339))

	var report struct {
		Reads, Torn, Missing int
		LastError            string
		Serials              []string
	}
	err := framework.Wait(withTimeout(t, certLifetime+time.Minute), "a second certificate in the app's view", func(context.Context) (bool, string, error) {
		_, body := app.do(t, "http://127.0.0.1:8080/identity")
		if err := json.Unmarshal(body, &report); err != nil {
			return false, "", fmt.Errorf("the app's report %q: %v", body, err)
		}
		return len(report.Serials) >= 2, fmt.Sprintf("%+v", report), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // the app reads on after the rotation
	_, body := app.do(t, "http://127.0.0.1:8080/identity")
	decode(t, "the app's report", body, &report)
	t.Logf("the app read the identity files %d times: serials %v, torn %d, missing %d", report.Reads, report.Serials, report.Torn, report.Missing)
	if report.Torn != 0 || report.Missing != 0 {
		t.Errorf("the app saw %d torn and %d missing identity files (last error %q), want none", report.Torn, report.Missing, report.LastError)
	}
	second := parseCert(t, "GET /svccert", app.want(t, 200, "http://127.0.0.1:8081/svccert"))
	if second.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Errorf("GET /svccert still serves serial %s after the rotation", first.SerialNumber)
	}
	if d := notReady(); len(d) > 0 {
		t.Errorf("the Pod was not Ready during the rotation: %v", d)
	}
}

// TestRefusedIdentity: when ZTS refuses the Pod's identity, the Pod is not
// Ready, and the reason is in the sidecar's log and in an Event that
// `kubectl describe pod` shows.
func TestRefusedIdentity(t *testing.T) {
	t.Parallel()
	ns := "refused"
	newNamespace(t, ns, nil)
	cluster.RefuseDomain(ns)
	pod := createPod(t, injectedPod(ns, "web", nil))
	const reason = "does not authorize provider" // the fake ZTS's refusal
	err := framework.Wait(withTimeout(t, time.Minute), "the refusal in the Pod's Events", func(ctx context.Context) (bool, string, error) {
		out, err := cluster.Kubectl(ctx, "-n", ns, "describe", "pod", pod.Name)
		if err != nil {
			return false, err.Error(), nil
		}
		return strings.Contains(out, reason), out, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	log, err := cluster.Kubectl(t.Context(), "-n", ns, "logs", pod.Name, "-c", framework.SidecarContainer)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log, reason) {
		t.Errorf("the sidecar's log does not say %q:\n%s", reason, log)
	}
	var p corev1.Pod
	if err := cluster.Client.Get(t.Context(), key(ns, pod.Name), &p); err != nil {
		t.Fatal(err)
	}
	if ready, state := framework.PodReady(&p); ready {
		t.Errorf("the Pod is Ready (%s) although ZTS refused its identity", state)
	}
}

// TestExpiredIdentity: a Pod whose certificate expires (ZTS refuses the
// refresh) stops being Ready, so it leaves its Services' endpoints.
func TestExpiredIdentity(t *testing.T) {
	t.Parallel()
	ns := "expired"
	newNamespace(t, ns, nil)
	pod := waitReady(t, createPod(t, injectedPod(ns, "web", nil)), 2*time.Minute)
	cluster.RefuseDomain(ns)
	leaf := parseCert(t, "GET /svccert", inApp(pod).want(t, 200, "http://127.0.0.1:8081/svccert"))
	t.Logf("ZTS refuses domain %s from now; the certificate expires at %s", ns, leaf.NotAfter.UTC().Format(time.RFC3339))
	_, err := cluster.WaitPod(t.Context(), ns, pod.Name, time.Until(leaf.NotAfter)+time.Minute, "not Ready once its certificate expired",
		func(p *corev1.Pod) (bool, string) {
			ready, state := framework.PodReady(p)
			return !ready, state
		})
	if err != nil {
		t.Fatal(err)
	}
	if time.Now().Before(leaf.NotAfter) {
		t.Errorf("the Pod became not Ready before its certificate expired (%s)", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
}

// containerPid is the host pid of a container's main process.
func containerPid(t *testing.T, pod *corev1.Pod, container string) int {
	t.Helper()
	var p corev1.Pod
	if err := cluster.Client.Get(t.Context(), key(pod.Namespace, pod.Name), &p); err != nil {
		t.Fatal(err)
	}
	st := containerStatus(&p, container)
	if st == nil || st.ContainerID == "" {
		t.Fatalf("container %s of %s has no ID", container, pod.Name)
	}
	id := st.ContainerID[strings.Index(st.ContainerID, "://")+3:]
	out, err := cluster.Node.Crictl(t.Context(), "inspect", "--output", "go-template", "--template", "{{.info.pid}}", id)
	if err != nil {
		t.Fatalf("crictl inspect %s: %v: %s", id, err, out)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil || pid <= 1 {
		t.Fatalf("crictl inspect %s: pid %q: %v", id, out, err)
	}
	return pid
}

func containerStatus(p *corev1.Pod, name string) *corev1.ContainerStatus {
	for _, st := range append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
		if st.Name == name {
			return &st
		}
	}
	return nil
}

// watchReadiness records every change of the Pod's Ready condition to
// False from now on; the returned function lists them.
func watchReadiness(t *testing.T, pod *corev1.Pod) func() []string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w, err := cluster.CP.Clientset.CoreV1().Pods(pod.Namespace).Watch(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("metadata.name", pod.Name).String(),
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	var mu sync.Mutex
	var drops []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok || ev.Type == watch.Deleted {
				continue
			}
			if ready, state := framework.PodReady(p); !ready {
				mu.Lock()
				drops = append(drops, time.Now().UTC().Format(time.RFC3339)+": "+state)
				mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { cancel(); w.Stop(); <-done })
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), drops...)
	}
}
