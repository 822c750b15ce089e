package app_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/athenz-injector/athenz-injector/api/v1alpha1"
	"github.com/athenz-injector/athenz-injector/pkg/webhook"
	"github.com/athenz-injector/athenz-injector/pkg/webhook/provider"
)

// wantDenied creates pod and wants the injector to deny it with a message
// that says every one of want.
func wantDenied(t *testing.T, pod *corev1.Pod, want ...string) {
	t.Helper()
	err := k8s.Create(t.Context(), pod)
	if err == nil {
		t.Cleanup(func() { _ = k8s.Delete(context.Background(), pod) })
		t.Fatalf("creating pod %s/%s succeeded, want a denial saying %q", pod.Namespace, pod.Name, want)
	}
	if !apierrors.IsForbidden(err) {
		t.Errorf("creating pod %s/%s = %v, want Forbidden (denied)", pod.Namespace, pod.Name, err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("denial %q does not say %q", err, w)
		}
	}
}

// updateProfile changes p's spec and waits until the injector has seen
// the new generation (the reconciler, reading its cache, reports it).
func updateProfile(t *testing.T, p *v1alpha1.SidecarProfile, edit func(*v1alpha1.SidecarProfileSpec)) {
	t.Helper()
	if err := k8s.Get(t.Context(), client.ObjectKeyFromObject(p), p); err != nil {
		t.Fatal(err)
	}
	edit(&p.Spec)
	if err := k8s.Update(t.Context(), p); err != nil {
		t.Fatalf("updating SidecarProfile %s/%s: %v", p.Namespace, p.Name, err)
	}
	waitCondition(t, p.Namespace, p.Name)
}

// withoutWebhooks removes the injector's webhook configuration until f
// returns, as when someone deleted it: Pods are then admitted unchecked.
func withoutWebhooks(t *testing.T, f func()) {
	t.Helper()
	var cfg admissionregv1.MutatingWebhookConfiguration
	key := client.ObjectKey{Name: "athenz-injector"}
	if err := k8s.Get(t.Context(), key, &cfg); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Delete(t.Context(), &cfg); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cfg.ResourceVersion, cfg.UID, cfg.CreationTimestamp, cfg.ManagedFields = "", "", metav1.Time{}, nil
		if err := k8s.Create(context.Background(), &cfg); err != nil {
			t.Fatalf("restoring the webhook configuration: %v", err)
		}
		waitWebhookCalled(t, true)
	}()
	waitWebhookCalled(t, false)
	f()
}

