package identity_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/tls"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/AthenZ/athenz/libs/go/zmssvctoken"

	"github.com/athenz-injector/athenz-injector/pkg/sidecar/identity"
	"github.com/athenz-injector/athenz-injector/pkg/tokens/ztsfake"
)

func TestCopperArgosRegisterAndRefresh(t *testing.T) {
	attest := &attestLog{}
	f := newFixture(t, ztsfake.Options{Attest: attest.attest}, false)
	f.zts.Grant("prov", "reader", "client.api")
	m := newManager(t, f.options())
	if err := m.Ready(); err == nil || !strings.Contains(err.Error(), "no identity certificate yet") {
		t.Errorf("Ready() before Run = %v, want \"no identity certificate yet\"", err)
	}
	startRun(t, m)
	waitReady(t, m)

	if got := f.zts.CallsFor(ztsfake.EndpointInstanceRegister, "client.api"); got != 1 {
		t.Errorf("register calls = %d, want 1", got)
	}
	if c := attest.last(); c.Refresh || c.AttestationData != "sa-token-1" || c.Provider != testProvider {
		t.Errorf("provider asked to confirm %+v, want a register of %s with the bare token", c, testProvider)
	}
	for name, want := range map[string]os.FileMode{
		identity.CertFileName: 0o644, identity.KeyFileName: 0o640, identity.CAFileName: 0o644,
	} {
		fi, err := os.Stat(filepath.Join(f.dir, name))
		if err != nil {
			t.Fatalf("stat %s: %v", name, err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", name, fi.Mode().Perm(), want)
		}
	}
	if ca := readFile(t, filepath.Join(f.dir, identity.CAFileName)); !bytes.Equal(ca, f.zts.CACertPEM()) {
		t.Errorf("%s = %q, want the CA ZTS sent", identity.CAFileName, ca)
	}
	certPEM, keyPEM, leaf := f.identityFiles(t)
	if !bytes.Equal(m.CertificateChainPEM(), certPEM) {
		t.Errorf("CertificateChainPEM() differs from %s", identity.CertFileName)
	}
	if st := m.Status(); st.InstanceID != testPodUID || st.Renewals != 1 || st.Serial != leaf.SerialNumber.Text(16) {
		t.Errorf("Status() = %+v, want instance %s, 1 renewal, serial %s", st, testPodUID, leaf.SerialNumber.Text(16))
	}
	if err := f.roleTokenThrough(m); err != nil {
		t.Fatalf("GetRoleToken through Transport(): %v", err)
	}
	if m.NTokenSource() != nil {
		t.Errorf("NTokenSource() = non-nil without Options.NToken, want nil")
	}

	reader := startReader(t, f.dir)
	f.writeToken(t, "sa-token-2") // kubelet rotated the token
	prev := leaf
	for i := 1; i <= 6; i++ {
		f.advance(t, 40*time.Minute) // to 2/3 of the 1 h lifetime: renewals come 36 to 40 min apart
		if got := f.zts.Calls(ztsfake.EndpointInstanceRefresh); got != i {
			t.Fatalf("after %d lifetimes: refresh calls = %d, want %d", i, got, i)
		}
		if err := m.Ready(); err != nil {
			t.Fatalf("Ready() after refresh %d: %v", i, err)
		}
		newCert, newKey, leaf := f.identityFiles(t)
		if leaf.SerialNumber.Cmp(prev.SerialNumber) == 0 || !leaf.NotAfter.After(prev.NotAfter) {
			t.Errorf("refresh %d: serial %s NotAfter %s, want a new serial and a NotAfter after %s",
				i, leaf.SerialNumber.Text(16), leaf.NotAfter, prev.NotAfter)
		}
		if bytes.Equal(newCert, certPEM) || !bytes.Equal(newKey, keyPEM) {
			t.Errorf("refresh %d: certificate file unchanged or key file changed; want a new certificate for the same key", i)
		}
		if c := attest.last(); !c.Refresh || c.AttestationData != "sa-token-2" {
			t.Errorf("refresh %d: provider asked to confirm %+v, want a refresh with the re-read token", i, c)
		}
		certPEM, prev = newCert, leaf
	}
	if got := f.zts.Calls(ztsfake.EndpointInstanceRegister); got != 1 {
		t.Errorf("register calls = %d after refreshes, want 1", got)
	}
	// The first certificate has long expired: a call that works now was
	// made with a rotated one.
	if err := f.roleTokenThrough(m); err != nil {
		t.Errorf("GetRoleToken through Transport() after rotations: %v", err)
	}
	reader.Check(t, "the identity files")
}

func TestCSRSANs(t *testing.T) {
	tests := []struct {
		name        string
		domain      string
		trustDomain string
		keyType     identity.KeyType
		wantDNS     []string
		wantURI     string
	}{
		{name: "spiffe without trust domain", domain: "client", keyType: identity.KeyECDSA,
			wantDNS: []string{"api.client.k8s.example", "pod-1.instanceid.athenz.k8s.example"},
			wantURI: "spiffe://client/sa/api"},
		{name: "spiffe with trust domain", domain: "client", trustDomain: "cluster.local", keyType: identity.KeyECDSA,
			wantDNS: []string{"api.client.k8s.example", "pod-1.instanceid.athenz.k8s.example"},
			wantURI: "spiffe://cluster.local/ns/team-ns/sa/client.api"},
		{name: "dotted domain, RSA key", domain: "sports.web", keyType: identity.KeyRSA,
			wantDNS: []string{"api.sports-web.k8s.example", "pod-1.instanceid.athenz.k8s.example"},
			wantURI: "spiffe://sports.web/sa/api"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, ztsfake.Options{}, false)
			o := f.options()
			o.Domain, o.TrustDomain, o.PodNamespace, o.KeyType = tc.domain, tc.trustDomain, "team-ns", tc.keyType
			m := newManager(t, o)
			if err := m.Init(t.Context()); err != nil {
				t.Fatalf("Init: %v", err)
			}
			csr := f.zts.LastCSR(ztsfake.EndpointInstanceRegister)
			if csr == nil {
				t.Fatal("LastCSR(register) = nil")
			}
			var uris []string
			for _, u := range csr.URIs {
				uris = append(uris, u.String())
			}
			var ips []string
			for _, ip := range csr.IPAddresses {
				ips = append(ips, ip.String())
			}
			if cn := csr.Subject.CommonName; cn != tc.domain+".api" {
				t.Errorf("CSR CN %q, want %q", cn, tc.domain+".api")
			}
			if !slices.Equal(csr.DNSNames, tc.wantDNS) {
				t.Errorf("CSR SAN DNS %v, want exactly %v", csr.DNSNames, tc.wantDNS)
			}
			if !slices.Equal(uris, []string{tc.wantURI}) {
				t.Errorf("CSR SAN URI %v, want exactly [%s]", uris, tc.wantURI)
			}
			if !slices.Equal(ips, []string{testPodIP}) {
				t.Errorf("CSR SAN IP %v, want exactly [%s]", ips, testPodIP)
			}
			if len(csr.EmailAddresses) != 0 {
				t.Errorf("CSR SAN email %v, want none", csr.EmailAddresses)
			}
			_, _, leaf := f.identityFiles(t)
			if len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal(net.ParseIP(testPodIP)) {
				t.Errorf("certificate IP %v, want %s", leaf.IPAddresses, testPodIP)
			}
			switch tc.keyType {
			case identity.KeyRSA:
				if _, ok := leaf.PublicKey.(*rsa.PublicKey); !ok {
					t.Errorf("key type %T, want RSA", leaf.PublicKey)
				}
			default:
				if _, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok {
					t.Errorf("key type %T, want ECDSA", leaf.PublicKey)
				}
			}
		})
	}
}

