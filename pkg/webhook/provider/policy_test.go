package provider_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/AthenZ/athenz/clients/go/zts"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/athenz-injector/athenz-injector/api/v1alpha1"
	"github.com/athenz-injector/athenz-injector/pkg/webhook"
	"github.com/athenz-injector/athenz-injector/pkg/webhook/provider"
)

// editProfile changes a SidecarProfile for the rest of the test, waits
// until the cache has the change, and puts the spec back at the end.
func editProfile(t *testing.T, key client.ObjectKey, edit func(*v1alpha1.SidecarProfileSpec)) {
	t.Helper()
	var p v1alpha1.SidecarProfile
	if err := cp.k8s.Get(t.Context(), key, &p); err != nil {
		t.Fatal(err)
	}
	before := *p.Spec.DeepCopy()
	set := func(ctx context.Context, spec v1alpha1.SidecarProfileSpec) error {
		var cur v1alpha1.SidecarProfile
		if err := cp.k8s.Get(ctx, key, &cur); err != nil {
			return err
		}
		cur.Spec = spec
		if err := cp.k8s.Update(ctx, &cur); err != nil {
			return err
		}
		return waitCached(ctx, key, &v1alpha1.SidecarProfile{}, func(o client.Object) bool {
			return o.GetGeneration() == cur.Generation
		})
	}
	after := *before.DeepCopy()
	edit(&after)
	if err := set(t.Context(), after); err != nil {
		t.Fatalf("editing SidecarProfile %s: %v", key, err)
	}
	t.Cleanup(func() {
		if err := set(context.Background(), before); err != nil {
			t.Errorf("restoring SidecarProfile %s: %v", key, err)
		}
	})
}