// waitWebhookCalled waits until the API server has seen the change of the
// webhook configuration (it reads it from an informer, so a Pod created at
// once may still be sent to the old one): a dry-run create of a Pod the
// policy denies is denied (called) or admitted (not called).
func waitWebhookCalled(t *testing.T, called bool) {
	t.Helper()
	probe := newPod("default", "webhook-probe", map[string]string{webhook.AnnotationInject: "true", webhook.AnnotationDomain: "not-allowed"})
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := k8s.Create(context.Background(), probe.DeepCopy(), client.DryRunAll)
		denied := err != nil && strings.Contains(err.Error(), "denied the request")
		if denied == called {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the API server still calls the webhook: %v (want called=%v)", err, called)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// confirm asks the suite injector's provider callback to confirm pod as
// domain.service, attested with a token the API server issues for the Pod.
func confirm(t *testing.T, pod *corev1.Pod, domain, service string) (int, string) {
	t.Helper()
	cs, err := kubernetes.NewForConfig(controlPlane.Config)
	if err != nil {
		t.Fatal(err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Spec.ServiceAccountName}}
	if err := k8s.Create(t.Context(), sa); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	tr, err := cs.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(t.Context(), sa.Name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{
			Audiences:         []string{"athenz"},
			ExpirationSeconds: ptr.To[int64](600),
			BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest for pod %s/%s: %v", pod.Namespace, pod.Name, err)
	}
	body, err := json.Marshal(provider.InstanceConfirmation{
		Provider: "sys.auth.k8s", Domain: domain, Service: service, AttestationData: tr.Status.Token,
		Attributes: map[string]string{"instanceId": string(pod.UID)},
	})
	if err != nil {
		t.Fatal(err)
	}
	// The test checks the answer, not who signed the callback's
	// certificate (TestProviderServesWebhookCertificate does).
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	defer c.CloseIdleConnections()
	resp, err := c.Post("https://"+providerAddr+provider.PathInstance, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("POST to the provider callback: %v", err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

// TestIdentityPolicyAdmission: the identity policy at admission, on the
// real API server and the injector's own webhook, and the same Pod, let in
// with the webhook removed, refused by the same injector's provider
// callback (pkg/webhook/provider's TestPolicyAtRegistration takes it on
// through ZTS).
func TestIdentityPolicyAdmission(t *testing.T) {
	const ns = "shop"
	newNamespace(t, ns, nil)
	cluster := validProfile(injectorNamespace, "default")
	createProfile(t, cluster)
	annotated := func(name string, extra map[string]string) *corev1.Pod {
		a := map[string]string{webhook.AnnotationInject: "true"}
		for k, v := range extra {
			a[k] = v
		}
		return newPod(ns, name, a)
	}

	t.Run("a domain annotation is denied with the policy named", func(t *testing.T) {
		wantDenied(t, annotated("payments", map[string]string{webhook.AnnotationDomain: "payments"}),
			`identity policy of SidecarProfile athenz-injector/default: namespace "shop" may not be payments.default (annotation athenz.io/domain "payments")`,
			"to allow another, list it in spec.identityPolicy.allowedIdentities")
	})

	t.Run("with the webhook removed the callback refuses it", func(t *testing.T) {
		pod := annotated("unchecked", map[string]string{webhook.AnnotationDomain: "payments"})
		withoutWebhooks(t, func() {
			if err := k8s.Create(t.Context(), pod); err != nil {
				t.Fatalf("creating the pod without the webhook: %v", err)
			}
		})
		t.Cleanup(func() { _ = k8s.Delete(context.Background(), pod) })
		checkUntouched(t, pod)
		for _, domain := range []string{"payments", "shop"} {
			status, body := confirm(t, pod, domain, "default")
			if status != http.StatusForbidden || !strings.Contains(body, `policy: identity policy of SidecarProfile athenz-injector/default: namespace \"shop\" may not be payments.default`) {
				t.Errorf("callback for %s.default: %d %s, want 403 naming the policy", domain, status, body)
			}
		}
	})

	t.Run("a profile that allows shop.* lets shop.batch through", func(t *testing.T) {
		updateProfile(t, cluster, func(s *v1alpha1.SidecarProfileSpec) {
			s.IdentityPolicy.AllowedIdentities = []v1alpha1.AllowedIdentity{{Namespaces: []string{ns}, Domains: []string{"shop.*"}}}
		})
		pod := annotated("batch", map[string]string{webhook.AnnotationDomain: "shop.batch"})
		if err := k8s.Create(t.Context(), pod); err != nil {
			t.Fatalf("creating a pod as shop.batch: %v", err)
		}
		t.Cleanup(func() { _ = k8s.Delete(context.Background(), pod) })
		if st := checkInjected(t, pod, true); st.Domain != "shop.batch" || st.Service != "default" {
			t.Errorf("status %+v, want shop.batch.default", st)
		}
		if status, body := confirm(t, pod, "shop.batch", "default"); status != http.StatusOK {
			t.Errorf("callback for shop.batch.default: %d %s, want 200", status, body)
		}
		wantDenied(t, annotated("payments", map[string]string{webhook.AnnotationDomain: "payments"}),
			`may not be payments.default`, "no entry of its spec.identityPolicy.allowedIdentities allows it for this namespace")

		// A profile in shop that tries to allow payments has no effect.
		widen := validProfile(ns, "widen")
		widen.Spec.IdentityPolicy.AllowedIdentities = []v1alpha1.AllowedIdentity{{Namespaces: []string{ns}, Domains: []string{"payments"}}}
		createProfile(t, widen)
		wantDenied(t, annotated("widened", map[string]string{webhook.AnnotationProfile: "widen", webhook.AnnotationDomain: "payments"}),
			`identity policy: namespace "shop" may not be payments.default`, "the namespace's own profile shop/widen can only narrow what those allow")
	})

	t.Run("a profile of the injector's namespace not offered to shop", func(t *testing.T) {
		builtin := validProfile(injectorNamespace, "builtin")
		createProfile(t, builtin)
		wantDenied(t, annotated("builtin", map[string]string{webhook.AnnotationProfile: "builtin"}),
			`SidecarProfile athenz-injector/builtin does not serve namespace "shop"`, "spec.identityPolicy.namespaceSelector")
		updateProfile(t, builtin, func(s *v1alpha1.SidecarProfileSpec) {
			s.IdentityPolicy.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}}
		})
		pod := annotated("offered", map[string]string{webhook.AnnotationProfile: "builtin"})
		if err := k8s.Create(t.Context(), pod); err != nil {
			t.Fatalf("creating a pod with a profile offered to shop: %v", err)
		}
		t.Cleanup(func() { _ = k8s.Delete(context.Background(), pod) })
		if st := checkInjected(t, pod, true); st.Profile != injectorNamespace+"/builtin" {
			t.Errorf("status %+v, want profile %s/builtin", st, injectorNamespace)
		}
	})
}

// TestIdentityPolicySchema: the CRD's own rules refuse at kubectl apply an
// entry that would let every namespace claim a fixed domain, and the
// injector reports what the schema cannot check in the profile's status.
func TestIdentityPolicySchema(t *testing.T) {
	ns := newNamespace(t, "policy-schema", nil)
	everyone := validProfile(ns, "everyone")
	everyone.Spec.IdentityPolicy.AllowedIdentities = []v1alpha1.AllowedIdentity{{Domains: []string{"payments"}}}
	err := k8s.Create(t.Context(), everyone)
	if err == nil || !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.identityPolicy.allowedIdentities[0].domains") ||
		!strings.Contains(err.Error(), "each domain must contain {namespace}") {
		t.Errorf("creating a profile that lets every namespace claim payments: %v, want Invalid naming spec.identityPolicy.allowedIdentities[0].domains", err)
	}

	bad := validProfile(ns, "bad-pattern")
	bad.Spec.IdentityPolicy.AllowedIdentities = []v1alpha1.AllowedIdentity{{Namespaces: []string{ns}, Domains: []string{"{cluster}.*"}}}
	createProfile(t, bad)
	if c := waitCondition(t, ns, bad.Name); c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, "spec.identityPolicy.allowedIdentities[0].domains[0]") {
		t.Errorf("Ready = %s %q, want False naming spec.identityPolicy.allowedIdentities[0].domains[0]", c.Status, c.Message)
	}
}
