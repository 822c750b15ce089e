package e2e_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/athenz-injector/athenz-injector/test/framework"
)

// Issue 14 on the real node: workloads a platform team runs.

// TestGuaranteedPod: a Guaranteed Pod stays Guaranteed once injected (the
// kubelet's QoS class, status.qosClass) and runs.
func TestGuaranteedPod(t *testing.T) {
	t.Parallel()
	ns := "guaranteed"
	newNamespace(t, ns, nil)
	pod := injectedPod(ns, "trader", nil)
	pod.Spec.Containers[0].Resources = corev1.ResourceRequirements{Limits: corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi"),
	}}
	pod = waitReady(t, createPod(t, pod), 2*time.Minute)
	if pod.Status.QOSClass != corev1.PodQOSGuaranteed {
		t.Errorf("injected Pod's QoS class %s, want Guaranteed; %s", pod.Status.QOSClass, framework.PodSummary(pod))
	}
	inApp(pod).want(t, 200, "http://127.0.0.1:8081/roletoken?domain="+framework.Domain+"&role="+framework.Role)
}

// TestHostNetworkPair: two injected hostNetwork Pods of one profile run on
// the one node, each with its own health port (for metrics); the token
// API is on the identity volume's socket, where the probes ask too.
func TestHostNetworkPair(t *testing.T) {
	t.Parallel()
	ns := "hostnet"
	newNamespace(t, ns, nil)
	var pods []*corev1.Pod
	for i, name := range []string{"agent-a", "agent-b"} {
		appPort, err := framework.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		health := 18082 + i
		pod := injectedPod(ns, name, map[string]string{"athenz.io/sidecar-health-port": strconv.Itoa(health)})
		pod.Spec.HostNetwork = true
		pod.Spec.DNSPolicy = corev1.DNSClusterFirstWithHostNet
		app := &pod.Spec.Containers[0]
		app.Args = append(app.Args, "--listen=127.0.0.1:"+strconv.Itoa(appPort))
		app.Ports = nil
		app.ReadinessProbe = nil
		pods = append(pods, createPod(t, pod))
	}
	for i, pod := range pods {
		pod = waitReady(t, pod, 2*time.Minute)
		health := 18082 + i
		url := fmt.Sprintf("http://%s/metrics", net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(health)))
		resp, err := http.Get(url)
		if err != nil {
			t.Errorf("%s: the sidecar's metrics on its own health port: %v", pod.Name, err)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s: GET %s = %d", pod.Name, url, resp.StatusCode)
		}
	}
}

// TestInitOnlyJob: a Job with athenz.io/init-only completes; its app reads
// the identity files the init container fetched.
func TestInitOnlyJob(t *testing.T) {
	t.Parallel()
	ns := "initonly"
	newNamespace(t, ns, nil)
	spec := framework.AppPodSpec(framework.AppName)
	spec.RestartPolicy = corev1.RestartPolicyNever
	spec.Containers[0].Args = nil
	spec.Containers[0].Command = []string{"cat", "/var/run/athenz/service.cert.pem", "/var/run/athenz/service.key.pem", "/var/run/athenz/ca.cert.pem"}
	spec.Containers[0].ReadinessProbe = nil
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "report"},
		Spec: batchv1.JobSpec{
			BackoffLimit: ptr.To[int32](0),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{framework.AnnotationInject: "true", "athenz.io/init-only": "true"}},
				Spec:       spec,
			},
		},
	}
	if err := cluster.Client.Create(t.Context(), job); err != nil {
		t.Fatal(err)
	}
	pod := waitJobDone(t, job)
	if len(pod.Spec.InitContainers) != 1 || pod.Spec.InitContainers[0].Name != "athenz-sidecar-init" || len(pod.Spec.Containers) != 1 {
		t.Errorf("init-only Pod: %s, want the init container athenz-sidecar-init and the app only", framework.PodSummary(pod))
	}
	out, err := cluster.Kubectl(t.Context(), "-n", ns, "logs", pod.Name, "-c", framework.AppContainer)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(out, "-----BEGIN CERTIFICATE-----") < 2 || !strings.Contains(out, "PRIVATE KEY-----") {
		t.Errorf("the init-only Job's app printed %q, want the certificate, the key and the CA", out)
	}
}

