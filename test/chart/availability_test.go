package chart_test

import (
	"slices"
	"strings"
	"testing"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
)

// Issue 14, defect 6: the injector's Pods stopped serving at once on
// SIGTERM, and the API server does not retry a refused connection, so
// opted-in Pods failed admission while the injector's Deployment rolled;
// and the workload webhook's failurePolicy Fail blocked every update of an
// annotated Deployment while the injector was down. Now a replica sleeps
// in preStop while it leaves the Service, with a grace period that covers
// the sleep and the drain, and the workload webhook ignores failures.
func TestInjectorAvailability(t *testing.T) {
	t.Parallel()
	h := newHelm(t)
	m := h.template(t, nil)
	pod := deployment(t, m).Spec.Template.Spec
	inj := pod.Containers[0]
	if l := inj.Lifecycle; l == nil || l.PreStop == nil || l.PreStop.Sleep == nil || l.PreStop.Sleep.Seconds < 5 {
		t.Errorf("injector lifecycle = %+v, want a preStop sleep of at least 5 s", inj.Lifecycle)
	} else if g := pod.TerminationGracePeriodSeconds; g == nil || *g < l.PreStop.Sleep.Seconds+30 {
		t.Errorf("terminationGracePeriodSeconds = %v, want the preStop sleep plus 30 s of drain", g)
	}
	policies := map[string]admissionregv1.FailurePolicyType{}
	for _, w := range webhookConfig(t, m).Webhooks {
		policies[w.Name] = *w.FailurePolicy
	}
	want := map[string]admissionregv1.FailurePolicyType{
		"pods.injector.athenz.io":           admissionregv1.Fail,
		"namespace-pods.injector.athenz.io": admissionregv1.Fail,
		"workloads.injector.athenz.io":      admissionregv1.Ignore,
	}
	for n, p := range want {
		if policies[n] != p {
			t.Errorf("webhook %s failurePolicy = %s, want %s", n, policies[n], p)
		}
	}

	off := h.template(t, map[string]any{"injector": map[string]any{"preStopSleepSeconds": 0}})
	if l := deployment(t, off).Spec.Template.Spec.Containers[0].Lifecycle; l != nil {
		t.Errorf("preStopSleepSeconds=0: lifecycle %+v, want none", l)
	}
}

// Issue 14, defect 8: the helm test Pod sent a Pod that did not opt in to
// the Service with curl -k, so it passed with a wrong caBundle (the API
// server's trust was never involved) and with broken injection. Now it
// runs `injector check`, which creates an opted-in Pod through the API
// server (a dry run) and needs it back injected, with a Role that may do
// only that, in tests.namespace.
func TestHelmTestChecksInjection(t *testing.T) {
	t.Parallel()
	h := newHelm(t)
	m := h.template(t, map[string]any{"tests": map[string]any{"namespace": "team"}})
	var pod corev1.Pod
	m.get(t, "Pod", name+"-test", &pod)
	c := pod.Spec.Containers[0]
	if !slices.Equal(c.Args, []string{"check", "--namespace=team", "--image=" + c.Image}) || !strings.Contains(c.Image, "athenz-injector") {
		t.Errorf("helm test container image %s args %q, want the injector's image running check --namespace=team", c.Image, c.Args)
	}
	for _, ctr := range pod.Spec.Containers {
		if strings.Contains(strings.Join(append(ctr.Command, ctr.Args...), " "), "-k") {
			t.Errorf("helm test container %s skips certificate checks: %q", ctr.Name, append(ctr.Command, ctr.Args...))
		}
	}
	var role rbacv1.Role
	m.get(t, "Role", name+"-test", &role)
	if role.Namespace != "team" || len(role.Rules) != 1 || !grants(role.Rules, "", "pods", "create") || len(role.Rules[0].Verbs) != 1 {
		t.Errorf("helm test Role %s/%s rules %+v, want create pods in team only", role.Namespace, role.Name, role.Rules)
	}
	for _, o := range []struct{ kind, name string }{{"Role", name + "-test"}, {"RoleBinding", name + "-test"}, {"ServiceAccount", name + "-test"}, {"Pod", name + "-test"}} {
		if obj := m.find(o.kind, o.name); obj == nil || obj.GetAnnotations()["helm.sh/hook"] != "test" {
			t.Errorf("%s %s is not a helm test hook", o.kind, o.name)
		}
	}
}