func createProfiles(t *testing.T, profiles ...*v1alpha1.SidecarProfile) {
	t.Helper()
	for _, p := range profiles {
		if err := cp.k8s.Create(t.Context(), p); err != nil {
			t.Fatalf("creating SidecarProfile %s/%s: %v", p.Namespace, p.Name, err)
		}
		t.Cleanup(func() { _ = cp.k8s.Delete(context.Background(), p) })
		if err := waitCached(t.Context(), client.ObjectKeyFromObject(p), &v1alpha1.SidecarProfile{}, func(client.Object) bool { return true }); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPolicyAtRegistration: the provider callback applies the identity
// policy at every register and refresh, on Pods the injector never saw.
// This package installs no webhook, as a cluster where the injector's
// webhook was removed or down (failurePolicy Ignore): every Pod here was
// created unchecked, and ZTS, asking the callback, still signs nothing the
// policy refuses.
func TestPolicyAtRegistration(t *testing.T) {
	const ns = "shop"
	chain := newZTSChain(t)
	defaultKey := client.ObjectKey{Namespace: injectorNS, Name: "default"}

	wantNoCertificate := func(t *testing.T, call string, id *zts.InstanceIdentity, err error, msgs ...string) {
		t.Helper()
		wantRefused(t, call, err, msgs...)
		if id != nil {
			t.Errorf("%s: ZTS issued a certificate: %+v", call, id)
		}
	}

	t.Run("a domain annotation the policy does not allow", func(t *testing.T) {
		pod := newPod(t, podSpec{namespace: ns, name: "intruder", serviceAccount: "web", ip: "10.10.0.1",
			annotations: map[string]string{webhook.AnnotationDomain: "payments"}})
		token := mintToken(t, pod, audience, false)
		for _, domain := range []string{"payments", "shop"} {
			id, _, err := chain.register(t, domain, "web", token, pod)
			wantNoCertificate(t, "register as "+domain+".web", id, err,
				`policy: identity policy of SidecarProfile athenz-injector/default: namespace "shop" may not be payments.web (annotation athenz.io/domain "payments")`,
				"spec.identityPolicy.allowedIdentities")
		}
	})

	t.Run("annotated after its certificate was issued", func(t *testing.T) {
		pod := newPod(t, podSpec{namespace: ns, name: "web-0", serviceAccount: "web", ip: "10.10.0.2"})
		token := mintToken(t, pod, audience, false)
		id, keyPEM, err := chain.register(t, "shop", "web", token, pod)
		if err != nil {
			t.Fatalf("register as shop.web: %v", err)
		}
		patch := []byte(`{"metadata":{"annotations":{"athenz.io/domain":"payments"}}}`)
		if err := cp.k8s.Patch(t.Context(), pod, client.RawPatch(types.MergePatchType, patch)); err != nil {
			t.Fatal(err)
		}
		if err := waitCached(t.Context(), client.ObjectKeyFromObject(pod), &corev1.Pod{}, func(o client.Object) bool {
			return o.GetAnnotations()[webhook.AnnotationDomain] == "payments"
		}); err != nil {
			t.Fatal(err)
		}
		tr, err := chain.fake.Transport([]byte(id.X509Certificate), keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(tr.CloseIdleConnections)
		for _, domain := range []string{"shop", "payments"} {
			csr, _ := sidecarCSR(t, pod, domain, "web")
			refreshed, err := zts.NewClient(chain.fake.URL(), tr).PostInstanceRefreshInformation(providerName, zts.DomainName(domain), "web",
				zts.PathElement(pod.UID), &zts.InstanceRefreshInformation{Csr: csr, AttestationData: token})
			if domain == "payments" && err == nil {
				t.Fatalf("refresh as payments.web with shop.web's certificate: ZTS signed")
			}
			if domain == "shop" {
				wantNoCertificate(t, "refresh as shop.web", refreshed, err, `policy: identity policy of SidecarProfile athenz-injector/default: namespace "shop" may not be payments.web`)
			}
		}
	})

	t.Run("a cluster profile that allows shop.*", func(t *testing.T) {
		editProfile(t, defaultKey, func(s *v1alpha1.SidecarProfileSpec) {
			s.IdentityPolicy.AllowedIdentities = []v1alpha1.AllowedIdentity{{Namespaces: []string{ns}, Domains: []string{"shop.*"}}}
		})
		batch := newPod(t, podSpec{namespace: ns, name: "batch-0", serviceAccount: "web", ip: "10.10.0.3",
			annotations: map[string]string{webhook.AnnotationDomain: "shop.batch"}})
		id, _, err := chain.register(t, "shop.batch", "web", mintToken(t, batch, audience, false), batch)
		if err != nil {
			t.Fatalf("register as shop.batch.web: %v\nprovider log:\n%s", err, chain.logs)
		}
		if id == nil || id.Name != "shop.batch.web" {
			t.Errorf("register as shop.batch.web: identity %+v", id)
		}
		payments := newPod(t, podSpec{namespace: ns, name: "payments-0", serviceAccount: "web", ip: "10.10.0.4",
			annotations: map[string]string{webhook.AnnotationDomain: "payments"}})
		id, _, err = chain.register(t, "payments", "web", mintToken(t, payments, audience, false), payments)
		wantNoCertificate(t, "register as payments.web", id, err,
			`policy: identity policy of SidecarProfile athenz-injector/default: namespace "shop" may not be payments.web`,
			"no entry of its spec.identityPolicy.allowedIdentities allows it for this namespace")

		// A profile in shop that tries to allow payments has no effect.
		widen := clusterProfile(ns, "widen")
		widen.Spec.IdentityPolicy.AllowedIdentities = []v1alpha1.AllowedIdentity{{Namespaces: []string{ns}, Domains: []string{"payments", "shop.*"}}}
		createProfiles(t, widen)
		wide := newPod(t, podSpec{namespace: ns, name: "wide-0", serviceAccount: "web", ip: "10.10.0.5",
			annotations: map[string]string{webhook.AnnotationProfile: "widen", webhook.AnnotationDomain: "payments"}})
		id, _, err = chain.register(t, "payments", "web", mintToken(t, wide, audience, false), wide)
		wantNoCertificate(t, "register as payments.web with the profile shop/widen", id, err,
			`policy: identity policy: namespace "shop" may not be payments.web`, "the namespace's own profile shop/widen can only narrow what those allow")
		// ... while what both allow goes through.
		narrow := newPod(t, podSpec{namespace: ns, name: "narrow-0", serviceAccount: "web", ip: "10.10.0.6",
			annotations: map[string]string{webhook.AnnotationProfile: "widen", webhook.AnnotationDomain: "shop.batch"}})
		if _, _, err := chain.register(t, "shop.batch", "web", mintToken(t, narrow, audience, false), narrow); err != nil {
			t.Errorf("register as shop.batch.web with the profile shop/widen: %v", err)
		}
	})

	t.Run("a profile of the injector's namespace that does not serve shop", func(t *testing.T) {
		builtin := clusterProfile(injectorNS, "builtin")
		media := clusterProfile(injectorNS, "media-only")
		media.Spec.IdentityPolicy.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "media"}}
		createProfiles(t, builtin, media)
		for _, p := range []struct{ name, why string }{
			{"builtin", `only the profile named "default" serves every namespace`},
			{"media-only", "its spec.identityPolicy.namespaceSelector does not select it"},
		} {
			pod := newPod(t, podSpec{namespace: ns, name: "picks-" + p.name, serviceAccount: "web", ip: "10.10.0.7",
				annotations: map[string]string{webhook.AnnotationProfile: p.name}})
			id, _, err := chain.register(t, "shop", "web", mintToken(t, pod, audience, false), pod)
			wantNoCertificate(t, "register with athenz.io/profile "+p.name, id, err,
				`profile: SidecarProfile athenz-injector/`+p.name+` does not serve namespace "shop"`, p.why)
		}
	})

	// The same refusals straight to the handler name the check first and
	// are logged for operators.
	t.Run("logged", func(t *testing.T) {
		pod := newPod(t, podSpec{namespace: ns, name: "logged", serviceAccount: "web", ip: "10.10.0.8",
			annotations: map[string]string{webhook.AnnotationDomain: "payments"}})
		logs := &logBuffer{}
		h := newHandler(t, logs, nil)
		check(t, h, provider.PathRefresh, request(pod, "payments", "web", mintToken(t, pod, audience, false)), http.StatusForbidden, "policy: ")
		for _, want := range []string{`"instance refused"`, `"check"="policy"`, `"namespace"="shop"`, `"pod"="logged"`, `"domain"="payments"`, `"client"=`} {
			if !strings.Contains(logs.String(), want) {
				t.Errorf("log lacks %s:\n%s", want, logs)
			}
		}
	})
}
