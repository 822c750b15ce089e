package chart_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/athenz-injector/athenz-injector/api/v1alpha1"
)

const assetsEnv = "KUBEBUILDER_ASSETS"

// controlPlane is a running kube-apiserver and etcd with no CRDs: the
// chart installs its own.
type controlPlane struct {
	client     client.Client        // uncached, administrator
	clientset  kubernetes.Interface // the same, for TokenRequests and the played kubelet
	kubeconfig string               // administrator kubeconfig, for helm
	env        *envtest.Environment
	// addUser serializes env.AddUser: envtest's CA is not safe for
	// concurrent use (parallel subtests add users at once).
	addUser sync.Mutex
	// auditLog is the API server's audit log (startAuditedControlPlane):
	// every request of a service account, one JSON event a line.
	auditLog string
}

// startControlPlane starts kube-apiserver and etcd from KUBEBUILDER_ASSETS
// and stops them when the test ends. Without the binaries the test fails
// (never skips) and says how to build them.
func startControlPlane(t *testing.T) *controlPlane {
	t.Helper()
	return startControlPlaneWith(t, false)
}

// auditPolicy records the metadata of every request a service account
// makes (the injectors the tests run act as the chart's ServiceAccount),
// when the API server answers it (and when a watch starts).
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: Metadata
    userGroups: ["system:serviceaccounts"]
  - level: None
