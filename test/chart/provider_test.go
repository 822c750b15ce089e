package chart_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/athenz-injector/athenz-injector/pkg/webhook/provider"
)

// TestProviderAnswersOnlyZTS: with the chart's defaults and the callback
// turned on (provider.enabled needs provider.clientCA, the CA of ZTS's
// client certificate), the injector the Deployment describes refuses a TLS
// connection without a client certificate, or with one from another CA,
// and answers ZTS's. provider.insecureAllowAnyClient, the documented
// development switch, turns that off.
func TestProviderAnswersOnlyZTS(t *testing.T) {
	h := newHelm(t)
	cp := startControlPlane(t)
	if err := applyAll(t.Context(), cp.client, readCRDs(t, h.chart)); err != nil {
		t.Fatal(err)
	}
	ztsCA, ztsClient := ztsClientCertificate(t)
	stranger := foreignClientCert(t)
	// A well-formed request with a token nobody issued: whoever gets past
	// TLS gets the one refusal for unverified tokens.
	body, err := json.Marshal(provider.InstanceConfirmation{
		Provider: "sys.auth.k8s", Domain: "shop", Service: "web",
		AttestationData: "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.c2ln",
	})
	if err != nil {
		t.Fatal(err)
	}

	start := func(t *testing.T, release string, values map[string]any) *podRun {
		t.Helper()
		c := &rbacCase{cp: cp, release: release, fullname: release + "-athenz-injector",
			objs: h.templateAs(t, release, release, values), ztsCA: ztsCA}
		c.apply(t, nil)
		var dep appsv1.Deployment
		c.objs.get(t, "Deployment", c.fullname, &dep)
		run, err := startFromDeployment(t, cp.clientset, &dep, cp.serviceAccountKubeconfig(t, release, c.fullname), time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return run
	}
	wantRefusedToken := func(t *testing.T, who string, status int, answer string, err error) {
		t.Helper()
		if err != nil || status != http.StatusForbidden || !strings.Contains(answer, provider.MsgTokenRefused) {
			t.Errorf("%s: %d %s, %v; want 403 %q", who, status, answer, err, provider.MsgTokenRefused)
		}
	}

	t.Run("defaults", func(t *testing.T) {
		run := start(t, "mtls", map[string]any{"provider": map[string]any{
			"enabled": true, "clientCA": map[string]any{"configMap": map[string]any{"name": "zts-ca", "key": "ca.pem"}},
		}})
		for _, tc := range []struct {
			name string
			cert *tls.Certificate
			want string // in the TLS error
		}{
			{"no client certificate", nil, "certificate required"},
			{"a certificate from another CA", &stranger, "unknown certificate authority"},
		} {
			status, answer, err := postTLS(t.Context(), run.ProviderAddr, body, tc.cert)
			if err == nil {
				t.Errorf("%s: the callback answered %d %s, want the TLS handshake refused", tc.name, status, answer)
			} else if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: %v, want a TLS error saying %q", tc.name, err, tc.want)
			} else {
				t.Logf("%s: refused: %v", tc.name, err)
			}
		}
		status, answer, err := postTLS(t.Context(), run.ProviderAddr, body, &ztsClient)
		wantRefusedToken(t, "ZTS's certificate", status, answer, err)
	})

	t.Run("insecureAllowAnyClient for development", func(t *testing.T) {
		run := start(t, "dev", map[string]any{"provider": map[string]any{"enabled": true, "insecureAllowAnyClient": true}})
		status, answer, err := postTLS(t.Context(), run.ProviderAddr, body, nil)
		wantRefusedToken(t, "no client certificate", status, answer, err)
	})
}

// foreignClientCert is a client certificate from a CA of its own.
func foreignClientCert(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "someone else's CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "sys.auth.zts"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