func TestAttestationFormats(t *testing.T) {
	tests := []struct {
		format identity.AttestationFormat
		want   string
	}{
		{format: identity.AttestationToken, want: "sa-token-1"},
		{format: identity.AttestationIDTokenJSON, want: `{"identityToken":"sa-token-1"}`},
	}
	for _, tc := range tests {
		t.Run(string(tc.format), func(t *testing.T) {
			t.Parallel()
			attest := &attestLog{}
			f := newFixture(t, ztsfake.Options{Attest: attest.attest}, false)
			o := f.options()
			o.AttestationFormat = tc.format
			if err := newManager(t, o).Init(t.Context()); err != nil {
				t.Fatalf("Init: %v", err)
			}
			got := attest.last().AttestationData
			if got != tc.want {
				t.Errorf("attestation data %q, want %q", got, tc.want)
			}
			if tc.format == identity.AttestationIDTokenJSON && !json.Valid([]byte(got)) {
				t.Errorf("attestation data %q is not JSON", got)
			}
		})
	}
}

func TestNTokenFromZTS(t *testing.T) {
	f := newFixture(t, ztsfake.Options{}, false)
	o := f.options()
	o.NToken = true
	m := newManager(t, o)
	src := m.NTokenSource()
	if src == nil {
		t.Fatal("NTokenSource() = nil with Options.NToken")
	}
	if _, _, err := src.Token(); err == nil {
		t.Errorf("Token() before the first certificate: nil error, want one")
	}
	if err := m.Init(t.Context()); err != nil {
		t.Fatalf("Init: %v", err)
	}
	tok, exp, err := src.Token()
	if err != nil {
		t.Fatalf("Token(): %v", err)
	}
	v, err := zmssvctoken.NewPubKeyTokenValidator(f.zts.SigningPublicKeyPEM())
	if err != nil {
		t.Fatal(err)
	}
	nt, err := v.Validate(tok)
	if err != nil {
		t.Fatalf("the N-token from ZTS does not validate: %v", err)
	}
	if nt.Domain != testDomain || nt.Name != testService {
		t.Errorf("N-token for %s.%s, want client.api", nt.Domain, nt.Name)
	}
	// ZTS gives the N-token a lifetime of its own (a day by default),
	// whatever the certificate's (an hour here).
	if st, want := m.Status(), f.clock.Now().Add(ztsfake.DefaultNTokenLifetime); !exp.Equal(want) || !want.After(st.NotAfter) {
		t.Errorf("N-token expiry %s, want ZTS's N-token lifetime from now, %s (certificate NotAfter %s)", exp, want, st.NotAfter)
	}
}

