package chart_test

import (
	"context"
	"strings"
	"testing"
	"time"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TestAdmissionPolicy installs the chart with its defaults into a real
// kube-apiserver, which serves admissionregistration.k8s.io/v1
// ValidatingAdmissionPolicy, so the chart installs its policy; the API
// server then enforces it with no injector running: the identity
// annotations only where the platform team allows them, and never changed
// on a Pod that exists.
func TestAdmissionPolicy(t *testing.T) {
	h := newHelm(t)
	cp := startControlPlane(t)
	h = h.withKubeconfig(cp.kubeconfig)
	if out, err := h.run("install", "athenz-injector", h.chart, "--namespace", "athenz-injector", "--create-namespace", "--wait=false"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	ctx := t.Context()
	c := cp.client
	const policy = "athenz-injector-identity-annotations"
	var vap admissionregv1.ValidatingAdmissionPolicy
	if err := c.Get(ctx, client.ObjectKey{Name: policy}, &vap); err != nil {
		t.Fatalf("the chart installed no ValidatingAdmissionPolicy %s: %v", policy, err)
	}
	if err := c.Get(ctx, client.ObjectKey{Name: policy}, &admissionregv1.ValidatingAdmissionPolicyBinding{}); err != nil {
		t.Fatalf("the chart installed no ValidatingAdmissionPolicyBinding %s: %v", policy, err)
	}

	namespace := func(name string, labels map[string]string) string {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
		if err := c.Create(ctx, ns); err != nil {
			t.Fatal(err)
		}
		return name
	}
	tenant := namespace("shop", nil)
	allowed := namespace("batch", map[string]string{"athenz.io/identity-overrides": "allowed"})
	pod := func(ns, name string, annotations map[string]string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: annotations},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.com/app:1"}}},
		}
	}
	template := func(annotations map[string]string) corev1.PodTemplateSpec {
		return corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}, Annotations: annotations},
			Spec:       pod("", "", nil).Spec,
		}
	}
	payments := map[string]string{"athenz.io/domain": "payments"}
	reserved := []string{"athenz.io/domain and athenz.io/service are reserved in namespace shop",
		"athenz.io/identity-overrides=allowed", "spec.identityPolicy.allowedIdentities"}

	// The API server compiles a new policy in the background.
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := c.Create(ctx, pod(tenant, "probe", payments), client.DryRunAll)
		if err != nil && strings.Contains(err.Error(), policy) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30s the policy does not refuse a Pod with athenz.io/domain: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	deployment := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: tenant, Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: template(map[string]string{"athenz.io/service": "admin"}),
		},
	}
	cronJob := &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Namespace: tenant, Name: "nightly"},
		Spec: batchv1.CronJobSpec{Schedule: "@daily", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{
			Template: func() corev1.PodTemplateSpec {
				p := template(payments)
				p.Spec.RestartPolicy = corev1.RestartPolicyNever
				return p
			}(),
		}}},
	}
	for _, tc := range []struct {
		name string
		obj  client.Object
		want []string // in the refusal; none: admitted
	}{
		{"a Pod claiming a domain", pod(tenant, "claims", payments), reserved},
		{"a Deployment's template claiming a service", deployment, reserved},
		{"a CronJob's template claiming a domain", cronJob, reserved},
		{"a Pod without identity annotations", pod(tenant, "plain", map[string]string{"athenz.io/inject": "false"}), nil},
		{"a Pod claiming a domain where the platform allows it", pod(allowed, "claims", payments), nil},
		{"a Pod in kube-system", pod("kube-system", "system", payments), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := c.Create(ctx, tc.obj)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("creating it: %v, want it admitted", err)
				}
				t.Cleanup(func() { _ = c.Delete(context.Background(), tc.obj) })
				return
			}
			if err == nil {
				t.Fatal("creating it succeeded, want the policy to refuse it")
			}
			if !apierrors.IsInvalid(err) && !apierrors.IsForbidden(err) {
				t.Errorf("creating it: %v, want a refusal", err)
			}
			for _, w := range append([]string{policy}, tc.want...) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("refusal %q does not say %q", err, w)
				}
			}
		})
	}

	t.Run("identity annotations of a Pod never change", func(t *testing.T) {
		existing := pod(allowed, "fixed", payments)
		if err := c.Create(ctx, existing); err != nil {
			t.Fatal(err)
		}
		plain := pod(tenant, "later", nil)
		if err := c.Create(ctx, plain); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			pod   *corev1.Pod
			patch string
			want  string // in the refusal; empty: admitted
		}{
			{existing, `{"metadata":{"annotations":{"athenz.io/domain":"payments.ledger"}}}`, "cannot change on a Pod that exists"},
			{existing, `{"metadata":{"annotations":{"athenz.io/domain":null}}}`, "cannot change on a Pod that exists"},
			{existing, `{"metadata":{"annotations":{"athenz.io/status":"{}"}}}`, "cannot change on a Pod that exists"},
			{existing, `{"metadata":{"annotations":{"example.com/owner":"team"}}}`, ""},
			{plain, `{"metadata":{"annotations":{"athenz.io/profile":"builtin"}}}`, "cannot change on a Pod that exists"},
			{plain, `{"metadata":{"annotations":{"athenz.io/domain":"payments"}}}`, "reserved in namespace shop"},
		} {
			err := c.Patch(ctx, tc.pod.DeepCopy(), client.RawPatch(types.MergePatchType, []byte(tc.patch)))
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("patching %s with %s: %v, want it admitted", tc.pod.Name, tc.patch, err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("patching %s with %s: %v, want a refusal saying %q", tc.pod.Name, tc.patch, err, tc.want)
			}
		}
	})
}
