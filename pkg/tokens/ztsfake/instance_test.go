package ztsfake_test

import (
	"context"
	"crypto/x509"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/AthenZ/athenz/clients/go/zts"
	"github.com/AthenZ/athenz/libs/go/zmssvctoken"

	"github.com/athenz-injector/athenz-injector/pkg/tokens/ztsfake"
)

// attestLog records the confirmations the fake asked for; it accepts a
// register with the attestation data "good-token" and every refresh.
type attestLog struct {
	mu   sync.Mutex
	seen []ztsfake.InstanceConfirmation
}

func (a *attestLog) attest(_ context.Context, c ztsfake.InstanceConfirmation) (map[string]string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.seen = append(a.seen, c)
	if !c.Refresh && c.AttestationData != "good-token" {
		return nil, errors.New("attestation refused: bad token")
	}
	return nil, nil
}

func (a *attestLog) last() ztsfake.InstanceConfirmation {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.seen[len(a.seen)-1]
}

// podSpec is the CSR the sidecar sends for client.api in Pod pod-1.
var podSpec = csrSpec{
	cn:   "client.api",
	dns:  []string{"api.client.k8s.example", "pod-1.instanceid.athenz.k8s.example"},
	uris: []string{"spiffe://client/sa/api"},
	ips:  []string{"10.0.0.7"},
}

// podCSR is podSpec's CSR with a new key.
func podCSR(t *testing.T) (string, []byte) {
	t.Helper()
	key, keyPEM := newECKey(t)
	return newCSR(t, key, podSpec), keyPEM
}

