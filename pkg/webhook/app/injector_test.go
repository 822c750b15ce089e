package app_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/athenz-injector/athenz-injector/api/v1alpha1"
	"github.com/athenz-injector/athenz-injector/pkg/webhook"
)

// newNamespace creates a namespace for one test, deleted at its end.
func newNamespace(t *testing.T, name string, labels map[string]string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if err := k8s.Create(t.Context(), ns); err != nil {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), ns) })
	return name
}

func validProfile(namespace, name string) *v1alpha1.SidecarProfile {
	return &v1alpha1.SidecarProfile{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: v1alpha1.SidecarProfileSpec{
			ZTS: v1alpha1.ZTS{URL: "https://zts.example.com:4443/zts/v1"},
			Identity: v1alpha1.Identity{
				Provider:  "sys.auth.k8s",
				DNSSuffix: "athenz.example.com",
			},
			Prefetch: []string{"sports:role.reader"},
		},
	}
}

// createProfile creates p and waits until the injector's cache has it
// (its Ready condition is set by the reconciler, which reads the cache).
func createProfile(t *testing.T, p *v1alpha1.SidecarProfile) {
	t.Helper()
	if err := k8s.Create(t.Context(), p); err != nil {
		t.Fatalf("creating SidecarProfile %s/%s: %v", p.Namespace, p.Name, err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), p) })
	waitCondition(t, p.Namespace, p.Name)
}

func waitCondition(t *testing.T, namespace, name string) *metav1.Condition {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		var p v1alpha1.SidecarProfile
		if err := k8s.Get(t.Context(), client.ObjectKey{Namespace: namespace, Name: name}, &p); err != nil {
			t.Fatalf("reading SidecarProfile %s/%s: %v", namespace, name, err)
		}
		if c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionReady); c != nil && c.ObservedGeneration == p.Generation {
			return c
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("SidecarProfile %s/%s got no Ready condition within 20s", namespace, name)
	return nil
}

func newPod(namespace, name string, annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Annotations: annotations},
		Spec: corev1.PodSpec{
			// envtest runs without the ServiceAccount admission plugin,
			// which sets this in a real cluster.
			ServiceAccountName: "default",
			Containers:         []corev1.Container{{Name: "app", Image: "registry.example.com/web:1.0"}},
		},
	}
}

var injectTrue = map[string]string{webhook.AnnotationInject: "true"}

// checkInjected checks the parts of an injected Pod that say the API
// server applied the whole patch.
func checkInjected(t *testing.T, pod *corev1.Pod, native bool) webhook.Status {
	t.Helper()
	raw, ok := pod.Annotations[webhook.AnnotationStatus]
	if !ok {
		t.Fatalf("pod %s/%s has no %s annotation: not injected", pod.Namespace, pod.Name, webhook.AnnotationStatus)
	}
	var st webhook.Status
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		t.Fatalf("%s = %q: %v", webhook.AnnotationStatus, raw, err)
	}
	if len(pod.Spec.InitContainers) == 0 {
		t.Fatalf("pod %s has no init containers", pod.Name)
	}
	first := pod.Spec.InitContainers[0]
	wantFirst := webhook.SidecarName
	if !native {
		wantFirst = webhook.InitName
	}
	if first.Name != wantFirst {
		t.Errorf("first init container = %q, want %q", first.Name, wantFirst)
	}
	if native && (first.RestartPolicy == nil || *first.RestartPolicy != corev1.ContainerRestartPolicyAlways || first.StartupProbe == nil) {
		t.Errorf("sidecar %q is not a native sidecar with a startup probe: restartPolicy %v, startupProbe %v", first.Name, first.RestartPolicy, first.StartupProbe)
	}
	app := pod.Spec.Containers[0]
	var mounted bool
	for _, m := range app.VolumeMounts {
		mounted = mounted || (m.Name == webhook.VolumeIdentity && m.MountPath == webhook.IdentityDir && m.ReadOnly)
	}
	if !mounted {
		t.Errorf("app container mounts %+v, want %s read-only at %s", app.VolumeMounts, webhook.VolumeIdentity, webhook.IdentityDir)
	}
	var url string
	for _, e := range app.Env {
		if e.Name == webhook.EnvSidecarURL {
			url = e.Value
		}
	}
	if url == "" {
		t.Errorf("app container has no %s", webhook.EnvSidecarURL)
	}
	if pod.Annotations[webhook.AnnotationDefaultContainer] != "app" {
		t.Errorf("%s = %q, want app", webhook.AnnotationDefaultContainer, pod.Annotations[webhook.AnnotationDefaultContainer])
	}
	return st
}

