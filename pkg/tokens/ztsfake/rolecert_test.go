package ztsfake_test

import (
	"crypto/x509"
	"slices"
	"testing"
	"time"

	"github.com/AthenZ/athenz/clients/go/zts"

	"github.com/athenz-injector/athenz-injector/pkg/tokens/ztsfake"
)

func TestRoleCert(t *testing.T) {
	s := ztsfake.NewTest(t, ztsfake.Options{})
	s.Grant("prov", "reader", "client.api")
	c := newClient(t, s, "client", "api")
	key, _ := newECKey(t)
	good := csrSpec{cn: "prov:role.reader", uris: []string{"spiffe://prov/ra/reader"}, emails: []string{"client.api@k8s.example"}}

	got, err := c.PostRoleCertificateRequestExt(&zts.RoleCertificateRequest{Csr: newCSR(t, key, good), ExpiryTime: 15})
	if err != nil {
		t.Fatalf("PostRoleCertificateRequestExt: %v", err)
	}
	cert := parseCert(t, s, got.X509Certificate, x509.ExtKeyUsageClientAuth)
	if cert.Subject.CommonName != "prov:role.reader" || !slices.Equal(cert.EmailAddresses, good.emails) || len(cert.URIs) != 1 {
		t.Errorf("role certificate: CN %q emails %v URIs %v, want the CSR's", cert.Subject.CommonName, cert.EmailAddresses, cert.URIs)
	}
	if life := time.Until(cert.NotAfter); life > 15*time.Minute || life < 14*time.Minute {
		t.Errorf("role certificate lives %v, want 15m (expiryTime)", life)
	}
	if n := s.CallsFor(ztsfake.EndpointRoleCert, "prov:role.reader"); n != 1 {
		t.Errorf("CallsFor(rolecert, prov:role.reader) = %d, want 1", n)
	}
	if csr := s.LastCSR(ztsfake.EndpointRoleCert); csr == nil || csr.Subject.CommonName != "prov:role.reader" {
		t.Errorf("LastCSR(rolecert) = %v, want the CSR sent", csr)
	}

	with := func(f func(*csrSpec)) string {
		spec := good
		f(&spec)
		return newCSR(t, key, spec)
	}
	tests := []struct {
		name     string
		client   zts.ZTSClient
		csr      string
		wantCode int
		wantMsg  string
	}{
		{name: "role not granted", client: c, csr: with(func(s *csrSpec) {
			s.cn, s.uris = "prov:role.writer", nil
		}), wantCode: 403, wantMsg: "not included in the requested role(s)"},
		{name: "unknown domain", client: c, csr: with(func(s *csrSpec) {
			s.cn, s.uris = "nope:role.reader", nil
		}), wantCode: 404, wantMsg: "No such domain"},
		{name: "CN is not a role", client: c, csr: with(func(s *csrSpec) { s.cn = "client.api" }), wantCode: 400, wantMsg: "<domain>:role.<role>"},
		{name: "spiffe URI of another role", client: c, csr: with(func(s *csrSpec) { s.uris = []string{"spiffe://prov/ra/writer"} }), wantCode: 400, wantMsg: "SAN URI"},
		{name: "email of another principal", client: c, csr: with(func(s *csrSpec) { s.emails = []string{"other.svc@k8s.example"} }), wantCode: 400, wantMsg: "SAN email"},
		{name: "unauthenticated", client: anonClient(t, s), csr: newCSR(t, key, good), wantCode: 401, wantMsg: "authentication required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.client.PostRoleCertificateRequestExt(&zts.RoleCertificateRequest{Csr: tc.csr})
			wantResourceError(t, "PostRoleCertificateRequestExt", err, tc.wantCode, tc.wantMsg)
		})
	}
}
