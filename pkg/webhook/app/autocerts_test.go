package app_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/athenz-injector/athenz-injector/pkg/webhook/certs"
)

// TestTwoInjectorsAutoCerts: two injector processes in --cert-mode=auto
// against one API server end with one CA in the Secret, and the webhook
// configuration's caBundle verifies the serving certificate each of them
// serves, over real TLS.
func TestTwoInjectorsAutoCerts(t *testing.T) {
	dir := t.TempDir()

	const (
		secret, service, config = "auto-tls", "auto-webhook", "athenz-auto-test"
	)
	ns := newNamespace(t, "athenz-auto", nil)
	// A webhook configuration of its own, matching nothing, so the other
	// tests' admission is not affected; only its caBundle matters here.
	none := admissionregv1.SideEffectClassNone
	ignore := admissionregv1.Ignore
	url := "https://127.0.0.1:1/never"
	wc := &admissionregv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: config},
		Webhooks: []admissionregv1.MutatingWebhook{{
			Name:                    "never.athenz.io",
			ClientConfig:            admissionregv1.WebhookClientConfig{URL: &url},
			SideEffects:             &none,
			FailurePolicy:           &ignore,
			AdmissionReviewVersions: []string{"v1"},
			ObjectSelector:          &metav1.LabelSelector{MatchLabels: map[string]string{"athenz.io/never": "match"}},
		}},
	}
	if err := k8s.Create(t.Context(), wc); err != nil {
		t.Fatalf("creating %s: %v", config, err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), wc) })

	var injectors []*injectorProcess
	for i := range 2 {
		injectors = append(injectors, startInjector(t, dir, fmt.Sprintf("injector%d", i),
			"--namespace="+ns, "--cert-dir="+filepath.Join(dir, fmt.Sprintf("certs%d", i)),
			"--cert-mode=auto", "--cert-secret="+secret, "--service-name="+service,
			"--webhook-config-name="+config, "--cert-dns-names=127.0.0.1"))
	}
	for _, inj := range injectors {
		inj.waitReady(t)
	}

	var s corev1.Secret
	if err := k8s.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: secret}, &s); err != nil {
		t.Fatalf("reading Secret %s: %v", secret, err)
	}
	if n := countPEM(s.Data[certs.KeyCACert]); n != 1 {
		t.Errorf("Secret %s holds %d CA certificates, want one CA for both injectors", secret, n)
	}
	if err := k8s.Get(t.Context(), client.ObjectKey{Name: config}, wc); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(wc.Webhooks[0].ClientConfig.CABundle) {
		t.Fatalf("%s has no usable caBundle: %q", config, wc.Webhooks[0].ClientConfig.CABundle)
	}
	serverName := service + "." + ns + ".svc"
	var served [][]byte
	for i, inj := range injectors {
		conn, err := tls.Dial("tcp", inj.webhookAddr, &tls.Config{RootCAs: pool, ServerName: serverName})
		if err != nil {
			t.Errorf("TLS to injector %d as %s with the caBundle: %v", i, serverName, err)
			continue
		}
		served = append(served, conn.ConnectionState().PeerCertificates[0].Raw)
		conn.Close()
	}
	if len(served) == 2 && !bytes.Equal(served[0], served[1]) {
		t.Errorf("the two injectors serve different certificates; want the one in Secret %s", secret)
	}
}

func countPEM(data []byte) int {
	n := 0
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return n
		}
		n++
	}
}

func waitHTTP200(ctx context.Context, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s", resp.Status)
		}
		last = err
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("GET %s: not 200 within %s: %v", url, timeout, last)
}