func TestInstanceLifecycle(t *testing.T) {
	log := &attestLog{}
	s := ztsfake.NewTest(t, ztsfake.Options{Attest: log.attest})
	s.Grant("prov", "reader", "client.api")
	anon := anonClient(t, s)

	// Register.
	csr, keyPEM := podCSR(t)
	id, location, err := anon.PostInstanceRegisterInformation(&zts.InstanceRegisterInformation{
		Provider: "k8s.provider", Domain: "client", Service: "api",
		AttestationData: "good-token", Csr: csr, Token: new(true), ExpiryTime: int32p(30),
	})
	if err != nil {
		t.Fatalf("PostInstanceRegisterInformation: %v", err)
	}
	if want := "/zts/v1/instance/k8s.provider/client/api/pod-1"; location != want {
		t.Errorf("PostInstanceRegisterInformation: Location %q, want %q", location, want)
	}
	if id.Provider != "k8s.provider" || id.Name != "client.api" || id.InstanceId != "pod-1" ||
		id.X509CertificateSigner != string(s.CACertPEM()) {
		t.Errorf("PostInstanceRegisterInformation: identity %+v, want provider k8s.provider, name client.api, id pod-1, signer = CA", id)
	}
	cert := parseCert(t, s, id.X509Certificate, x509.ExtKeyUsageClientAuth)
	parseCert(t, s, id.X509Certificate, x509.ExtKeyUsageServerAuth)
	if cert.Subject.CommonName != "client.api" ||
		!slices.Equal(cert.DNSNames, []string{"api.client.k8s.example", "pod-1.instanceid.athenz.k8s.example"}) ||
		len(cert.URIs) != 1 || cert.URIs[0].String() != "spiffe://client/sa/api" ||
		len(cert.IPAddresses) != 1 || cert.IPAddresses[0].String() != "10.0.0.7" {
		t.Errorf("registered certificate: CN %q DNS %v URIs %v IPs %v, want the CSR's", cert.Subject.CommonName, cert.DNSNames, cert.URIs, cert.IPAddresses)
	}
	if life := time.Until(cert.NotAfter); life > 30*time.Minute || life < 29*time.Minute {
		t.Errorf("registered certificate lives %v, want 30m (expiryTime)", life)
	}
	if got := s.LastCSR(ztsfake.EndpointInstanceRegister); got == nil || !slices.Contains(got.DNSNames, "pod-1.instanceid.athenz.k8s.example") {
		t.Errorf("LastCSR(register) = %v, want the CSR sent", got)
	}
	conf := log.last()
	if conf.Refresh || conf.Provider != "k8s.provider" || conf.Domain != "client" || conf.Service != "api" ||
		conf.Attributes["instanceId"] != "pod-1" || conf.Attributes["sanURI"] != "spiffe://client/sa/api" ||
		conf.Attributes["sanDNS"] != "api.client.k8s.example,pod-1.instanceid.athenz.k8s.example" ||
		conf.Attributes["sanIP"] != "10.0.0.7" || conf.Attributes["clientIP"] != "127.0.0.1" ||
		!strings.Contains(conf.Attributes["csrPublicKey"], "PUBLIC KEY") {
		t.Errorf("Attest got %+v, want the register confirmation of client.api pod-1", conf)
	}
	if got := s.CallsFor(ztsfake.EndpointInstanceRegister, "client.api"); got != 1 {
		t.Errorf("CallsFor(register, client.api) = %d, want 1", got)
	}

	// The service token is an N-token signed by ZTS (z=zts) that the
	// Athenz library validates and the fake accepts.
	v, err := zmssvctoken.NewPubKeyTokenValidator(s.SigningPublicKeyPEM())
	if err != nil {
		t.Fatal(err)
	}
	nt, err := v.Validate(string(id.ServiceToken))
	if err != nil {
		t.Fatalf("serviceToken %q does not validate: %v", id.ServiceToken, err)
	}
	if nt.Domain != "client" || nt.Name != "api" || nt.KeyService != "zts" || nt.KeyVersion != s.SigningKeyID() {
		t.Errorf("serviceToken: %v, want client.api, key service zts, key %s", nt, s.SigningKeyID())
	}
	withToken := anonClient(t, s)
	withToken.AddCredentials("Athenz-Principal-Auth", string(id.ServiceToken))
	if _, err := withToken.GetRoleToken("prov", "reader", nil, nil, ""); err != nil {
		t.Errorf("GetRoleToken authenticated by the serviceToken: %v", err)
	}

	// Refresh over mTLS with the new certificate.
	certPEM := []byte(id.X509Certificate)
	refresh := func(certPEM, keyPEM []byte) (*zts.InstanceIdentity, error) {
		csr, _ := podCSR(t)
		return certClient(t, s, certPEM, keyPEM).PostInstanceRefreshInformation("k8s.provider", "client", "api", "pod-1",
			&zts.InstanceRefreshInformation{Csr: csr})
	}
	first := certPEM
	ref1, err := refresh(certPEM, keyPEM)
	if err != nil {
		t.Fatalf("PostInstanceRefreshInformation with the registered certificate: %v", err)
	}
	if c := parseCert(t, s, ref1.X509Certificate, x509.ExtKeyUsageClientAuth); c.SerialNumber.Cmp(cert.SerialNumber) == 0 {
		t.Errorf("refresh returned the same certificate serial")
	}
	if conf := log.last(); !conf.Refresh || conf.AttestationData != "" {
		t.Errorf("Attest on refresh got %+v, want Refresh true", conf)
	}
	// The refresh CSR has a new key; present the old key's certificate
	// again: still the previous certificate, allowed once more.
	if _, err := refresh(first, keyPEM); err != nil {
		t.Fatalf("refresh with the previous certificate: %v", err)
	}
	// Now first is two certificates old.
	_, err = refresh(first, keyPEM)
	wantResourceError(t, "refresh with an old certificate", err, http.StatusForbidden, "not the current or previous certificate")

	// Delete.
	delClient := newClient(t, s, "client", "api")
	if err := delClient.DeleteInstanceIdentity("k8s.provider", "client", "api", "pod-1"); err != nil {
		t.Fatalf("DeleteInstanceIdentity: %v", err)
	}
	err = delClient.DeleteInstanceIdentity("k8s.provider", "client", "api", "pod-1")
	wantResourceError(t, "DeleteInstanceIdentity again", err, http.StatusNotFound, "unknown instance")
	_, err = refresh(first, keyPEM)
	wantResourceError(t, "refresh after delete", err, http.StatusForbidden, "unable to find certificate record")
}