func checkUntouched(t *testing.T, pod *corev1.Pod) {
	t.Helper()
	if _, ok := pod.Annotations[webhook.AnnotationStatus]; ok {
		t.Errorf("pod %s/%s was injected, want untouched", pod.Namespace, pod.Name)
	}
	if len(pod.Spec.InitContainers) != 0 || len(pod.Spec.Volumes) != 0 || len(pod.Spec.Containers[0].Env) != 0 {
		t.Errorf("pod %s/%s was changed: init containers %d, volumes %d, env %d", pod.Namespace, pod.Name,
			len(pod.Spec.InitContainers), len(pod.Spec.Volumes), len(pod.Spec.Containers[0].Env))
	}
}

func TestWebhookConfigurationInstalled(t *testing.T) {
	var cfg admissionregv1.MutatingWebhookConfiguration
	if err := k8s.Get(t.Context(), client.ObjectKey{Name: "athenz-injector"}, &cfg); err != nil {
		t.Fatalf("reading MutatingWebhookConfiguration athenz-injector: %v", err)
	}
	// Pods fail closed, the workload webhook open (docs/injector.md).
	want := map[string]admissionregv1.FailurePolicyType{
		"pods.injector.athenz.io":           admissionregv1.Fail,
		"namespace-pods.injector.athenz.io": admissionregv1.Fail,
		"workloads.injector.athenz.io":      admissionregv1.Ignore,
	}
	for _, wh := range cfg.Webhooks {
		policy, ok := want[wh.Name]
		if !ok {
			t.Errorf("unexpected webhook %q", wh.Name)
			continue
		}
		delete(want, wh.Name)
		if wh.FailurePolicy == nil || *wh.FailurePolicy != policy {
			t.Errorf("%s: failurePolicy %v, want %s", wh.Name, wh.FailurePolicy, policy)
		}
		if wh.ReinvocationPolicy == nil || *wh.ReinvocationPolicy != admissionregv1.IfNeededReinvocationPolicy {
			t.Errorf("%s: reinvocationPolicy %v, want IfNeeded", wh.Name, wh.ReinvocationPolicy)
		}
		if wh.SideEffects == nil || *wh.SideEffects != admissionregv1.SideEffectClassNone {
			t.Errorf("%s: sideEffects %v, want None", wh.Name, wh.SideEffects)
		}
		if wh.TimeoutSeconds == nil || *wh.TimeoutSeconds > 10 {
			t.Errorf("%s: timeoutSeconds %v, want at most 10", wh.Name, wh.TimeoutSeconds)
		}
		if len(wh.MatchConditions) == 0 {
			t.Errorf("%s: no matchConditions", wh.Name)
		}
	}
	for name := range want {
		t.Errorf("webhook %q missing", name)
	}
}

func TestPodMutated(t *testing.T) {
	ns := newNamespace(t, "pod-mutated", nil)
	createProfile(t, validProfile(injectorNamespace, "default"))
	before := admissionCount(t, "pods", webhook.OutcomeInjected)

	pod := newPod(ns, "web", injectTrue)
	if err := k8s.Create(t.Context(), pod); err != nil {
		t.Fatalf("creating pod: %v", err)
	}
	st := checkInjected(t, pod, true)
	if st.Profile != injectorNamespace+"/default" || st.Domain != "pod.mutated" || st.Service != "default" {
		t.Errorf("status = %+v, want profile %s/default, domain pod.mutated, service default", st, injectorNamespace)
	}
	var stored corev1.Pod
	if err := k8s.Get(t.Context(), client.ObjectKeyFromObject(pod), &stored); err != nil {
		t.Fatalf("reading pod back: %v", err)
	}
	checkInjected(t, &stored, true)
	if got := admissionCount(t, "pods", webhook.OutcomeInjected); got != before+1 {
		t.Errorf("athenz_injector_admissions_total{pods,injected} = %v, want %v", got, before+1)
	}
}

