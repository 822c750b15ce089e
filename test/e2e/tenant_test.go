package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/athenz-injector/athenz-injector/api/v1alpha1"
	"github.com/athenz-injector/athenz-injector/pkg/tokens/ztsfake"
	"github.com/athenz-injector/athenz-injector/pkg/webhook"
	"github.com/athenz-injector/athenz-injector/test/framework"
)

// TestTenantBoundary is docs/security.md's tenant boundary on the real
// node: a tenant of namespace shop tries to become payments, at admission
// and by going around it, and the identity policy holds at both doors.
//
// It is not parallel: it edits the chart's profile and removes the
// webhook configuration for a moment, so it runs alone, before the
// parallel tests start.
func TestTenantBoundary(t *testing.T) {
	const ns = "shop"
	// The namespace may carry identity annotations as far as the
	// chart's ValidatingAdmissionPolicy goes, so that what decides below
	// is the identity policy.
	newNamespace(t, ns, map[string]string{"athenz.io/identity-overrides": "allowed"})
	ctx := t.Context()
	const chartPolicy = "identity policy of SidecarProfile " + framework.ReleaseNamespace + "/" + framework.ProfileName

	t.Run("a foreign domain is denied at admission, naming the policy", func(t *testing.T) {
		err := cluster.Client.Create(ctx, injectedPod(ns, "intruder", map[string]string{webhook.AnnotationDomain: "payments"}))
		wantDenied(t, err, chartPolicy, `namespace "shop" may not be payments.web`, "spec.identityPolicy.allowedIdentities")
	})

	t.Run("around admission the callback refuses and ZTS issues no certificate", func(t *testing.T) {
		legit := waitReady(t, createPod(t, injectedPod(ns, "web", nil)), 2*time.Minute)
		// The tenant copies its own injected Pod, names payments in the
		// sidecar's environment and creates it while the webhook is gone.
		intruder := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "copy", Labels: map[string]string{"app": "copy"}},
			Spec:       *legit.Spec.DeepCopy(),
		}
		intruder.Spec.NodeName = ""
		setDomain := func(cs []corev1.Container) {
			for i := range cs {
				for j := range cs[i].Env {
					if cs[i].Env[j].Name == "ATHENZ_DOMAIN" {
						cs[i].Env[j].Value = "payments"
					}
				}
			}
		}
		setDomain(intruder.Spec.InitContainers)
		setDomain(intruder.Spec.Containers)
		withoutWebhook(t, ns, func() { createPod(t, intruder) })

		// The callback's refusal, as ZTS passes it on (the log is JSON:
		// its quotes are escaped).
		const refusal = `namespace "shop" maps to domain "shop", not "payments" (SidecarProfile athenz-system/default`
		err := framework.Wait(withTimeout(t, time.Minute), "the refusal in the sidecar's log", func(ctx context.Context) (bool, string, error) {
			// The Pod stays Pending (its sidecar never starts up): kubectl
			// would wait 20 s for it to run before it reads the log.
			log, err := cluster.Kubectl(ctx, "-n", ns, "logs", intruder.Name, "-c", framework.SidecarContainer, "--pod-running-timeout=1s")
			if err != nil {
				return false, err.Error(), nil
			}
			return strings.Contains(strings.ReplaceAll(log, `\"`, `"`), refusal), log, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if n := cluster.ZTS.CallsFor(ztsfake.EndpointInstanceRegister, "payments.web"); n == 0 {
			t.Fatal("the fake ZTS saw no registration as payments.web: the refusal was not the callback's")
		}
		if n := cluster.ConfirmedFor("payments"); n != 0 {
			t.Errorf("the provider callback confirmed %d instances of domain payments, want none", n)
		}
		var p corev1.Pod
		if err := cluster.Client.Get(ctx, key(ns, intruder.Name), &p); err != nil {
			t.Fatal(err)
		}
		if ready, state := framework.PodReady(&p); ready {
			t.Errorf("the copy is Ready (%s) although its identity was refused", state)
		}

		// The Pod's health port answers the network, not only the
		// kubelet: a stranger learns nothing there, neither from the
		// refused Pod nor from the working one.
		for _, c := range []struct {
			pod  *corev1.Pod
			code int
		}{{&p, http.StatusServiceUnavailable}, {legit, http.StatusOK}} {
			pod := c.pod
			code, body := getFromHost(t, pod, "/readyz")
			t.Logf("GET /readyz of %s from the host: %d %s", pod.Name, code, body)
			if code != c.code {
				t.Errorf("GET /readyz of %s from the host = %d, want %d", pod.Name, code, c.code)
			}
			for _, secret := range []string{"payments", "policy", "may not", cluster.ZTS.URL(), "zts", framework.Role, framework.Domain} {
				if strings.Contains(strings.ToLower(body), strings.ToLower(secret)) {
					t.Errorf("GET /readyz of %s from a non-loopback address says %q: %s", pod.Name, secret, body)
				}
			}
		}
	})

	t.Run("a profile allowing shop.* lets shop.batch through and still refuses payments", func(t *testing.T) {
		editChartProfile(t, func(s *v1alpha1.SidecarProfileSpec) {
			s.IdentityPolicy.AllowedIdentities = append(s.IdentityPolicy.AllowedIdentities,
				v1alpha1.AllowedIdentity{Namespaces: []string{ns}, Domains: []string{"shop.*"}})
		})
		cluster.ZTS.Grant(framework.Domain, framework.Role, "shop.batch."+framework.Service)
		batch := injectedPod(ns, "batch", map[string]string{webhook.AnnotationDomain: "shop.batch"})
		err := framework.Wait(withTimeout(t, 30*time.Second), "shop.batch admitted once the injector has the edited profile", func(ctx context.Context) (bool, string, error) {
			err := cluster.Client.Create(ctx, batch.DeepCopy())
			return err == nil, fmt.Sprint(err), nil
		})
		if err != nil {
			t.Fatal(err)
		}
		pod := waitReady(t, batch, 2*time.Minute)
		leaf := parseCert(t, "GET /svccert", inApp(pod).want(t, 200, "http://127.0.0.1:8081/svccert"))
		if leaf.Subject.CommonName != "shop.batch."+framework.Service {
			t.Errorf("the Pod's certificate is for %q, want shop.batch.%s", leaf.Subject.CommonName, framework.Service)
		}
		err = cluster.Client.Create(ctx, injectedPod(ns, "intruder", map[string]string{webhook.AnnotationDomain: "payments"}))
		wantDenied(t, err, chartPolicy, `namespace "shop" may not be payments.web`)
	})

	t.Run("a profile the policy does not offer to shop is refused", func(t *testing.T) {
		var chart v1alpha1.SidecarProfile
		if err := cluster.Client.Get(ctx, key(framework.ReleaseNamespace, framework.ProfileName), &chart); err != nil {
			t.Fatal(err)
		}
		other := &v1alpha1.SidecarProfile{ObjectMeta: metav1.ObjectMeta{Namespace: framework.ReleaseNamespace, Name: "payments-only"}, Spec: *chart.Spec.DeepCopy()}
		other.Spec.IdentityPolicy = v1alpha1.IdentityPolicy{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "payments"}}}
		if err := cluster.Client.Create(ctx, other); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cluster.Client.Delete(context.Background(), other) })
		pod := injectedPod(ns, "borrower", map[string]string{webhook.AnnotationProfile: other.Name})
		const want = `SidecarProfile athenz-system/payments-only does not serve namespace "shop"`
		var err error
		_ = framework.Wait(withTimeout(t, 30*time.Second), "the injector has the new profile", func(ctx context.Context) (bool, string, error) {
			err = cluster.Client.Create(ctx, pod.DeepCopy())
			return err == nil || strings.Contains(err.Error(), want), fmt.Sprint(err), nil
		})
		wantDenied(t, err, want, "spec.identityPolicy.namespaceSelector")
	})

	t.Run("a profile in shop that allows payments has no effect", func(t *testing.T) {
		var chart v1alpha1.SidecarProfile
		if err := cluster.Client.Get(ctx, key(framework.ReleaseNamespace, framework.ProfileName), &chart); err != nil {
			t.Fatal(err)
		}
		own := &v1alpha1.SidecarProfile{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "default"}, Spec: *chart.Spec.DeepCopy()}
		own.Spec.ZTS.CA = &v1alpha1.CABundle{ConfigMap: &v1alpha1.KeyReference{Name: "athenz-zts-ca-" + framework.ProfileName, Key: "ca.pem"}}
		own.Spec.IdentityPolicy = v1alpha1.IdentityPolicy{AllowedIdentities: []v1alpha1.AllowedIdentity{{Namespaces: []string{ns}, Domains: []string{"payments"}}}}
		if err := cluster.Client.Create(ctx, own); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cluster.Client.Delete(context.Background(), own) })
		// Wait until the injector uses shop's own profile, or the denial
		// below would be the chart profile's and prove nothing.
		err := framework.Wait(withTimeout(t, 30*time.Second), "the injector uses shop/default", func(ctx context.Context) (bool, string, error) {
			probe := injectedPod(ns, "probe", nil)
			if err := cluster.Client.Create(ctx, probe, client.DryRunAll); err != nil {
				return false, "", err
			}
			var st webhook.Status
			if err := json.Unmarshal([]byte(probe.Annotations[framework.AnnotationStatus]), &st); err != nil {
				return false, "", fmt.Errorf("the dry-run Pod's %s: %v", framework.AnnotationStatus, err)
			}
			return st.Profile == ns+"/default", st.Profile, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		err = cluster.Client.Create(ctx, injectedPod(ns, "intruder", map[string]string{webhook.AnnotationDomain: "payments"}))
		wantDenied(t, err, "may not be payments.web")
	})

	t.Run("the callback refuses a client without ZTS's certificate", func(t *testing.T) {
		c := ztsfake.HTTPProviderClient(framework.Provider, cluster.CA.Pool())
		t.Cleanup(c.CloseIdleConnections)
		resp, err := c.Post(cluster.ProviderURL+"/instance", "application/json", strings.NewReader(`{}`))
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			t.Fatalf("the provider callback answered a client with no certificate: %d %s", resp.StatusCode, body)
		}
		t.Logf("refused as wanted: %v", err)
	})
}

