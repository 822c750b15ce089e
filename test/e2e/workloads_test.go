package e2e_test

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/athenz-injector/athenz-injector/test/framework"
)

// TestRestrictedNamespace: in a namespace that enforces the restricted
// Pod Security Standard, the injected Pod is admitted and runs.
func TestRestrictedNamespace(t *testing.T) {
	t.Parallel()
	ns := "restricted"
	newNamespace(t, ns, map[string]string{
		"pod-security.kubernetes.io/enforce":         "restricted",
		"pod-security.kubernetes.io/enforce-version": "latest",
	})
	pod := createPod(t, injectedPod(ns, "web", nil))
	pod = waitReady(t, pod, 2*time.Minute)
	if _, ok := pod.Annotations[framework.AnnotationStatus]; !ok {
		t.Fatalf("pod %s was admitted but not injected", pod.Name)
	}
	app := inApp(pod)
	app.want(t, 200, "http://127.0.0.1:8081/roletoken?domain="+framework.Domain+"&role="+framework.Role)
}

// TestJob: a Job whose Pod is injected completes (the native sidecar
// stops with the app), and so does one with athenz.io/native-sidecar:
// "false", whose init container gets the identity although, when it
// starts, the Pod's IP is not in its status yet.
func TestJob(t *testing.T) {
	t.Parallel()
	ns := "jobs"
	newNamespace(t, ns, nil)
	cases := []struct {
		name        string
		annotations map[string]string
		command     []string
	}{
		// The app asks the sidecar for a token.
		{"native", nil, []string{"curl", "-sSf", "http://127.0.0.1:8081/roletoken?domain=" + framework.Domain + "&role=" + framework.Role}},
		// Without native sidecars, a Job's Pod gets the identity files.
		{"init-container", map[string]string{"athenz.io/native-sidecar": "false"}, []string{"cat", "/var/run/athenz/service.cert.pem", "/var/run/athenz/service.key.pem"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			out := runJob(t, appJob(ns, "report-"+c.name, c.command, c.annotations))
			want := `"token":"v=Z1;d=` + framework.Domain
			if c.name == "init-container" {
				want = "-----BEGIN CERTIFICATE-----"
			}
			if !strings.Contains(out, want) {
				t.Errorf("the Job's app printed %q, want it to contain %q", out, want)
			}
		})
	}
}

// appJob is a Job of one injected Pod whose app container runs command
// once, with the Pod annotations given besides athenz.io/inject.
func appJob(ns, name string, command []string, annotations map[string]string) *batchv1.Job {
	spec := framework.AppPodSpec(framework.AppName)
	spec.RestartPolicy = corev1.RestartPolicyNever
	spec.Containers[0].Args = nil
	spec.Containers[0].Command = command
	spec.Containers[0].ReadinessProbe = nil
	a := map[string]string{framework.AnnotationInject: "true"}
	maps.Copy(a, annotations)
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: batchv1.JobSpec{
			BackoffLimit: ptr.To[int32](0),
			Template:     corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Annotations: a}, Spec: spec},
		},
	}
}

// runJob creates job, waits up to 2 minutes for it to complete and
// returns what its app container printed.
func runJob(t *testing.T, job *batchv1.Job) string {
	t.Helper()
	ctx := t.Context()
	if err := cluster.Client.Create(ctx, job); err != nil {
		t.Fatal(err)
	}
	err := framework.Wait(withTimeout(t, 2*time.Minute), "Job "+job.Namespace+"/"+job.Name+" to complete", func(ctx2 context.Context) (bool, string, error) {
		var j batchv1.Job
		if err := cluster.Client.Get(ctx2, client.ObjectKeyFromObject(job), &j); err != nil {
			return false, err.Error(), nil
		}
		for _, cond := range j.Status.Conditions {
			if cond.Status != corev1.ConditionTrue {
				continue
			}
			switch cond.Type {
			case batchv1.JobComplete:
				return true, "", nil
			case batchv1.JobFailed:
				return false, "", fmt.Errorf("the Job failed: %s: %s", cond.Reason, cond.Message)
			}
		}
		return false, fmt.Sprintf("active %d, succeeded %d", j.Status.Active, j.Status.Succeeded), nil
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, cluster.DiagnoseNamespace(ctx, job.Namespace))
	}
	var pods corev1.PodList
	if err := cluster.Client.List(ctx, &pods, client.InNamespace(job.Namespace), client.MatchingLabels{"batch.kubernetes.io/job-name": job.Name}); err != nil || len(pods.Items) != 1 {
		t.Fatalf("pods of the Job: %d, %v", len(pods.Items), err)
	}
	out, err := cluster.Kubectl(ctx, "-n", job.Namespace, "logs", pods.Items[0].Name, "-c", framework.AppContainer)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
