package ztsfake_test

import (
	"crypto"
	"crypto/x509"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/AthenZ/athenz/clients/go/zts"
	"github.com/AthenZ/athenz/libs/go/zmssvctoken"

	"github.com/athenz-injector/athenz-injector/pkg/tokens"
	"github.com/athenz-injector/athenz-injector/pkg/tokens/ztsfake"
)

// ntoken signs an N-token for domain.service with the Athenz library.
func ntoken(t *testing.T, domain, service, keyVersion string, keyPEM []byte, lifetime time.Duration) string {
	t.Helper()
	b, err := zmssvctoken.NewTokenBuilder(domain, service, keyPEM, keyVersion)
	if err != nil {
		t.Fatalf("NewTokenBuilder: %v", err)
	}
	b.SetExpiration(lifetime)
	b.SetHostname("test.host")
	b.SetIPAddress("127.0.0.1")
	tok, err := b.Token().Value()
	if err != nil {
		t.Fatalf("building N-token: %v", err)
	}
	return tok
}

func ntokenClient(t *testing.T, s *ztsfake.Server, tok string) zts.ZTSClient {
	c := anonClient(t, s)
	c.AddCredentials("Athenz-Principal-Auth", tok)
	return c
}

func TestKeyRefresh(t *testing.T) {
	for _, keyType := range []string{"rsa", "ec"} {
		t.Run(keyType, func(t *testing.T) {
			s := ztsfake.NewTest(t, ztsfake.Options{})
			var (
				key    crypto.Signer
				keyPEM []byte
			)
			if keyType == "rsa" {
				key, keyPEM = newRSAKey(t)
			} else {
				key, keyPEM = newECKey(t)
			}
			if err := s.RegisterServiceKey("client", "api", "v1", publicPEM(t, key)); err != nil {
				t.Fatalf("RegisterServiceKey: %v", err)
			}
			c := ntokenClient(t, s, ntoken(t, "client", "api", "v1", keyPEM, time.Hour))
			csr := newCSR(t, key, csrSpec{cn: "client.api", dns: []string{"api.client.k8s.example"}, uris: []string{"spiffe://client/sa/api"}})
			got, err := c.PostInstanceRefreshRequest("client", "api", &zts.InstanceRefreshRequest{Csr: csr, KeyId: "v1", ExpiryTime: int32p(20)})
			if err != nil {
				t.Fatalf("PostInstanceRefreshRequest: %v", err)
			}
			if got.Name != "client.api" || got.CaCertBundle != string(s.CACertPEM()) {
				t.Errorf("PostInstanceRefreshRequest: name %q, caCertBundle = CA: %v", got.Name, got.CaCertBundle == string(s.CACertPEM()))
			}
			cert := parseCert(t, s, got.Certificate, x509.ExtKeyUsageClientAuth)
			if cert.Subject.CommonName != "client.api" || len(cert.URIs) != 1 {
				t.Errorf("key refresh certificate: CN %q URIs %v", cert.Subject.CommonName, cert.URIs)
			}
			if life := time.Until(cert.NotAfter); life > 20*time.Minute || life < 19*time.Minute {
				t.Errorf("key refresh certificate lives %v, want 20m", life)
			}
			if got := s.CallsFor(ztsfake.EndpointKeyRefresh, "client.api"); got != 1 {
				t.Errorf("CallsFor(key-refresh, client.api) = %d, want 1", got)
			}
			if s.LastCSR(ztsfake.EndpointKeyRefresh) == nil {
				t.Errorf("LastCSR(key-refresh) = nil")
			}
		})
	}
}

