package chart_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/athenz-injector/athenz-injector/pkg/webhook"
	"github.com/athenz-injector/athenz-injector/pkg/webhook/app"
	"github.com/athenz-injector/athenz-injector/pkg/webhook/webhooktest"
)

// kustomizeVersion is the kustomize that builds config/default, the one
// kubectl apply -k embeds (installed into bin/ by hack/go-install-tool.sh).
const kustomizeVersion = "v5.8.1"

var kustomizeBinary = sync.OnceValues(func() (string, error) {
	return hackTool("go-install-tool.sh", "kustomize", "sigs.k8s.io/kustomize/kustomize/v5", kustomizeVersion)
})

// TestKustomizeInstall is `kubectl apply -k config/default` on a real API
// server: kustomize builds config/default, every object applies
// server-side, and then the injector the Deployment describes runs with the
// Deployment's arguments, volumes and ServiceAccount (no kubelet here) and
// becomes ready: its readiness probe (/readyz on the health port) answers
// 200 once the serving certificate is loaded, the webhook server answers and
// the caches have synced. Nothing the Deployment mounts is missing: its
// certificate is in an emptyDir that the injector fills from the Secret it
// creates itself, and it sets the webhooks' caBundle, so that the API
// server trusts the webhook Service's certificate.
func TestKustomizeInstall(t *testing.T) {
	bin, err := kustomizeBinary()
	if err != nil {
		t.Fatal(err)
	}
	root, err := webhooktest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	readTree(t, filepath.Join(root, "config"))
	cmd := exec.Command(bin, "build", filepath.Join(root, "config", "default"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kustomize build config/default: %v\n%s", err, stderr.String())
	}
	objs, err := parseManifests(string(out))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("config/default: %s", objs)

	cp := startControlPlane(t)
	ctx := t.Context()
	c := cp.client
	if err := applyAll(ctx, c, objs); err != nil {
		t.Fatalf("kubectl apply -k config/default: %v", err)
	}

	var dep appsv1.Deployment
	objs.get(t, "Deployment", "athenz-injector", &dep)
	ctr := dep.Spec.Template.Spec.Containers[0]
	probe := ctr.ReadinessProbe
	if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != "/readyz" {
		t.Fatalf("readinessProbe %+v, want GET /readyz", probe)
	}
	var healthPort int32
	for _, p := range ctr.Ports {
		if p.Name == probe.HTTPGet.Port.String() {
			healthPort = p.ContainerPort
		}
	}
	health := app.DefaultHealthProbeBindAddress
	for _, a := range ctr.Args {
		if v, ok := strings.CutPrefix(a, "--health-probe-bind-address="); ok {
			health = v
		}
	}
	if healthPort == 0 || health != fmt.Sprintf(":%d", healthPort) {
		t.Fatalf("readinessProbe port %s (%d) is not where the injector serves /readyz (%s)", probe.HTTPGet.Port.String(), healthPort, health)
	}

	kubeconfig := cp.serviceAccountKubeconfig(t, dep.Namespace, dep.Spec.Template.Spec.ServiceAccountName)
	run, err := startFromDeployment(t, cp.clientset, &dep, kubeconfig, time.Minute)
	if err != nil {
		t.Fatalf("the injector of config/manager did not become ready: %v", err)
	}

	var secret corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: dep.Namespace, Name: "athenz-injector-webhook-tls"}, &secret); err != nil {
		t.Fatalf("the injector created no certificate Secret: %v", err)
	}
	if secret.Labels["app.kubernetes.io/managed-by"] != "athenz-injector" {
		t.Errorf("Secret labels %v, want it made by the injector", secret.Labels)
	}
	var mwc admissionregv1.MutatingWebhookConfiguration
	objs.get(t, "MutatingWebhookConfiguration", "athenz-injector", &mwc)
	if err := c.Get(ctx, client.ObjectKeyFromObject(&mwc), &mwc); err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	for _, wh := range mwc.Webhooks {
		if !roots.AppendCertsFromPEM(wh.ClientConfig.CABundle) {
			t.Fatalf("webhook %s has no caBundle", wh.Name)
		}
	}

	// What the API server would do through the Service: verify the
	// certificate for the Service's name with caBundle, then send an
	// AdmissionReview.
	svc := mwc.Webhooks[0].ClientConfig.Service
	serverName := svc.Name + "." + svc.Namespace + ".svc"
	review := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: "1", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, Operation: admissionv1.Create,
			Namespace: "shop", Name: "web",
			Object: runtime.RawExtension{Raw: []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","namespace":"shop","annotations":{"athenz.io/inject":"true"}},"spec":{"serviceAccountName":"web","containers":[{"name":"app","image":"app"}]}}`)},
		},
	}
	body, err := json.Marshal(review)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}); err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: serverName}}}
	defer hc.CloseIdleConnections()
	var got admissionv1.AdmissionReview
	if err := waitFor(ctx, func() error {
		resp, err := hc.Post(run.WebhookURL+*svc.Path, "application/json", bytes.NewReader(body))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", resp.Status, raw)
		}
		got = admissionv1.AdmissionReview{}
		if err := json.Unmarshal(raw, &got); err != nil || got.Response == nil {
			return fmt.Errorf("answer %s: %v", raw, err)
		}
		// The namespace may reach the injector's cache a moment later.
		if got.Response.Result != nil && strings.Contains(got.Response.Result.Message, "not found") {
			return fmt.Errorf("answer %s", raw)
		}
		return nil
	}); err != nil {
		t.Fatalf("the webhook, trusted through caBundle as %s: %v", serverName, err)
	}
	if got.Response.Allowed || !strings.Contains(got.Response.Result.Message, "no SidecarProfile for this Pod") {
		t.Errorf("AdmissionReview answer %+v, want a denial naming the missing profile (none is installed)", got.Response)
	}
	if webhook.PathPods != *svc.Path {
		t.Errorf("webhook path %s, want %s", *svc.Path, webhook.PathPods)
	}
}
