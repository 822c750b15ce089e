package certs_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/utils/ptr"

	"github.com/athenz-injector/athenz-injector/pkg/webhook/certs"
)

// fixture is one test's namespace, Secret name, Service name and
// MutatingWebhookConfiguration (two webhooks, no caBundle), so tests do
// not see each other's objects.
type fixture struct {
	ns, secret, svc, config string
}

var nonName = regexp.MustCompile(`[^a-z0-9]+`)

func newFixture(t *testing.T) *fixture {
	t.Helper()
	name := strings.Trim(nonName.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	if len(name) > 50 {
		name = strings.Trim(name[len(name)-50:], "-")
	}
	name += "-" + utilrand.String(5) // unique under -count=N
	f := &fixture{ns: name, secret: "webhook-tls", svc: "injector-webhook", config: name}
	ctx := t.Context()
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: f.ns}}); err != nil {
		t.Fatalf("creating namespace %s: %v", f.ns, err)
	}
	// The webhooks match no object (objectSelector), so they never call
	// anything: only their clientConfig matters here.
	never := &metav1.LabelSelector{MatchLabels: map[string]string{"certs.test/never": "true"}}
	rules := []admissionregistrationv1.RuleWithOperations{{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
		Rule: admissionregistrationv1.Rule{
			APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"},
		},
	}}
	webhook := func(name string, cc admissionregistrationv1.WebhookClientConfig) admissionregistrationv1.MutatingWebhook {
		return admissionregistrationv1.MutatingWebhook{
			Name:                    name,
			ClientConfig:            cc,
			Rules:                   rules,
			ObjectSelector:          never,
			FailurePolicy:           ptr.To(admissionregistrationv1.Ignore),
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			AdmissionReviewVersions: []string{"v1"},
		}
	}
	cfg := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: f.config},
		Webhooks: []admissionregistrationv1.MutatingWebhook{
			webhook("service.certs.test", admissionregistrationv1.WebhookClientConfig{
				Service: &admissionregistrationv1.ServiceReference{Namespace: f.ns, Name: f.svc, Path: ptr.To("/mutate-pods")},
			}),
			webhook("url.certs.test", admissionregistrationv1.WebhookClientConfig{
				URL: ptr.To("https://127.0.0.1:9443/mutate-workloads"),
			}),
		},
	}
	if err := k8s.Create(ctx, cfg); err != nil {
		t.Fatalf("creating mutatingwebhookconfiguration %s: %v", f.config, err)
	}
	return f
}

// options are a Manager's options for f, writing to certDir.
func (f *fixture) options(t *testing.T, certDir string) certs.Options {
	return certs.Options{
		Client:            k8s,
		Namespace:         f.ns,
		SecretName:        f.secret,
		ServiceName:       f.svc,
		WebhookConfigName: f.config,
		CertDir:           certDir,
		Logger:            testr.NewWithOptions(t, testr.Options{Verbosity: 1}),
	}
}

func (f *fixture) newManager(t *testing.T, o certs.Options) *certs.Manager {
	t.Helper()
	m, err := certs.New(o)
	if err != nil {
		t.Fatalf("certs.New: %v", err)
	}
	return m
}

func (f *fixture) getSecret(t *testing.T) *corev1.Secret {
	t.Helper()
	s := &corev1.Secret{}
	if err := k8s.Get(t.Context(), types.NamespacedName{Namespace: f.ns, Name: f.secret}, s); err != nil {
		t.Fatalf("reading secret: %v", err)
	}
	return s
}

func (f *fixture) getConfig(t *testing.T) *admissionregistrationv1.MutatingWebhookConfiguration {
	t.Helper()
	cfg := &admissionregistrationv1.MutatingWebhookConfiguration{}
	if err := k8s.Get(t.Context(), types.NamespacedName{Name: f.config}, cfg); err != nil {
		t.Fatalf("reading mutatingwebhookconfiguration: %v", err)
	}
	return cfg
}

// caBundle returns the caBundle that every webhook of the configuration
// holds, failing the test if they differ or are empty.
func (f *fixture) caBundle(t *testing.T) []byte {
	t.Helper()
	cfg := f.getConfig(t)
	if len(cfg.Webhooks) != 2 {
		t.Fatalf("mutatingwebhookconfiguration has %d webhooks, want 2", len(cfg.Webhooks))
	}
	b := cfg.Webhooks[0].ClientConfig.CABundle
	if len(b) == 0 {
		t.Fatalf("webhook %s has no caBundle", cfg.Webhooks[0].Name)
	}
	for _, wh := range cfg.Webhooks[1:] {
		if string(wh.ClientConfig.CABundle) != string(b) {
			t.Fatalf("webhook %s has caBundle\n%s\nwant the one of %s\n%s", wh.Name, wh.ClientConfig.CABundle, cfg.Webhooks[0].Name, b)
		}
	}
	return b
}

// serviceName is the name the API server checks the certificate of a
// service-based webhook against.
func (f *fixture) serviceName() string { return f.svc + "." + f.ns + ".svc" }

// verify checks that the serving certificate in certDir verifies against
// bundle for name at time at, and returns it.
func verify(t *testing.T, bundle []byte, certDir, name string, at time.Time) *x509.Certificate {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(filepath.Join(certDir, "tls.crt"), filepath.Join(certDir, "tls.key"))
	if err != nil {
		t.Fatalf("loading the serving certificate from %s: %v", certDir, err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	verifyCert(t, bundle, leaf, name, at)
	return leaf
}

func verifyCert(t *testing.T, bundle []byte, leaf *x509.Certificate, name string, at time.Time) {
	t.Helper()
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(bundle) {
		t.Fatalf("caBundle holds no certificate:\n%s", bundle)
	}
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots:       roots,
		DNSName:     name,
		CurrentTime: at,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		t.Fatalf("serving certificate (serial %s) does not verify against caBundle for %s at %s: %v", leaf.SerialNumber, name, at, err)
	}
}

// pemCerts parses every certificate of data, failing on anything else.
func pemCerts(t *testing.T, data []byte) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatalf("parsing certificate: %v", err)
		}
		out = append(out, c)
	}
	if len(strings.TrimSpace(string(data))) != 0 {
		t.Fatalf("trailing data after certificates: %q", data)
	}
	return out
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// at is a fixed clock.
func at(t time.Time) func() time.Time { return func() time.Time { return t } }