func TestKeyRefreshErrors(t *testing.T) {
	s := ztsfake.NewTest(t, ztsfake.Options{})
	key, keyPEM := newECKey(t)
	if err := s.RegisterServiceKey("client", "api", "v1", keyPEM); err != nil { // a private key PEM works too
		t.Fatalf("RegisterServiceKey(private key PEM): %v", err)
	}
	otherKey, otherPEM := newECKey(t)
	good := ntoken(t, "client", "api", "v1", keyPEM, time.Hour)
	csr := newCSR(t, key, csrSpec{cn: "client.api"})
	unsigned, _, _ := strings.Cut(good, ";s=")

	tests := []struct {
		name     string
		client   zts.ZTSClient
		service  string
		req      zts.InstanceRefreshRequest
		wantCode int
		wantMsg  string
	}{
		{name: "CSR with another key", client: ntokenClient(t, s, good), service: "api",
			req: zts.InstanceRefreshRequest{Csr: newCSR(t, otherKey, csrSpec{cn: "client.api"})}, wantCode: 400, wantMsg: "public key mismatch"},
		{name: "CN of another service", client: ntokenClient(t, s, good), service: "api",
			req: zts.InstanceRefreshRequest{Csr: newCSR(t, key, csrSpec{cn: "client.web"})}, wantCode: 400, wantMsg: "common name"},
		{name: "another service's path", client: ntokenClient(t, s, good), service: "web",
			req: zts.InstanceRefreshRequest{Csr: csr}, wantCode: 403, wantMsg: "may not refresh"},
		{name: "unknown key version", client: ntokenClient(t, s, ntoken(t, "client", "api", "v2", keyPEM, time.Hour)), service: "api",
			req: zts.InstanceRefreshRequest{Csr: csr}, wantCode: 401, wantMsg: "no public key \"v2\""},
		{name: "signed by another key", client: ntokenClient(t, s, ntoken(t, "client", "api", "v1", otherPEM, time.Hour)), service: "api",
			req: zts.InstanceRefreshRequest{Csr: csr}, wantCode: 401, wantMsg: "does not verify"},
		{name: "tampered token", client: ntokenClient(t, s, strings.Replace(unsigned, "n=api", "n=web", 1)+";s=AAAA"), service: "web",
			req: zts.InstanceRefreshRequest{Csr: csr}, wantCode: 401, wantMsg: "Athenz-Principal-Auth"},
		{name: "expired token", client: ntokenClient(t, s, ntoken(t, "client", "api", "v1", keyPEM, -time.Minute)), service: "api",
			req: zts.InstanceRefreshRequest{Csr: csr}, wantCode: 401, wantMsg: "expired"},
		{name: "no credentials", client: anonClient(t, s), service: "api",
			req: zts.InstanceRefreshRequest{Csr: csr}, wantCode: 401, wantMsg: "authentication required"},
		{name: "unknown keyId in body", client: newClient(t, s, "client", "api"), service: "api",
			req: zts.InstanceRefreshRequest{Csr: csr, KeyId: "v9"}, wantCode: 400, wantMsg: "Unable to retrieve public key"},
		{name: "certificate without keyId", client: newClient(t, s, "client", "api"), service: "api",
			req: zts.InstanceRefreshRequest{Csr: csr}, wantCode: 400, wantMsg: "Unable to retrieve public key"},
		{name: "N-token signed by ZTS", client: ntokenClient(t, s, ztsSignedNToken(t, s)), service: "api",
			req: zts.InstanceRefreshRequest{Csr: csr, KeyId: "v1"}, wantCode: 400, wantMsg: "Unable to retrieve public key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.client.PostInstanceRefreshRequest("client", zts.SimpleName(tc.service), &tc.req)
			wantResourceError(t, "PostInstanceRefreshRequest", err, tc.wantCode, tc.wantMsg)
		})
	}

}

// ztsSignedNToken registers an instance with "token": true and returns the
// N-token ZTS signed for it (z=zts).
func ztsSignedNToken(t *testing.T, s *ztsfake.Server) string {
	t.Helper()
	key, _ := newECKey(t)
	csr := newCSR(t, key, csrSpec{cn: "client.api", dns: []string{"api.client.k8s.example", "i-1.instanceid.athenz.k8s.example"}, uris: []string{"spiffe://client/sa/api"}})
	id, _, err := anonClient(t, s).PostInstanceRegisterInformation(&zts.InstanceRegisterInformation{
		Provider: "k8s.provider", Domain: "client", Service: "api", AttestationData: "token", Csr: csr, Token: new(true),
	})
	if err != nil || id.ServiceToken == "" {
		t.Fatalf("register with token: %v (token %q)", err, id.ServiceToken)
	}
	return string(id.ServiceToken)
}

