package webhook

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/athenz-injector/athenz-injector/api/v1alpha1"
)

func testScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

func podRequest(t *testing.T, pod *corev1.Pod) admission.Request {
	t.Helper()
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		Operation: admissionv1.Create,
		Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		Namespace: pod.Namespace,
		Name:      pod.Name,
		Object:    runtime.RawExtension{Raw: raw},
	}}
}

func TestPodHandler(t *testing.T) {
	base := loadCase(t, "one-container").profile
	profile := func(ns, name string) client.Object {
		p := base.DeepCopy()
		p.Namespace, p.Name = ns, name
		return p
	}
	namespace := func(name string, labels map[string]string) client.Object {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	}
	pod := func(ns string, annotations map[string]string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns, Annotations: annotations},
			Spec:       corev1.PodSpec{ServiceAccountName: "web", Containers: []corev1.Container{{Name: "app", Image: "app"}}},
		}
	}
	inject := map[string]string{AnnotationInject: "true"}
	team := namespace("team", map[string]string{"kubernetes.io/metadata.name": "team"})
	served := func(name string) client.Object {
		p := profile("athenz-injector", name).(*v1alpha1.SidecarProfile)
		p.Spec.IdentityPolicy.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "team"}}
		return p
	}
	revision := func(name, rev string) client.Object {
		p := served(name).(*v1alpha1.SidecarProfile)
		p.Spec.Revision = rev
		return p
	}
	labelled := func(p *corev1.Pod, labels map[string]string) *corev1.Pod {
		p.Labels = labels
		return p
	}
	canaryNS := namespace("team", map[string]string{"kubernetes.io/metadata.name": "team", LabelRevision: "canary"})
	tests := []struct {
		name        string
		objects     []client.Object
		pod         *corev1.Pod
		wantOutcome string
		wantProfile string // for injected Pods
		wantMessage string // part of the denial
	}{
		{
			name:        "profile in the pod's namespace first",
			objects:     []client.Object{team, profile("team", "default"), profile("athenz-injector", "default")},
			pod:         pod("team", inject),
			wantOutcome: OutcomeInjected, wantProfile: "team/default",
		},
		{
			name:        "then the injector's namespace",
			objects:     []client.Object{team, profile("athenz-injector", "default")},
			pod:         pod("team", inject),
			wantOutcome: OutcomeInjected, wantProfile: "athenz-injector/default",
		},
		{
			name:        "named profile from the injector's namespace that serves the namespace",
			objects:     []client.Object{team, served("shared")},
			pod:         pod("team", map[string]string{AnnotationInject: "true", AnnotationProfile: "shared"}),
			wantOutcome: OutcomeInjected, wantProfile: "athenz-injector/shared",
		},
		{
			name:        "named profile from the injector's namespace that does not serve it",
			objects:     []client.Object{team, profile("athenz-injector", "shared")},
			pod:         pod("team", map[string]string{AnnotationInject: "true", AnnotationProfile: "shared"}),
			wantOutcome: OutcomeDenied, wantMessage: `SidecarProfile athenz-injector/shared does not serve namespace "team"`,
		},
		{
			name:        "namespace's own profile without a profile of the injector's namespace",
			objects:     []client.Object{team, profile("team", "default")},
			pod:         pod("team", inject),
			wantOutcome: OutcomeDenied, wantMessage: `identity policy: namespace "team" may not be team.web`,
		},
		{
			name:        "domain annotation the policy does not allow",
			objects:     []client.Object{team, profile("athenz-injector", "default")},
			pod:         pod("team", map[string]string{AnnotationInject: "true", AnnotationDomain: "payments"}),
			wantOutcome: OutcomeDenied, wantMessage: "identity policy of SidecarProfile athenz-injector/default",
		},
		{
			name:        "revision from the namespace's label",
			objects:     []client.Object{canaryNS, profile("athenz-injector", "default"), revision("default-canary", "canary")},
			pod:         pod("team", inject),
			wantOutcome: OutcomeInjected, wantProfile: "athenz-injector/default-canary",
		},
		{
			name:        "revision from the Pod's label",
			objects:     []client.Object{team, profile("athenz-injector", "default"), revision("default-canary", "canary")},
			pod:         labelled(pod("team", inject), map[string]string{LabelRevision: "canary"}),
			wantOutcome: OutcomeInjected, wantProfile: "athenz-injector/default-canary",
		},
		{
			name:        "profile annotation wins over the revision",
			objects:     []client.Object{canaryNS, profile("athenz-injector", "default"), revision("default-canary", "canary")},
			pod:         pod("team", map[string]string{AnnotationInject: "true", AnnotationProfile: "default"}),
			wantOutcome: OutcomeInjected, wantProfile: "athenz-injector/default",
		},
		{
			name: "a revision profile that does not serve the namespace",
			objects: []client.Object{team, profile("athenz-injector", "default"), func() client.Object {
				p := profile("athenz-injector", "payments-canary").(*v1alpha1.SidecarProfile)
				p.Spec.Revision = "canary"
				return p
			}()},
			pod:         labelled(pod("team", inject), map[string]string{LabelRevision: "canary"}),
			wantOutcome: OutcomeDenied, wantMessage: `SidecarProfile athenz-injector/payments-canary does not serve namespace "team"`,
		},
		{
			name:        "revision nobody has",
			objects:     []client.Object{canaryNS, profile("athenz-injector", "default")},
			pod:         pod("team", inject),
			wantOutcome: OutcomeDenied, wantMessage: `the namespace's label athenz.io/rev asks for revision "canary", and no SidecarProfile in team or athenz-injector has spec.revision "canary"`,
		},
		{
			name:        "revision twice in one namespace",
			objects:     []client.Object{canaryNS, revision("a", "canary"), revision("b", "canary")},
			pod:         pod("team", inject),
			wantOutcome: OutcomeDenied, wantMessage: "athenz-injector/a, athenz-injector/b all have it",
		},
		{
			name:        "no profile",
			objects:     []client.Object{team},
			pod:         pod("team", inject),
			wantOutcome: OutcomeDenied, wantMessage: `looked for "team/default" and "athenz-injector/default"`,
		},
		{
			name:        "bad profile name",
			objects:     []client.Object{team},
			pod:         pod("team", map[string]string{AnnotationInject: "true", AnnotationProfile: "Not A Name"}),
			wantOutcome: OutcomeDenied, wantMessage: AnnotationProfile,
		},
		{
			name:        "namespace opt-in",
			objects:     []client.Object{namespace("team", map[string]string{NamespaceLabelInject: NamespaceInjectEnabled}), profile("team", "default"), profile("athenz-injector", "default")},
			pod:         pod("team", nil),
			wantOutcome: OutcomeInjected, wantProfile: "team/default",
		},
		{
			name:        "namespace without label",
			objects:     []client.Object{namespace("team", nil), profile("team", "default")},
			pod:         pod("team", nil),
			wantOutcome: OutcomeSkipped,
		},
		{
			name:        "namespace not in the cache",
			pod:         pod("team", nil),
			wantOutcome: OutcomeError,
		},
		{
			name:        "injector's own namespace",
			objects:     []client.Object{profile("athenz-injector", "default")},
			pod:         pod("athenz-injector", inject),
			wantOutcome: OutcomeSkipped,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			m, err := NewMetrics(reg)
			if err != nil {
				t.Fatal(err)
			}
			reader := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(tt.objects...).Build()
			h := NewPodHandler(Options{Settings: testSettings, Reader: reader, Metrics: m})
			resp := h.Handle(t.Context(), podRequest(t, tt.pod))

			if got := counterValue(t, m.admissions.WithLabelValues(webhookPods, tt.wantOutcome)); got != 1 {
				t.Fatalf("Handle(%s): outcome %s counted %v times, want 1 (response %+v)", tt.name, tt.wantOutcome, got, resp.Result)
			}
			switch tt.wantOutcome {
			case OutcomeInjected:
				if !resp.Allowed || len(resp.Patches) == 0 {
					t.Fatalf("Handle(%s) = allowed %v with %d patches, want a patch", tt.name, resp.Allowed, len(resp.Patches))
				}
				patch, err := json.Marshal(resp.Patches)
				if err != nil {
					t.Fatal(err)
				}
				if want := `\"profile\":\"` + tt.wantProfile + `\"`; !strings.Contains(string(patch), want) {
					t.Errorf("patch %s, want a status with profile %s", patch[:min(len(patch), 400)], tt.wantProfile)
				}
			case OutcomeSkipped:
				if !resp.Allowed || len(resp.Patches) != 0 {
					t.Errorf("Handle(%s) = allowed %v with %d patches, want allowed unchanged", tt.name, resp.Allowed, len(resp.Patches))
				}
			case OutcomeDenied:
				if resp.Allowed || resp.Result.Code != http.StatusForbidden || !strings.Contains(resp.Result.Message, tt.wantMessage) {
					t.Errorf("Handle(%s) = allowed %v, %d %q; want 403 saying %q", tt.name, resp.Allowed, resp.Result.Code, resp.Result.Message, tt.wantMessage)
				}
			case OutcomeError:
				if resp.Allowed || resp.Result.Code != http.StatusInternalServerError {
					t.Errorf("Handle(%s) = allowed %v, %d; want 500", tt.name, resp.Allowed, resp.Result.Code)
				}
			}
		})
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
