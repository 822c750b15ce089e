package ztsfake_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/AthenZ/athenz/clients/go/zts"

	"github.com/athenz-injector/athenz-injector/pkg/tokens/ztsfake"
)

// identityTokenJSON wraps a service account token as the built-in provider
// expects it.
func identityTokenJSON(t *testing.T, tok string) string {
	t.Helper()
	b, err := json.Marshal(map[string]string{"identityToken": tok})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestK8SProvider(t *testing.T) {
	const provider = "sys.auth.k8s"
	_, clock := fixedNow()
	s := ztsfake.NewTest(t, ztsfake.Options{
		Now:         clock,
		K8SProvider: &ztsfake.K8SProvider{Provider: provider, Audience: "zts.example"},
	})
	key, _ := newECKey(t)
	dns := []string{"api.client.k8s.example", "pod-1.instanceid.athenz.k8s.example"}
	plainCSR := newCSR(t, key, csrSpec{cn: "client.api", dns: dns, uris: []string{"spiffe://client/sa/api"}})
	nsCSR := func(ns string) string {
		return newCSR(t, key, csrSpec{cn: "client.api", dns: dns, uris: []string{"spiffe://cluster.local/ns/" + ns + "/sa/client.api"}})
	}
	sat := func(ns, sa, aud string, life time.Duration) string {
		tok, err := s.ServiceAccountToken(ns, sa, aud, life)
		if err != nil {
			t.Fatalf("ServiceAccountToken: %v", err)
		}
		return tok
	}
	good := sat("team", "client.api", "zts.example", time.Hour)

	// A token signed by another fake is not the issuer's.
	other := ztsfake.NewTest(t, ztsfake.Options{Now: clock})
	foreign, err := other.ServiceAccountToken("team", "client.api", "zts.example", time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name        string
		provider    string
		attestation string
		csr         string
		wantCode    int
		wantMsg     string
	}{
		{name: "identity token JSON", provider: provider, attestation: identityTokenJSON(t, good), csr: plainCSR, wantCode: 201},
		{name: "namespace SPIFFE URI matches", provider: provider, attestation: identityTokenJSON(t, good), csr: nsCSR("team"), wantCode: 201},
		{name: "bare token", provider: provider, attestation: good, csr: plainCSR, wantCode: 403, wantMsg: `{"identityToken"`},
		{name: "empty attestation", provider: provider, attestation: "", csr: plainCSR, wantCode: 403, wantMsg: `{"identityToken"`},
		{name: "wrong service account", provider: provider, attestation: identityTokenJSON(t, sat("team", "api", "zts.example", time.Hour)),
			csr: plainCSR, wantCode: 403, wantMsg: "must be named <domain>.<service>"},
		{name: "wrong audience", provider: provider, attestation: identityTokenJSON(t, sat("team", "client.api", "other", time.Hour)),
			csr: plainCSR, wantCode: 403, wantMsg: "audience"},
		{name: "foreign issuer key", provider: provider, attestation: identityTokenJSON(t, foreign), csr: plainCSR, wantCode: 403, wantMsg: "invalid"},
		{name: "tampered token", provider: provider, attestation: identityTokenJSON(t, good[:len(good)-4]+"AAAA"), csr: plainCSR, wantCode: 403, wantMsg: "signature"},
		{name: "namespace SPIFFE URI differs", provider: provider, attestation: identityTokenJSON(t, good), csr: nsCSR("other"), wantCode: 403, wantMsg: "namespace"},
		{name: "other provider uses the default attest", provider: "k8s.http", attestation: "anything", csr: plainCSR, wantCode: 201},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := anonClient(t, s).PostInstanceRegisterInformation(&zts.InstanceRegisterInformation{
				Provider: zts.ServiceName(tc.provider), Domain: "client", Service: "api",
				AttestationData: tc.attestation, Csr: tc.csr,
			})
			if tc.wantCode == 201 {
				if err != nil {
					t.Fatalf("PostInstanceRegisterInformation: %v, want 201", err)
				}
				return
			}
			wantResourceError(t, "PostInstanceRegisterInformation", err, tc.wantCode, tc.wantMsg)
		})
	}

	t.Run("refresh refused", func(t *testing.T) {
		csr, keyPEM := podCSR(t)
		id, _, err := anonClient(t, s).PostInstanceRegisterInformation(&zts.InstanceRegisterInformation{
			Provider: provider, Domain: "client", Service: "api", AttestationData: identityTokenJSON(t, good), Csr: csr,
		})
		if err != nil {
			t.Fatalf("PostInstanceRegisterInformation: %v", err)
		}
		newCSR, _ := podCSR(t)
		_, err = certClient(t, s, []byte(id.X509Certificate), keyPEM).PostInstanceRefreshInformation(provider, "client", "api", "pod-1",
			&zts.InstanceRefreshInformation{Csr: newCSR, AttestationData: identityTokenJSON(t, good)})
		wantResourceError(t, "PostInstanceRefreshInformation", err, http.StatusForbidden, "cannot be refreshed")
		// Registering again with a fresh token is how the certificate is renewed.
		again, _, err := anonClient(t, s).PostInstanceRegisterInformation(&zts.InstanceRegisterInformation{
			Provider: provider, Domain: "client", Service: "api", AttestationData: identityTokenJSON(t, good), Csr: newCSR,
		})
		if err != nil {
			t.Fatalf("register again: %v", err)
		}
		if again.X509Certificate == id.X509Certificate {
			t.Errorf("register again returned the same certificate")
		}
	})
}

func TestK8SProviderExpiredToken(t *testing.T) {
	c := &testClock{now: time.Unix(time.Now().Unix(), 0)}
	s := ztsfake.NewTest(t, ztsfake.Options{Now: c.Now, K8SProvider: &ztsfake.K8SProvider{}})
	tok, err := s.ServiceAccountToken("team", "client.api", "", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s.K8SIssuer(), "https://127.0.0.1:") {
		t.Errorf("K8SIssuer() = %q, want https://127.0.0.1:<port>/k8s-issuer", s.K8SIssuer())
	}
	c.Add(2 * time.Minute)
	csr, _ := podCSR(t)
	_, _, err = anonClient(t, s).PostInstanceRegisterInformation(&zts.InstanceRegisterInformation{
		Provider: "p", Domain: "client", Service: "api", AttestationData: identityTokenJSON(t, tok), Csr: csr,
	})
	wantResourceError(t, "PostInstanceRegisterInformation with an expired token", err, http.StatusForbidden, "expired")
}

func TestK8SProviderOptions(t *testing.T) {
	if _, err := ztsfake.Start(ztsfake.Options{K8SProvider: &ztsfake.K8SProvider{Provider: "bad name"}}); err == nil ||
		!strings.Contains(err.Error(), "K8SProvider.Provider") {
		t.Errorf("Start with K8SProvider.Provider %q: error %v, want one naming K8SProvider.Provider", "bad name", err)
	}
}