// TestKeyRefreshWithCertificate: a service gets its first certificate with
// an N-token and refreshes it with that certificate; the refresh must keep
// the certificate's key and DNS names and may be restricted by the
// caller's IP (ZTS's athenz.zts.cert_refresh_ip_fname), the first
// certificate may not.
func TestKeyRefreshWithCertificate(t *testing.T) {
	s := ztsfake.NewTest(t, ztsfake.Options{})
	key, keyPEM := newECKey(t)
	if err := s.RegisterServiceKey("client", "api", "v1", publicPEM(t, key)); err != nil {
		t.Fatal(err)
	}
	spec := csrSpec{cn: "client.api", dns: []string{"api.client.k8s.example"}, uris: []string{"spiffe://client/sa/api"}}
	byNToken := ntokenClient(t, s, ntoken(t, "client", "api", "v1", keyPEM, time.Hour))
	first, err := byNToken.PostInstanceRefreshRequest("client", "api", &zts.InstanceRefreshRequest{Csr: newCSR(t, key, spec), KeyId: "ignored"})
	if err != nil {
		t.Fatalf("first certificate with an N-token (keyId from the N-token, the body's ignored): %v", err)
	}
	byCert := certClient(t, s, []byte(first.Certificate), keyPEM)
	otherKey, _ := newECKey(t)
	if err := s.RegisterServiceKey("client", "api", "v2", publicPEM(t, otherKey)); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		req      zts.InstanceRefreshRequest
		wantCode int
		wantMsg  string
	}{
		{name: "same key and names", req: zts.InstanceRefreshRequest{Csr: newCSR(t, key, spec), KeyId: "v1"}},
		{name: "other DNS names", req: zts.InstanceRefreshRequest{Csr: newCSR(t, key, csrSpec{cn: "client.api", dns: []string{"api.client.other.example"}}), KeyId: "v1"},
			wantCode: 400, wantMsg: "DNS_NAME_MISMATCH"},
		{name: "another registered key", req: zts.InstanceRefreshRequest{Csr: newCSR(t, otherKey, spec), KeyId: "v2"},
			wantCode: 400, wantMsg: "PUBLIC_KEY_MISMATCH"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := byCert.PostInstanceRefreshRequest("client", "api", &tc.req)
			if tc.wantCode == 0 {
				if err != nil {
					t.Errorf("refresh with the certificate: %v", err)
				}
				return
			}
			wantResourceError(t, "PostInstanceRefreshRequest", err, tc.wantCode, tc.wantMsg)
		})
	}

	t.Run("refresh restricted by IP", func(t *testing.T) {
		s.RestrictCertRefresh(netip.MustParsePrefix("10.0.0.0/8"))
		_, err := byCert.PostInstanceRefreshRequest("client", "api", &zts.InstanceRefreshRequest{Csr: newCSR(t, key, spec), KeyId: "v1"})
		wantResourceError(t, "refresh from 127.0.0.1 restricted to 10.0.0.0/8", err, 403, "IP not allowed for refresh: 127.0.0.1")
		if _, err := byNToken.PostInstanceRefreshRequest("client", "api", &zts.InstanceRefreshRequest{Csr: newCSR(t, key, spec)}); err != nil {
			t.Errorf("a first certificate with an N-token under the restriction: %v, want it issued", err)
		}
		s.RestrictCertRefresh(netip.MustParsePrefix("127.0.0.0/8"))
		if _, err := byCert.PostInstanceRefreshRequest("client", "api", &zts.InstanceRefreshRequest{Csr: newCSR(t, key, spec), KeyId: "v1"}); err != nil {
			t.Errorf("refresh from an allowed range: %v", err)
		}
		s.RestrictCertRefresh()
	})
}

// TestNTokenAuth checks that N-tokens authenticate token requests and that
// the public key endpoint serves what zmssvctoken needs.
func TestNTokenAuth(t *testing.T) {
	clock := &testClock{now: time.Now()}
	s := ztsfake.NewTest(t, ztsfake.Options{Now: clock.Now})
	s.Grant("prov", "reader", "client.api")
	key, keyPEM := newRSAKey(t)
	if err := s.RegisterServiceKey("Client", "API", "0", publicPEM(t, key)); err != nil {
		t.Fatal(err)
	}
	c := ntokenClient(t, s, ntoken(t, "client", "api", "0", keyPEM, time.Hour))
	if _, err := c.GetRoleToken("prov", "reader", nil, nil, ""); err != nil {
		t.Fatalf("GetRoleToken with an N-token: %v", err)
	}

	tests := []struct {
		name            string
		domain, service string
		keyID           string
		wantPEM         []byte
		wantCode        int
	}{
		{name: "registered service key", domain: "client", service: "api", keyID: "0", wantPEM: publicPEM(t, key)},
		{name: "ZTS signing key", domain: "sys.auth", service: "zts", keyID: s.SigningKeyID(), wantPEM: s.SigningPublicKeyPEM()},
		{name: "unknown key", domain: "client", service: "api", keyID: "1", wantCode: 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			entry, err := anonClient(t, s).GetPublicKeyEntry(zts.DomainName(tc.domain), zts.SimpleName(tc.service), tc.keyID)
			if tc.wantCode != 0 {
				wantResourceError(t, "GetPublicKeyEntry", err, tc.wantCode, "no public key")
				return
			}
			if err != nil {
				t.Fatalf("GetPublicKeyEntry(%s, %s, %s): %v", tc.domain, tc.service, tc.keyID, err)
			}
			got, err := tokens.YBase64.DecodeString(entry.Key)
			if err != nil || entry.Id != tc.keyID || string(got) != string(tc.wantPEM) {
				t.Errorf("GetPublicKeyEntry(%s, %s, %s) = %+v (%v), want id %s and key %q", tc.domain, tc.service, tc.keyID, entry, err, tc.keyID, tc.wantPEM)
			}
		})
	}

	// Past the token's expiry by the fake's clock, it is refused.
	clock.Add(2 * time.Hour)
	_, err := c.GetRoleToken("prov", "reader", nil, nil, "")
	wantResourceError(t, "GetRoleToken with an expired N-token", err, 401, "expired")
}