// wantDenied wants err to be the injector's denial saying every one of
// want.
func wantDenied(t *testing.T, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("admitted, want a denial saying %q", want)
	}
	if !apierrors.IsForbidden(err) {
		t.Errorf("%v, want Forbidden (denied at admission)", err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("the denial %q does not say %q", err, w)
		}
	}
}

// editChartProfile changes the chart's SidecarProfile until the test
// ends.
func editChartProfile(t *testing.T, edit func(*v1alpha1.SidecarProfileSpec)) {
	t.Helper()
	var p v1alpha1.SidecarProfile
	if err := cluster.Client.Get(t.Context(), key(framework.ReleaseNamespace, framework.ProfileName), &p); err != nil {
		t.Fatal(err)
	}
	before := p.DeepCopy()
	edit(&p.Spec)
	if err := cluster.Client.Patch(t.Context(), &p, client.MergeFrom(before)); err != nil {
		t.Fatalf("editing SidecarProfile %s/%s: %v", p.Namespace, p.Name, err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		var now v1alpha1.SidecarProfile
		if err := cluster.Client.Get(ctx, key(framework.ReleaseNamespace, framework.ProfileName), &now); err != nil {
			t.Errorf("restoring SidecarProfile %s/%s: %v", p.Namespace, p.Name, err)
			return
		}
		now.Spec = before.Spec
		if err := cluster.Client.Update(ctx, &now); err != nil {
			t.Errorf("restoring SidecarProfile %s/%s: %v", p.Namespace, p.Name, err)
		}
	})
}