func TestInitWritesFilesAndReturns(t *testing.T) {
	f := newFixture(t, ztsfake.Options{}, false)
	m := newManager(t, f.options())
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := m.Init(ctx); err != nil {
		t.Fatalf("Init: %v", err)
	}
	if err := m.Ready(); err != nil {
		t.Errorf("Ready() after Init: %v", err)
	}
	_, keyPEM, leaf := f.identityFiles(t)
	if f.clock.Pending() != 0 {
		t.Errorf("Init left %d clock timers behind, want none", f.clock.Pending())
	}

	// The sidecar that starts after the init container adopts the identity
	// instead of registering again.
	next := newManager(t, f.options())
	if err := next.Ready(); err != nil {
		t.Fatalf("Ready() of a Manager started on the init container's files: %v", err)
	}
	if err := next.Init(ctx); err != nil {
		t.Fatalf("Init again: %v", err)
	}
	if got := f.zts.Calls(ztsfake.EndpointInstanceRegister); got != 1 {
		t.Errorf("register calls = %d, want 1 (the identity was adopted)", got)
	}
	if st := next.Status(); st.Serial != leaf.SerialNumber.Text(16) {
		t.Errorf("adopted serial %s, want %s", st.Serial, leaf.SerialNumber.Text(16))
	}
	// It refreshes the adopted certificate when due, keeping the key.
	startRun(t, next)
	f.advance(t, 45*time.Minute)
	if got := f.zts.Calls(ztsfake.EndpointInstanceRefresh); got != 1 {
		t.Errorf("refresh calls = %d, want 1", got)
	}
	if _, newKey, newLeaf := f.identityFiles(t); !bytes.Equal(newKey, keyPEM) || newLeaf.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
		t.Errorf("after refresh of the adopted certificate: key changed or serial unchanged")
	}
}

func TestInitPermanentError(t *testing.T) {
	f := newFixture(t, ztsfake.Options{Attest: func(context.Context, ztsfake.InstanceConfirmation) (map[string]string, error) {
		return nil, errTestRefused
	}}, false)
	m := newManager(t, f.options())
	start := time.Now()
	err := m.Init(t.Context())
	if err == nil || !strings.Contains(err.Error(), "403") || !strings.Contains(err.Error(), "refused by test provider") {
		t.Fatalf("Init with a refusing provider: %v, want the 403 and the provider's message", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("Init took %v on a permanent error, want it to return at once", time.Since(start))
	}
	if strings.Contains(err.Error(), "sa-token-1") {
		t.Errorf("Init error %q shows the service account token", err)
	}
	if _, err := os.Stat(filepath.Join(f.dir, identity.CertFileName)); !os.IsNotExist(err) {
		t.Errorf("stat %s after a failed Init: %v, want not exist", identity.CertFileName, err)
	}
}

type testError string

func (e testError) Error() string { return string(e) }

const errTestRefused = testError("refused by test provider")

func TestRotateKey(t *testing.T) {
	f := newFixture(t, ztsfake.Options{AllowAll: true}, false)
	o := f.options()
	o.RotateKey = true
	targets, err := identity.ParseRoleCerts("prov:role.reader")
	if err != nil {
		t.Fatal(err)
	}
	o.RoleCerts = targets
	m := newManager(t, o)
	startRun(t, m)
	waitReady(t, m)
	_, key1, _ := f.identityFiles(t)
	f.advance(t, 45*time.Minute)
	waitReady(t, m)
	_, key2, _ := f.identityFiles(t)
	if bytes.Equal(key1, key2) {
		t.Errorf("key file unchanged after a renewal with RotateKey")
	}
	roleCert := readFile(t, filepath.Join(f.dir, identity.RoleCertFileName(targets[0])))
	if _, err := tls.X509KeyPair(roleCert, key2); err != nil {
		t.Errorf("role certificate after key rotation does not match the new key: %v", err)
	}
}