// waitJobDone waits for the Job to complete and returns its Pod.
func waitJobDone(t *testing.T, job *batchv1.Job) *corev1.Pod {
	t.Helper()
	err := framework.Wait(withTimeout(t, 2*time.Minute), "Job "+job.Namespace+"/"+job.Name+" to complete", func(ctx context.Context) (bool, string, error) {
		var j batchv1.Job
		if err := cluster.Client.Get(ctx, client.ObjectKeyFromObject(job), &j); err != nil {
			return false, err.Error(), nil
		}
		for _, cond := range j.Status.Conditions {
			if cond.Status == corev1.ConditionTrue && cond.Type == batchv1.JobComplete {
				return true, "", nil
			}
			if cond.Status == corev1.ConditionTrue && cond.Type == batchv1.JobFailed {
				return false, "", fmt.Errorf("the Job failed: %s: %s", cond.Reason, cond.Message)
			}
		}
		return false, fmt.Sprintf("active %d, succeeded %d", j.Status.Active, j.Status.Succeeded), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var pods corev1.PodList
	if err := cluster.Client.List(t.Context(), &pods, client.InNamespace(job.Namespace), client.MatchingLabels{"batch.kubernetes.io/job-name": job.Name}); err != nil || len(pods.Items) != 1 {
		t.Fatalf("pods of the Job: %d, %v", len(pods.Items), err)
	}
	return &pods.Items[0]
}

// TestShutdownTokenNeverMode: with nativeSidecar: Never every container
// gets SIGTERM at once; the app, which asks for a role token (through the
// sidecar's proxy, to an upstream) after SIGTERM, still gets one, because
// the regular sidecar sleeps in preStop.
func TestShutdownTokenNeverMode(t *testing.T) {
	t.Parallel()
	ns := "shutdown"
	newNamespace(t, ns, nil)
	echo := framework.StartEchoOn(framework.HostIP)
	defer echo.Close()
	pod := injectedPod(ns, "web", map[string]string{"athenz.io/native-sidecar": "false"})
	pod.Spec.TerminationGracePeriodSeconds = ptr.To[int64](15)
	app := &pod.Spec.Containers[0]
	app.Args = append(app.Args, "--shutdown-get="+echo.URL+"/shutdown",
		"--shutdown-header=Athenz-Domain: "+framework.Domain, "--shutdown-header=Athenz-Role: "+framework.Role)
	app.Env = append(app.Env, corev1.EnvVar{Name: "HTTP_PROXY", Value: "http://127.0.0.1:8081"})
	pod = waitReady(t, createPod(t, pod), 2*time.Minute)
	if err := cluster.Client.Delete(t.Context(), pod); err != nil {
		t.Fatal(err)
	}
	err := framework.Wait(withTimeout(t, 30*time.Second), "the app's request during its shutdown at the upstream", func(context.Context) (bool, string, error) {
		h := echo.LastHeaders()
		return h != nil, "no request yet", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	f := tokenFields(echo.LastHeaders().Get("Athenz-Role-Auth"))
	if want := ns + "." + framework.Service; f["d"] != framework.Domain || f["r"] != framework.Role || f["p"] != want {
		t.Errorf("the app's request after SIGTERM reached the upstream with Athenz-Role-Auth d=%q r=%q p=%q, want a role token of %s", f["d"], f["r"], f["p"], want)
	}
}

// TestRollingInjector: rolling the injector's Deployment while opted-in
// Pods are created (at least 100, one every 300 ms, until every old
// replica is gone) makes no admission fail: a preStop sleep keeps each old
// replica serving while it leaves the Service, then its admissions in
// flight drain. The Pods ask for a node that does not exist, so they stay
// Pending: only admission is tested. Not parallel: it restarts the
// injector every other test uses.
func TestRollingInjector(t *testing.T) {
	ns := "rolling"
	newNamespace(t, ns, nil)
	ctx := t.Context()
	injectorPods := func() map[string]bool {
		var list corev1.PodList
		if err := cluster.Client.List(ctx, &list, client.InNamespace(framework.ReleaseNamespace),
			client.MatchingLabels{"app.kubernetes.io/component": "injector"}); err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, p := range list.Items {
			out[p.Name] = true
		}
		return out
	}
	old := injectorPods()
	if _, err := cluster.Kubectl(ctx, "-n", framework.ReleaseNamespace, "rollout", "restart", "deployment/"+framework.ReleaseName); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	const atLeast, atMost = 100, 400
	var failed atomic.Int32
	var mu sync.Mutex
	var failures []string
	var wg sync.WaitGroup
	var oldGone time.Duration
	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
	created := 0
	for ; created < atMost; created++ {
		<-tick.C
		if oldGone == 0 {
			now := injectorPods()
			gone := true
			for name := range old {
				gone = gone && !now[name]
			}
			if gone {
				oldGone = time.Since(began)
			}
		}
		if created >= atLeast && oldGone != 0 {
			break
		}
		i := created
		wg.Go(func() {
			pod := injectedPod(ns, fmt.Sprintf("web-%03d", i), nil)
			pod.Spec.NodeSelector = map[string]string{"athenz.io/e2e": "no-such-node"}
			err := cluster.Client.Create(ctx, pod)
			if err == nil {
				if _, ok := pod.Annotations[framework.AnnotationStatus]; !ok {
					err = fmt.Errorf("admitted without injection")
				}
			}
			if err != nil {
				failed.Add(1)
				mu.Lock()
				failures = append(failures, fmt.Sprintf("%s at +%v: %v", pod.Name, time.Since(began).Round(time.Millisecond), err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if oldGone == 0 {
		t.Fatalf("the old injector Pods %v were still there after %d Pods (%v)", old, created, time.Since(began).Round(time.Second))
	}
	if err := cluster.WaitDeploymentReady(ctx, framework.ReleaseNamespace, framework.ReleaseName, 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	t.Logf("created %d opted-in Pods over %v while the injector rolled (old replicas %v gone %v after the restart); %d failed",
		created, time.Since(began).Round(time.Second), keys(old), oldGone.Round(100*time.Millisecond), failed.Load())
	if failed.Load() > 0 {
		t.Errorf("%d of %d admissions failed while the injector rolled:\n%s", failed.Load(), created, strings.Join(failures, "\n"))
	}
	// Leave no Pending Pods behind for the other tests' kubelet.
	_ = cluster.Client.DeleteAllOf(context.Background(), &corev1.Pod{}, client.InNamespace(ns))
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