func TestInstanceRefreshErrors(t *testing.T) {
	s := ztsfake.NewTest(t, ztsfake.Options{})
	csr, keyPEM := podCSR(t)
	id, _, err := anonClient(t, s).PostInstanceRegisterInformation(&zts.InstanceRegisterInformation{
		Provider: "k8s.provider", Domain: "client", Service: "api", AttestationData: "x", Csr: csr,
	})
	if err != nil {
		t.Fatalf("PostInstanceRegisterInformation: %v", err)
	}
	registered := certClient(t, s, []byte(id.X509Certificate), keyPEM)
	otherCSR, _ := podCSR(t)
	key, _ := newECKey(t)
	wrongID := newCSR(t, key, csrSpec{cn: "client.api", dns: []string{"pod-2.instanceid.athenz.k8s.example"}})
	wrongCN := newCSR(t, key, csrSpec{cn: "client.web", dns: []string{"pod-1.instanceid.athenz.k8s.example"}})
	svcKey, svcKeyPEM := newECKey(t)
	if err := s.RegisterServiceKey("client", "api", "v1", publicPEM(t, svcKey)); err != nil {
		t.Fatal(err)
	}
	builder, err := zmssvctoken.NewTokenBuilder("client", "api", svcKeyPEM, "v1")
	if err != nil {
		t.Fatal(err)
	}
	ntok, err := builder.Token().Value()
	if err != nil {
		t.Fatal(err)
	}
	ntokenClient := anonClient(t, s)
	ntokenClient.AddCredentials("Athenz-Principal-Auth", ntok)

	tests := []struct {
		name     string
		client   zts.ZTSClient
		service  string
		csr      string
		wantCode int
		wantMsg  string
	}{
		{name: "unauthenticated", client: anonClient(t, s), service: "api", csr: otherCSR, wantCode: 401, wantMsg: "authentication required"},
		{name: "N-token is not enough", client: ntokenClient, service: "api", csr: otherCSR, wantCode: 403, wantMsg: "requires authentication with the instance's certificate"},
		{name: "other principal", client: newClient(t, s, "client", "web"), service: "api", csr: otherCSR, wantCode: 403, wantMsg: "does not match client.api"},
		{name: "certificate never registered", client: newClient(t, s, "client", "api"), service: "api", csr: otherCSR, wantCode: 403, wantMsg: "not the current or previous"},
		{name: "instance id mismatch", client: registered, service: "api", csr: wrongID, wantCode: 400, wantMsg: "instance id"},
		{name: "CN mismatch", client: registered, service: "api", csr: wrongCN, wantCode: 400, wantMsg: "common name"},
		{name: "bad CSR", client: registered, service: "api", csr: "garbage", wantCode: 400, wantMsg: "csr"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.client.PostInstanceRefreshInformation("k8s.provider", "client", zts.SimpleName(tc.service), "pod-1",
				&zts.InstanceRefreshInformation{Csr: tc.csr})
			wantResourceError(t, "PostInstanceRefreshInformation", err, tc.wantCode, tc.wantMsg)
		})
	}
}

func TestInstanceRegisterErrors(t *testing.T) {
	log := &attestLog{}
	s := ztsfake.NewTest(t, ztsfake.Options{Attest: log.attest})
	key, _ := newECKey(t)
	good := csrSpec{cn: "client.api", dns: []string{"api.client.k8s.example", "pod-1.instanceid.athenz.k8s.example"}}
	with := func(f func(*csrSpec)) string {
		spec := good
		f(&spec)
		return newCSR(t, key, spec)
	}

	tests := []struct {
		name     string
		info     zts.InstanceRegisterInformation
		wantCode int
		wantMsg  string
	}{
		{name: "provider refuses", info: zts.InstanceRegisterInformation{Provider: "p", Domain: "client", Service: "api",
			AttestationData: "bad", Csr: newCSR(t, key, good)}, wantCode: 403, wantMsg: "attestation refused: bad token"},
		{name: "CN is another service", info: zts.InstanceRegisterInformation{Provider: "p", Domain: "client", Service: "api",
			AttestationData: "good-token", Csr: with(func(c *csrSpec) { c.cn = "client.web" })}, wantCode: 400, wantMsg: "common name"},
		{name: "no instance id", info: zts.InstanceRegisterInformation{Provider: "p", Domain: "client", Service: "api",
			AttestationData: "good-token", Csr: with(func(c *csrSpec) { c.dns = c.dns[:1] })}, wantCode: 400, wantMsg: "no instance id"},
		{name: "instance id from athenz URI", info: zts.InstanceRegisterInformation{Provider: "p", Domain: "client", Service: "api",
			AttestationData: "good-token", Csr: with(func(c *csrSpec) {
				c.dns = c.dns[:1]
				c.uris = []string{"athenz://instanceid/p/pod-9"}
			})}, wantCode: 201},
		{name: "spiffe URI of another service", info: zts.InstanceRegisterInformation{Provider: "p", Domain: "client", Service: "api",
			AttestationData: "good-token", Csr: with(func(c *csrSpec) { c.uris = []string{"spiffe://client/sa/web"} })}, wantCode: 400, wantMsg: "SAN URI"},
		{name: "spiffe URI with trust domain", info: zts.InstanceRegisterInformation{Provider: "p", Domain: "client", Service: "api",
			AttestationData: "good-token", Csr: with(func(c *csrSpec) { c.uris = []string{"spiffe://cluster.local/ns/client/sa/client.api"} })}, wantCode: 201},
		{name: "foreign DNS name", info: zts.InstanceRegisterInformation{Provider: "p", Domain: "client", Service: "api",
			AttestationData: "good-token", Csr: with(func(c *csrSpec) { c.dns = append(c.dns, "evil.example.com") })}, wantCode: 400, wantMsg: "SAN DNS"},
		{name: "hostname allowed", info: zts.InstanceRegisterInformation{Provider: "p", Domain: "client", Service: "api", Hostname: "host.example.com",
			AttestationData: "good-token", Csr: with(func(c *csrSpec) { c.dns = append(c.dns, "host.example.com") })}, wantCode: 201},
		{name: "missing CSR", info: zts.InstanceRegisterInformation{Provider: "p", Domain: "client", Service: "api",
			AttestationData: "good-token"}, wantCode: 400, wantMsg: "csr"},
		{name: "bad service name", info: zts.InstanceRegisterInformation{Provider: "p", Domain: "client", Service: "a.b",
			AttestationData: "good-token", Csr: newCSR(t, key, good)}, wantCode: 400, wantMsg: "service"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := anonClient(t, s).PostInstanceRegisterInformation(&tc.info)
			if tc.wantCode == 201 {
				if err != nil {
					t.Fatalf("PostInstanceRegisterInformation: %v, want 201", err)
				}
				return
			}
			wantResourceError(t, "PostInstanceRegisterInformation", err, tc.wantCode, tc.wantMsg)
		})
	}
}