`

// startAuditedControlPlane is startControlPlane with an audit log of the
// service accounts' requests.
func startAuditedControlPlane(t *testing.T) *controlPlane {
	t.Helper()
	return startControlPlaneWith(t, true)
}

func startControlPlaneWith(t *testing.T, audit bool) *controlPlane {
	t.Helper()
	assets := os.Getenv(assetsEnv)
	if assets == "" {
		t.Fatalf("%s is not set: it must name a directory with kube-apiserver and etcd; "+
			"run `KUBEBUILDER_ASSETS=$(hack/build-control-plane.sh) go test ./test/chart/` (built once, then cached) or `make test`", assetsEnv)
	}
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(assets, bin)); err != nil {
			t.Fatalf("%s=%s has no %s (%v); build it with hack/build-control-plane.sh", assetsEnv, assets, bin, err)
		}
	}
	env := &envtest.Environment{BinaryAssetsDirectory: assets}
	var auditLog string
	if audit {
		dir := t.TempDir()
		policy := filepath.Join(dir, "audit-policy.yaml")
		if err := os.WriteFile(policy, []byte(auditPolicy), 0o600); err != nil {
			t.Fatal(err)
		}
		auditLog = filepath.Join(dir, "audit.log")
		// Without streaming lists, informers list and then watch, as on
		// the API servers before 1.32 that the chart supports; with them
		// the list is a watch, and needs nothing more.
		env.ControlPlane.GetAPIServer().Configure().
			Set("audit-policy-file", policy).
			Set("audit-log-path", auditLog).
			Set("audit-log-mode", "blocking").
			Append("feature-gates", "WatchList=false")
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("starting kube-apiserver and etcd from %s: %v", assets, err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stopping the control plane: %v", err)
		}
	})

	user, err := env.AddUser(envtest.User{Name: "helm-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatalf("adding a user for helm: %v", err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		t.Fatal(err)
	}

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &controlPlane{client: c, clientset: cs, kubeconfig: kubeconfig, env: env, auditLog: auditLog}
}

// serviceAccountKubeconfig writes a kubeconfig that acts as ServiceAccount
// namespace/name (a client certificate with its user name and groups), so
// that exactly the RBAC bound to that ServiceAccount applies.
func (c *controlPlane) serviceAccountKubeconfig(t *testing.T, namespace, name string) string {
	t.Helper()
	c.addUser.Lock()
	u, err := c.env.AddUser(envtest.User{
		Name:   "system:serviceaccount:" + namespace + ":" + name,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace},
	}, nil)
	c.addUser.Unlock()
	if err != nil {
		t.Fatalf("adding a user for ServiceAccount %s/%s: %v", namespace, name, err)
	}
	kc, err := u.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestInstall installs the chart into a real kube-apiserver, so that every
// object is validated server-side (the SidecarProfile by the chart's own
// CRD, with its CEL rules), checks what was created, and uninstalls it.
// cert-manager's CRDs are not there, so the cert-manager mode is covered by
// TestTemplate only. Nothing runs: there is no kubelet.
func TestInstall(t *testing.T) {
	h := newHelm(t)
	cp := startControlPlane(t)
	h = h.withKubeconfig(cp.kubeconfig)
	caPEM := selfSignedCA(t)

	for _, tc := range []struct {
		name, release, namespace string
		values                   map[string]any
		injector                 bool     // Deployment expected
		notes                    []string // in what helm install prints
	}{
		{
			name: "auto certificates, provider, profile", release: "athenz-injector", namespace: "athenz-injector",
			values: map[string]any{
				"provider": map[string]any{
					"enabled": true, "certSecret": "provider-tls", "service": map[string]any{"type": "LoadBalancer"},
					"clientCA": map[string]any{"configMap": map[string]any{"name": "zts-ca", "key": "ca.pem"}},
				},
				"metrics": map[string]any{"serviceMonitor": map[string]any{"enabled": false}},
				"profile": validProfile(),
			},
			injector: true,
			notes: []string{
				"kubectl -n athenz-injector rollout status deployment/athenz-injector",
				"Secret\nathenz-injector/athenz-injector-webhook-tls",
				"SidecarProfile athenz-injector/default was created",
			},
		},
		{
			name: "manual certificates, webhook.url", release: "dev", namespace: "athenz-dev",
			values: map[string]any{
				"certs":    map[string]any{"mode": "manual", "manual": map[string]any{"caBundle": caPEM}},
				"webhook":  map[string]any{"url": "https://127.0.0.1:9443"},
				"injector": map[string]any{"enabled": false},
				"profile": map[string]any{
					"create":   true,
					"zts":      map[string]any{"url": "https://127.0.0.1:4443/zts/v1"},
					"identity": map[string]any{"mode": "key-file", "keyFile": map[string]any{"secret": map[string]any{"name": "svc-key", "key": "key.pem"}, "version": "0"}},
				},
			},
			notes: []string{
				"--namespace=athenz-dev",
				"--webhook-port=9443",
				"--cert-mode=external   # tls.crt and tls.key for 127.0.0.1",
			},
		},
	} {
		// One after the other: both installs apply the CRD from crds/.
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			start := time.Now()
			out, err := h.run("install", tc.release, h.chart, "--namespace", tc.namespace, "--create-namespace",
				"--wait=false", "-f", valuesFile(t, tc.values))
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			t.Logf("helm install took %s", time.Since(start).Round(time.Millisecond))
			for _, want := range append(tc.notes, "kubectl annotate deployment web athenz.io/inject=true") {
				if !strings.Contains(out, want) {
					t.Errorf("helm install's notes lack %q:\n%s", want, out)
				}
			}

			fullname := tc.release
			if !strings.Contains(tc.release, "athenz-injector") {
				fullname = tc.release + "-athenz-injector"
			}
			c := cp.client
			var mwc admissionregv1.MutatingWebhookConfiguration
			if err := c.Get(ctx, client.ObjectKey{Name: fullname}, &mwc); err != nil {
				t.Fatalf("reading MutatingWebhookConfiguration %s: %v", fullname, err)
			}
			if len(mwc.Webhooks) != 3 {
				t.Errorf("%d webhooks installed, want 3", len(mwc.Webhooks))
			}
			for _, wh := range mwc.Webhooks {
				if tc.injector {
					if s := wh.ClientConfig.Service; s == nil || s.Name != fullname+"-webhook" || s.Namespace != tc.namespace {
						t.Errorf("%s: clientConfig.service = %+v, want %s/%s-webhook", wh.Name, s, tc.namespace, fullname)
					}
				} else {
					if u := wh.ClientConfig.URL; u == nil || !strings.HasPrefix(*u, "https://127.0.0.1:9443/mutate-") {
						t.Errorf("%s: clientConfig.url = %v, want https://127.0.0.1:9443/mutate-...", wh.Name, u)
					}
					if string(wh.ClientConfig.CABundle) != caPEM {
						t.Errorf("%s: caBundle is not certs.manual.caBundle", wh.Name)
					}
				}
			}

			depKey := client.ObjectKey{Namespace: tc.namespace, Name: fullname}
			err = c.Get(ctx, depKey, &appsv1.Deployment{})
			switch {
			case tc.injector && err != nil:
				t.Errorf("reading Deployment %s: %v", depKey, err)
			case !tc.injector && !apierrors.IsNotFound(err):
				t.Errorf("reading Deployment %s with injector.enabled=false: %v, want not found", depKey, err)
			}

			crd := &unstructured.Unstructured{}
			crd.SetGroupVersionKind(schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"})
			if err := c.Get(ctx, client.ObjectKey{Name: "sidecarprofiles.athenz.io"}, crd); err != nil {
				t.Errorf("reading CRD sidecarprofiles.athenz.io: %v", err)
			}
			var profile v1alpha1.SidecarProfile
			profileKey := client.ObjectKey{Namespace: tc.namespace, Name: "default"}
			if err := c.Get(ctx, profileKey, &profile); err != nil {
				t.Errorf("reading SidecarProfile %s: %v", profileKey, err)
			} else if profile.Spec.ZTS.URL == "" {
				t.Errorf("SidecarProfile %s has no zts.url: %+v", profileKey, profile.Spec)
			}

			start = time.Now()
			if out, err := h.run("uninstall", tc.release, "--namespace", tc.namespace); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			t.Logf("helm uninstall took %s", time.Since(start).Round(time.Millisecond))
			for _, gone := range []struct {
				obj client.Object
				key client.ObjectKey
			}{
				{&admissionregv1.MutatingWebhookConfiguration{}, client.ObjectKey{Name: fullname}},
				{&appsv1.Deployment{}, depKey},
				{&v1alpha1.SidecarProfile{}, profileKey},
			} {
				if err := c.Get(ctx, gone.key, gone.obj); !apierrors.IsNotFound(err) {
					t.Errorf("after helm uninstall, reading %T %s: %v, want not found", gone.obj, gone.key, err)
				}
			}
			// Helm never deletes what crds/ installed.
			if err := c.Get(ctx, client.ObjectKey{Name: "sidecarprofiles.athenz.io"}, crd); err != nil {
				t.Errorf("after helm uninstall, reading CRD sidecarprofiles.athenz.io: %v, want it kept", err)
			}
			out, err = h.run("list", "--all-namespaces", "--short")
			if err != nil || slices.Contains(strings.Fields(out), tc.release) {
				t.Errorf("helm list after uninstall = %q, %v; want no %s", out, err, tc.release)
			}
		})
	}
}

// selfSignedCA returns a PEM CA certificate for certs.manual.caBundle.
func selfSignedCA(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "athenz-injector test CA"},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}