// withoutWebhook runs f with the injector's MutatingWebhookConfiguration
// deleted, as when someone removed it: Pods are admitted unchecked. It
// waits for the API server to stop calling the webhook, and after f for it
// to call it again.
func withoutWebhook(t *testing.T, ns string, f func()) {
	t.Helper()
	ctx := t.Context()
	var cfg admissionregv1.MutatingWebhookConfiguration
	if err := cluster.Client.Get(ctx, client.ObjectKey{Name: framework.ReleaseName}, &cfg); err != nil {
		t.Fatal(err)
	}
	if err := cluster.Client.Delete(ctx, &cfg); err != nil {
		t.Fatal(err)
	}
	restore := func() {
		cfg.ResourceVersion, cfg.UID, cfg.CreationTimestamp, cfg.ManagedFields, cfg.Generation = "", "", metav1.Time{}, nil, 0
		if err := cluster.Client.Create(context.Background(), &cfg); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("restoring the webhook configuration: %v", err)
		}
		waitInjecting(t, ns, true)
	}
	defer restore()
	waitInjecting(t, ns, false)
	f()
}

// waitInjecting waits until a dry-run create of an opted-in Pod in ns
// comes back injected (on) or untouched (!on).
func waitInjecting(t *testing.T, ns string, on bool) {
	t.Helper()
	err := framework.Wait(withTimeout(t, 30*time.Second), fmt.Sprintf("the webhook called: %v", on), func(ctx context.Context) (bool, string, error) {
		probe := injectedPod(ns, "probe", nil)
		if err := cluster.Client.Create(ctx, probe, client.DryRunAll); err != nil {
			return false, err.Error(), nil
		}
		_, injected := probe.Annotations[framework.AnnotationStatus]
		return injected == on, fmt.Sprintf("injected: %v", injected), nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// getFromHost asks the sidecar's health port from the host, through the
// Pod's network: not loopback, as a stranger on the network would.
func getFromHost(t *testing.T, pod *corev1.Pod, path string) (int, string) {
	t.Helper()
	if pod.Status.PodIP == "" {
		t.Fatalf("pod %s has no IP", pod.Name)
	}
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(webhook.DefaultHealthPort)) + path)
	if err != nil {
		t.Fatalf("GET %s of %s from the host: %v", path, pod.Name, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, string(body)
}