func TestInstanceProviderAttributes(t *testing.T) {
	tests := []struct {
		name         string
		opts         ztsfake.Options
		attestation  string
		wantCode     int
		wantLifetime time.Duration
		wantRefresh  int
	}{
		{name: "default attest accepts data", attestation: "x", wantCode: 201, wantLifetime: time.Hour, wantRefresh: 200},
		{name: "default attest refuses empty data", attestation: "", wantCode: 403},
		{name: "certExpiryTime and certRefresh", attestation: "x", wantCode: 201, wantLifetime: 10 * time.Minute, wantRefresh: 403,
			opts: ztsfake.Options{Attest: func(_ context.Context, c ztsfake.InstanceConfirmation) (map[string]string, error) {
				return map[string]string{"certExpiryTime": "10", "certRefresh": "false"}, nil
			}}},
		{name: "refresh refused by provider", attestation: "x", wantCode: 201, wantLifetime: time.Hour, wantRefresh: 403,
			opts: ztsfake.Options{Attest: func(_ context.Context, c ztsfake.InstanceConfirmation) (map[string]string, error) {
				if c.Refresh {
					return nil, errors.New("k8s provider: instance cannot be refreshed")
				}
				return nil, nil
			}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := ztsfake.NewTest(t, tc.opts)
			csr, keyPEM := podCSR(t)
			id, _, err := anonClient(t, s).PostInstanceRegisterInformation(&zts.InstanceRegisterInformation{
				Provider: "p", Domain: "client", Service: "api", AttestationData: tc.attestation, Csr: csr,
			})
			if tc.wantCode != 201 {
				wantResourceError(t, "PostInstanceRegisterInformation", err, tc.wantCode, "")
				return
			}
			if err != nil {
				t.Fatalf("PostInstanceRegisterInformation: %v", err)
			}
			cert := parseCert(t, s, id.X509Certificate, x509.ExtKeyUsageClientAuth)
			if life := time.Until(cert.NotAfter); life > tc.wantLifetime || life < tc.wantLifetime-time.Minute {
				t.Errorf("certificate lives %v, want %v", life, tc.wantLifetime)
			}
			newCSR, _ := podCSR(t)
			_, err = certClient(t, s, []byte(id.X509Certificate), keyPEM).PostInstanceRefreshInformation("p", "client", "api", "pod-1",
				&zts.InstanceRefreshInformation{Csr: newCSR})
			if tc.wantRefresh == 200 {
				if err != nil {
					t.Errorf("PostInstanceRefreshInformation: %v, want 200", err)
				}
				return
			}
			wantResourceError(t, "PostInstanceRefreshInformation", err, tc.wantRefresh, "")
		})
	}
}