func TestDryRunPodMutated(t *testing.T) {
	ns := newNamespace(t, "dry-run", nil)
	// The namespace's own profile, within what the cluster's allows.
	createProfile(t, validProfile(injectorNamespace, "default"))
	createProfile(t, validProfile(ns, "default"))
	pod := newPod(ns, "web", injectTrue)
	if err := k8s.Create(t.Context(), pod, client.DryRunAll); err != nil {
		t.Fatalf("creating pod with dry run: %v", err)
	}
	st := checkInjected(t, pod, true)
	if st.Profile != ns+"/default" {
		t.Errorf("profile = %q, want the namespace's own %s/default", st.Profile, ns)
	}
	err := k8s.Get(t.Context(), client.ObjectKeyFromObject(pod), &corev1.Pod{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("reading the dry-run pod = %v, want not found", err)
	}
}

func TestPodUntouched(t *testing.T) {
	ns := newNamespace(t, "untouched", nil)
	createProfile(t, validProfile(injectorNamespace, "default"))
	tests := []struct {
		name string
		pod  *corev1.Pod
	}{
		{name: "no opt-in", pod: newPod(ns, "plain", nil)},
		{name: "opted out", pod: newPod(ns, "opted-out", map[string]string{webhook.AnnotationInject: "false"})},
		{name: "kube-system", pod: newPod("kube-system", "system", injectTrue)},
		{name: "injector namespace", pod: newPod(injectorNamespace, "own", injectTrue)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := k8s.Create(t.Context(), tt.pod); err != nil {
				t.Fatalf("creating pod: %v", err)
			}
			t.Cleanup(func() { _ = k8s.Delete(context.Background(), tt.pod) })
			checkUntouched(t, tt.pod)
		})
	}
}

func TestNamespaceLabelOptIn(t *testing.T) {
	ns := newNamespace(t, "labelled", map[string]string{webhook.NamespaceLabelInject: webhook.NamespaceInjectEnabled})
	createProfile(t, validProfile(injectorNamespace, "default"))

	in := newPod(ns, "in", nil)
	if err := k8s.Create(t.Context(), in); err != nil {
		t.Fatalf("creating pod: %v", err)
	}
	checkInjected(t, in, true)

	out := newPod(ns, "out", map[string]string{webhook.AnnotationInject: "false"})
	if err := k8s.Create(t.Context(), out); err != nil {
		t.Fatalf("creating pod: %v", err)
	}
	checkUntouched(t, out)
}

func TestProfileVariantsPassValidation(t *testing.T) {
	ns := newNamespace(t, "variants", nil)
	createProfile(t, validProfile(injectorNamespace, "default"))
	never := validProfile(ns, "legacy")
	never.Spec.Sidecar.NativeSidecar = v1alpha1.NativeSidecarNever
	never.Spec.ZTS.CA = &v1alpha1.CABundle{ConfigMap: &v1alpha1.KeyReference{Name: "zts-ca", Key: "ca.pem"}}
	createProfile(t, never)
	keyFile := &v1alpha1.SidecarProfile{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "key-file"},
		Spec: v1alpha1.SidecarProfileSpec{
			ZTS: v1alpha1.ZTS{URL: "https://zts.example.com/zts/v1"},
			Identity: v1alpha1.Identity{
				Mode:    v1alpha1.IdentityKeyFile,
				KeyFile: &v1alpha1.KeyFileIdentity{Secret: v1alpha1.KeyReference{Name: "key", Key: "key.pem"}},
			},
		},
	}
	createProfile(t, keyFile)
	createProfile(t, validProfile(ns, "default"))

	legacy := newPod(ns, "legacy", map[string]string{webhook.AnnotationInject: "true", webhook.AnnotationProfile: "legacy"})
	if err := k8s.Create(t.Context(), legacy); err != nil {
		t.Fatalf("creating pod with nativeSidecar Never: %v", err)
	}
	checkInjected(t, legacy, false)
	if n := len(legacy.Spec.Containers); n != 2 || legacy.Spec.Containers[1].Name != webhook.SidecarName {
		t.Errorf("containers = %d, want app and %s", n, webhook.SidecarName)
	}

	kf := newPod(ns, "key-file", map[string]string{webhook.AnnotationInject: "true", webhook.AnnotationProfile: "key-file"})
	if err := k8s.Create(t.Context(), kf); err != nil {
		t.Fatalf("creating pod with a key-file profile: %v", err)
	}
	checkInjected(t, kf, true)

	host := newPod(ns, "host", injectTrue)
	host.Spec.HostNetwork = true
	if err := k8s.Create(t.Context(), host); err != nil {
		t.Fatalf("creating hostNetwork pod: %v", err)
	}
	if st := checkInjected(t, host, true); !st.Socket {
		t.Errorf("hostNetwork pod status %+v, want socket", st)
	}
}

