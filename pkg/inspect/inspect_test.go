package inspect_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/athenz-injector/athenz-injector/api/v1alpha1"
	"github.com/athenz-injector/athenz-injector/pkg/inspect"
	"github.com/athenz-injector/athenz-injector/pkg/webhook"
	"github.com/athenz-injector/athenz-injector/pkg/webhook/app"
)

// world is a small cluster: the injector's webhook configuration, a
// cluster-wide profile, and Pods in every state Status and Why tell apart.
func world(t *testing.T) client.Client {
	t.Helper()
	s, err := app.NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	created := metav1.NewTime(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	fail := admissionregv1.Fail
	mwc := &admissionregv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "athenz-injector", CreationTimestamp: created},
		Webhooks: []admissionregv1.MutatingWebhook{{
			Name:              inspect.PodWebhook,
			ClientConfig:      admissionregv1.WebhookClientConfig{Service: &admissionregv1.ServiceReference{Namespace: "athenz-injector", Name: "athenz-injector-webhook"}},
			FailurePolicy:     &fail,
			NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"kube-system", "athenz-injector", "legacy"}}}},
		}},
	}
	profile := &v1alpha1.SidecarProfile{
		ObjectMeta: metav1.ObjectMeta{Namespace: "athenz-injector", Name: "default", Generation: 3},
		Spec: v1alpha1.SidecarProfileSpec{
			ZTS:      v1alpha1.ZTS{URL: "https://zts.example.com:4443/zts/v1"},
			Identity: v1alpha1.Identity{Provider: "sys.auth.k8s", DNSSuffix: "athenz.example.com"},
			Sidecar:  v1alpha1.Sidecar{Image: "sidecar:v2"},
		},
		Status: v1alpha1.SidecarProfileStatus{InjectorVersion: "v1"},
	}
	statusBy := func(injector, image string, gen int64) string {
		b, _ := json.Marshal(webhook.Status{Version: injector, Profile: "athenz-injector/default", ProfileGeneration: gen, Domain: "shop", Service: "web", Image: image, NativeSidecar: true})
		return string(b)
	}
	status := func(image string, gen int64) string { return statusBy("v1", image, gen) }
	pod := func(ns, name string, annotations map[string]string, ready bool) *corev1.Pod {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: annotations, CreationTimestamp: metav1.NewTime(created.Add(time.Hour))},
			Spec:       corev1.PodSpec{ServiceAccountName: "web", NodeName: "node-1", Containers: []corev1.Container{{Name: "app", Image: "app"}}},
		}
		if _, ok := annotations[webhook.AnnotationStatus]; ok {
			p.Status.InitContainerStatuses = []corev1.ContainerStatus{{Name: webhook.SidecarName, Ready: ready}}
		}
		return p
	}
	objs := []client.Object{
		mwc, profile,
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"kubernetes.io/metadata.name": "shop"}}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "legacy", Labels: map[string]string{"kubernetes.io/metadata.name": "legacy"}}},
		pod("shop", "current", map[string]string{webhook.AnnotationInject: "true", webhook.AnnotationStatus: status("sidecar:v2", 3)}, true),
		pod("shop", "old", map[string]string{webhook.AnnotationInject: "true", webhook.AnnotationStatus: status("sidecar:v1", 2)}, true),
		pod("shop", "sick", map[string]string{webhook.AnnotationInject: "true", webhook.AnnotationStatus: status("sidecar:v2", 3)}, false),
		pod("shop", "drifted", map[string]string{webhook.AnnotationInject: "true", webhook.AnnotationStatus: statusBy("v0", "sidecar:v2", 3)}, true),
		pod("shop", "plain", nil, false),
		pod("shop", "missed", map[string]string{webhook.AnnotationInject: "true"}, false),
		pod("legacy", "excluded", map[string]string{webhook.AnnotationInject: "true"}, false),
		pod("shop", "typo", map[string]string{webhook.AnnotationInject: "yes"}, false),
	}
	return fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).Build()
}

func TestStatus(t *testing.T) {
	c := world(t)
	inj, err := inspect.FindInjector(t.Context(), c, "")
	if err != nil || inj.Namespace != "athenz-injector" {
		t.Fatalf("FindInjector = %+v, %v; want namespace athenz-injector from the webhook's Service", inj, err)
	}
	pods, err := inspect.Status(t.Context(), c, inspect.StatusOptions{Namespace: "shop", Injector: inj})
	if err != nil {
		t.Fatal(err)
	}
	flags := map[string]string{}
	for _, p := range pods {
		flags[p.Name] = p.Flag()
	}
	want := map[string]string{"current": "OK", "old": "OUTDATED", "sick": "UNHEALTHY", "missed": "NOT-INJECTED", "drifted": "OUTDATED"}
	for name, f := range want {
		if flags[name] != f {
			t.Errorf("%s flagged %q, want %q (all: %v)", name, flags[name], f, flags)
		}
	}
	if _, ok := flags["plain"]; ok {
		t.Errorf("status lists a Pod that did not opt in")
	}
	var out bytes.Buffer
	if err := inspect.WriteStatus(&out, pods); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"outdated: image sidecar:v1, the profile gives sidecar:v2", "outdated: profile changed since (generation 2 -> 3)", "unhealthy: sidecar not ready", "outdated: injected by injector v0, the profile's injector is v1 now", "sidecar:v2     athenz-injector/default  -         3     2"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("status output lacks %q:\n%s", s, out.String())
		}
	}
}

func TestWhy(t *testing.T) {
	c := world(t)
	inj, err := inspect.FindInjector(t.Context(), c, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ ns, pod, want string }{
		{"shop", "current", "INJECTED by injector v1 with SidecarProfile athenz-injector/default: identity shop.web"},
		{"shop", "old", "outdated: image sidecar:v1"},
		{"shop", "plain", "NOT INJECTED: it does not opt in"},
		{"shop", "typo", "NOT INJECTED: the injector refuses this Pod's annotations: annotation athenz.io/inject"},
		{"shop", "missed", "The injector would inject it now with SidecarProfile athenz-injector/default"},
		{"legacy", "excluded", "does not select namespace legacy"},
	} {
		e, err := inspect.Why(t.Context(), c, inj, tt.ns, tt.pod)
		if err != nil {
			t.Fatalf("Why(%s/%s): %v", tt.ns, tt.pod, err)
		}
		var out bytes.Buffer
		if err := e.Write(&out); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), tt.want) {
			t.Errorf("Why(%s/%s):\n%s\nwant it to say %q", tt.ns, tt.pod, out.String(), tt.want)
		}
	}
}