func TestDenials(t *testing.T) {
	ns := newNamespace(t, "denials", nil)
	createProfile(t, validProfile(injectorNamespace, "default"))
	tests := []struct {
		name        string
		annotations map[string]string
		want        []string
	}{
		{
			name:        "missing profile",
			annotations: map[string]string{webhook.AnnotationInject: "true", webhook.AnnotationProfile: "nope"},
			want:        []string{`looked for "denials/nope" and "athenz-injector/nope"`},
		},
		{
			name:        "invalid annotation",
			annotations: map[string]string{webhook.AnnotationInject: "true", webhook.AnnotationSidecarCPU: "fast"},
			want:        []string{webhook.AnnotationSidecarCPU, `"fast"`},
		},
		{
			name:        "invalid inject value",
			annotations: map[string]string{webhook.AnnotationInject: "yes"},
			want:        []string{webhook.AnnotationInject},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := k8s.Create(t.Context(), newPod(ns, "denied", tt.annotations))
			if err == nil {
				t.Fatal("creating the pod succeeded, want a denial")
			}
			if !apierrors.IsForbidden(err) {
				t.Errorf("creating the pod = %v, want Forbidden (denied)", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("denial %q does not say %q", err, w)
				}
			}
		})
	}

	// Without an annotation naming one, both "default" profiles are looked for.
	other := newNamespace(t, "no-profile", nil)
	var p v1alpha1.SidecarProfile
	if err := k8s.Get(t.Context(), client.ObjectKey{Namespace: injectorNamespace, Name: "default"}, &p); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Delete(t.Context(), &p); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := k8s.Create(t.Context(), newPod(other, "denied", injectTrue))
		if err != nil && strings.Contains(err.Error(), `looked for "no-profile/default" and "athenz-injector/default"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("creating a pod with no profile anywhere = %v, want a denial naming both default profiles", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestDeploymentTemplate(t *testing.T) {
	ns := newNamespace(t, "workloads", nil)
	labels := map[string]string{"app": "web"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example.com/web:1.0"}}},
			},
		},
	}
	if err := k8s.Create(t.Context(), dep); err != nil {
		t.Fatalf("creating deployment: %v", err)
	}
	if _, ok := dep.Spec.Template.Annotations[webhook.AnnotationInject]; ok {
		t.Fatalf("unannotated deployment's template got %s", webhook.AnnotationInject)
	}

	// kubectl annotate deployment web athenz.io/inject=true
	patch := []byte(`{"metadata":{"annotations":{"athenz.io/inject":"true"}}}`)
	if err := k8s.Patch(t.Context(), dep, client.RawPatch("application/merge-patch+json", patch)); err != nil {
		t.Fatalf("annotating deployment: %v", err)
	}
	if got := dep.Spec.Template.Annotations[webhook.AnnotationInject]; got != "true" {
		t.Errorf("after annotating, template %s = %q, want true", webhook.AnnotationInject, got)
	}

	// kubectl annotate deployment web athenz.io/inject-
	patch = []byte(`{"metadata":{"annotations":{"athenz.io/inject":null}}}`)
	if err := k8s.Patch(t.Context(), dep, client.RawPatch("application/merge-patch+json", patch)); err != nil {
		t.Fatalf("removing the annotation: %v", err)
	}
	if got, ok := dep.Spec.Template.Annotations[webhook.AnnotationInject]; ok {
		t.Errorf("after removing the annotation, template %s = %q, want none", webhook.AnnotationInject, got)
	}
	if _, ok := dep.Annotations[webhook.AnnotationInjectCopied]; ok {
		t.Errorf("after removing the annotation, deployment still has %s", webhook.AnnotationInjectCopied)
	}
}

func TestProfileStatus(t *testing.T) {
	ns := newNamespace(t, "status", nil)
	good := validProfile(ns, "good")
	createProfile(t, good)
	if c := waitCondition(t, ns, "good"); c.Status != metav1.ConditionTrue {
		t.Errorf("Ready = %s (%s), want True", c.Status, c.Message)
	}
	var p v1alpha1.SidecarProfile
	if err := k8s.Get(t.Context(), client.ObjectKeyFromObject(good), &p); err != nil {
		t.Fatal(err)
	}
	if p.Status.InjectorVersion != "v0.0.0-test" {
		t.Errorf("status.injectorVersion = %q, want the injector's version v0.0.0-test", p.Status.InjectorVersion)
	}
	bad := validProfile(ns, "bad")
	bad.Spec.DomainTemplate = "k8s.{cluster}"
	createProfile(t, bad)
	c := waitCondition(t, ns, "bad")
	if c.Status != metav1.ConditionFalse || c.Reason != v1alpha1.ReasonInvalid || !strings.Contains(c.Message, "spec.domainTemplate") {
		t.Errorf("Ready = %s/%s %q, want False/Invalid naming spec.domainTemplate", c.Status, c.Reason, c.Message)
	}
}
