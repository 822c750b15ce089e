package identity_test

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/AthenZ/athenz/libs/go/zmssvctoken"

	"github.com/athenz-injector/athenz-injector/pkg/sidecar/identity"
	"github.com/athenz-injector/athenz-injector/pkg/tokens"
	"github.com/athenz-injector/athenz-injector/pkg/tokens/ztsfake"
)

func TestKeyFileMode(t *testing.T) {
	f := newFixture(t, ztsfake.Options{}, false)
	f.zts.Grant("prov", "reader", "client.api")
	key, keyPEM := newECKeyPEM(t)
	if err := f.zts.RegisterServiceKey(testDomain, testService, "v1", publicPEM(t, key)); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	m := newManager(t, identity.Options{
		Mode: identity.ModeKeyFile, ZTSURL: f.zts.URL(), RootCAs: f.zts.CAPool(),
		Domain: testDomain, Service: testService, DNSSuffix: testSuffix,
		KeyFile: keyFile, KeyVersion: "v1",
		IdentityDir: f.dir, Clock: f.clock, Logger: f.logs.logger(),
	})

	// N-tokens are signed locally and validate with the service's public key.
	src := m.NTokenSource()
	if src == nil {
		t.Fatal("NTokenSource() = nil in key-file mode")
	}
	tok, _, err := src.Token()
	if err != nil {
		t.Fatalf("Token(): %v", err)
	}
	v, err := zmssvctoken.NewPubKeyTokenValidator(publicPEM(t, key))
	if err != nil {
		t.Fatal(err)
	}
	if nt, err := v.Validate(tok); err != nil || nt.Domain != testDomain || nt.Name != testService || nt.KeyVersion != "v1" {
		t.Errorf("N-token %v, %v: want a valid token of client.api with key v1", nt, err)
	}

	startRun(t, m)
	waitReady(t, m)
	_, writtenKey, leaf := f.identityFiles(t)
	if !publicKeyOf(t, writtenKey).Equal(key.Public()) {
		t.Errorf("%s is not the service key", identity.KeyFileName)
	}
	if ca := readFile(t, filepath.Join(f.dir, identity.CAFileName)); !bytes.Equal(ca, f.zts.CACertPEM()) {
		t.Errorf("%s is not the caCertBundle ZTS sent", identity.CAFileName)
	}
	csr := f.zts.LastCSR(ztsfake.EndpointKeyRefresh)
	if csr == nil || csr.Subject.CommonName != "client.api" || !slices.Equal(csr.DNSNames, []string{"api.client.k8s.example"}) ||
		len(csr.URIs) != 1 || csr.URIs[0].String() != "spiffe://client/sa/api" || len(csr.IPAddresses) != 0 {
		t.Errorf("key refresh CSR %+v, want CN client.api, SAN DNS api.client.k8s.example, SAN URI spiffe://client/sa/api, no IP", csr)
	}
	if err := f.roleTokenThrough(m); err != nil {
		t.Errorf("GetRoleToken through Transport(): %v", err)
	}

	f.advance(t, 45*time.Minute)
	if got := f.zts.Calls(ztsfake.EndpointKeyRefresh); got != 2 {
		t.Errorf("key refresh calls = %d, want 2", got)
	}
	_, _, next := f.identityFiles(t)
	if next.SerialNumber.Cmp(leaf.SerialNumber) == 0 || !next.NotAfter.After(leaf.NotAfter) {
		t.Errorf("renewed certificate serial %s NotAfter %s, want new and later than %s", next.SerialNumber.Text(16), next.NotAfter, leaf.NotAfter)
	}
	if err := f.roleTokenThrough(m); err != nil {
		t.Errorf("GetRoleToken through Transport() after renewal: %v", err)
	}
}

func publicKeyOf(t *testing.T, keyPEM []byte) interface{ Equal(x crypto.PublicKey) bool } {
	t.Helper()
	signer, err := tokens.ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		t.Fatalf("parsing key: %v", err)
	}
	pub, ok := signer.Public().(interface{ Equal(x crypto.PublicKey) bool })
	if !ok {
		t.Fatalf("public key %T has no Equal", signer.Public())
	}
	return pub
}

func TestFilesModeReload(t *testing.T) {
	f := newFixture(t, ztsfake.Options{}, true)
	f.zts.Grant("prov", "reader", "client.api")
	src := t.TempDir()
	certFile, keyFile := filepath.Join(src, "tls.crt"), filepath.Join(src, "tls.key")
	write := func(name string, b []byte) {
		t.Helper()
		if err := os.WriteFile(name, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cert1, key1, err := f.zts.IssueIdentity(testDomain, testService)
	if err != nil {
		t.Fatal(err)
	}
	write(certFile, cert1)
	write(keyFile, key1)
	m := newManager(t, identity.Options{
		Mode: identity.ModeFiles, ZTSURL: f.zts.URL(), RootCAs: f.zts.CAPool(),
		CertFile: certFile, KeyFile: keyFile, PollInterval: 10 * time.Millisecond,
		IdentityDir: f.dir, Logger: f.logs.logger(),
	})
	if m.NTokenSource() != nil {
		t.Errorf("NTokenSource() in files mode = non-nil, want nil")
	}
	startRun(t, m)
	waitReady(t, m)
	copied, _, leaf1 := f.identityFiles(t)
	if !leaf1.Equal(leafOf(t, cert1)) || !bytes.Equal(m.CertificateChainPEM(), copied) {
		t.Errorf("identity directory and CertificateChainPEM() do not hold the certificate of %s", certFile)
	}
	if err := f.roleTokenThrough(m); err != nil {
		t.Errorf("GetRoleToken through Transport(): %v", err)
	}

	// A writer caught half-way: a new certificate with the old key. It
	// does not load; the old pair stays in use and in place.
	cert2, key2, err := f.zts.IssueIdentity(testDomain, testService)
	if err != nil {
		t.Fatal(err)
	}
	write(certFile, cert2)
	waitFor(t, "the mismatched pair to be reported", func() bool { return f.logs.count("identity certificate attempt failed") >= 1 })
	if !bytes.Equal(m.CertificateChainPEM(), copied) {
		t.Errorf("a pair that does not match replaced the certificate in use")
	}
	if err := m.Ready(); err != nil {
		t.Errorf("Ready() while the files are half-written: %v", err)
	}
	write(keyFile, key2)
	waitFor(t, "the new pair to load", func() bool { return leafOf(t, m.CertificateChainPEM()).Equal(leafOf(t, cert2)) })
	_, _, leaf2 := f.identityFiles(t)
	if !leaf2.Equal(leafOf(t, cert2)) {
		t.Errorf("identity directory not updated after reload")
	}
	if err := f.roleTokenThrough(m); err != nil {
		t.Errorf("GetRoleToken through Transport() after reload: %v", err)
	}
	// The count goes up just after the new pair is in use.
	waitFor(t, "Status().Renewals to count 2 loads", func() bool { return m.Status().Renewals == 2 })
}

func TestRoleCertificates(t *testing.T) {
	f := newFixture(t, ztsfake.Options{}, false)
	f.zts.Grant("prov", "reader", "client.api")
	f.zts.Grant("prov", "writer", "client.api")
	targets, err := identity.ParseRoleCerts("prov:role.reader, prov:role.writer")
	if err != nil {
		t.Fatal(err)
	}
	o := f.options()
	o.RoleCerts = targets
	m := newManager(t, o)
	startRun(t, m)
	waitReady(t, m)
	_, keyPEM, _ := f.identityFiles(t)

	serials := map[string]string{}
	for _, tg := range targets {
		name := identity.RoleCertFileName(tg)
		if want := "prov:role." + tg.Role + ".cert.pem"; name != want {
			t.Errorf("RoleCertFileName(%v) = %q, want %q", tg, name, want)
		}
		path := filepath.Join(f.dir, name)
		b := readFile(t, path)
		if _, err := tls.X509KeyPair(b, keyPEM); err != nil {
			t.Errorf("%s does not match %s: %v", name, identity.KeyFileName, err)
		}
		c := leafOf(t, b)
		if c.Subject.CommonName != "prov:role."+tg.Role {
			t.Errorf("%s CN %q, want prov:role.%s", name, c.Subject.CommonName, tg.Role)
		}
		if _, err := c.Verify(x509.VerifyOptions{Roots: f.zts.CAPool(), CurrentTime: c.NotBefore.Add(time.Minute),
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("%s does not chain to the CA: %v", name, err)
		}
		var uris []string
		for _, u := range c.URIs {
			uris = append(uris, u.String())
		}
		if want := "spiffe://prov/ra/" + tg.Role; !slices.Contains(uris, want) || !slices.Contains(uris, "athenz://principal/client.api") {
			t.Errorf("%s SAN URIs %v, want %s and athenz://principal/client.api", name, uris, want)
		}
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
			t.Errorf("stat %s: %v %v, want mode 0644", name, fi.Mode(), err)
		}
		serials[name] = c.SerialNumber.Text(16)
	}
	if got := len(m.Status().RoleCerts); got != 2 {
		t.Errorf("Status().RoleCerts has %d entries, want 2", got)
	}

	f.advance(t, 45*time.Minute)
	waitReady(t, m)
	if got := f.zts.Calls(ztsfake.EndpointRoleCert); got != 4 {
		t.Errorf("rolecert calls = %d, want 4 (2 fetched, 2 renewed)", got)
	}
	for name, serial := range serials {
		if c := leafOf(t, readFile(t, filepath.Join(f.dir, name))); c.SerialNumber.Text(16) == serial {
			t.Errorf("%s not renewed", name)
		}
	}
}

func TestRoleCertificateRefused(t *testing.T) {
	f := newFixture(t, ztsfake.Options{}, false)
	f.zts.AddDomain("prov")
	o := f.options()
	o.RoleCerts, _ = identity.ParseRoleCerts("prov:role.admin")
	m := newManager(t, o)
	err := m.Init(t.Context())
	if err == nil || !strings.Contains(err.Error(), "prov:role.admin") || !strings.Contains(err.Error(), "403") {
		t.Fatalf("Init with a role not granted: %v, want the role and the 403", err)
	}
	if err := m.Ready(); err == nil || !strings.Contains(err.Error(), "role certificate prov:role.admin not obtained") {
		t.Errorf("Ready() = %v, want the missing role certificate named", err)
	}
	if _, err := os.Stat(filepath.Join(f.dir, identity.CertFileName)); err != nil {
		t.Errorf("the identity certificate is written even when a role certificate is refused: %v", err)
	}
}

// TestKeyFileCertificatePolicy: in key-file mode the certificate of the
// service key is optional by default (ready once ZTS has answered the
// first attempt, even with a refusal; N-tokens work regardless),
// required on request, or not asked for at all. The certificate is asked
// for with the N-token alone, so ZTS's IP restriction of certificate
// refresh does not refuse its renewals.
func TestKeyFileCertificatePolicy(t *testing.T) {
	tests := []struct {
		name        string
		policy      identity.KeyFileCert
		refuse      bool // ZTS refuses the certificate
		wantReady   bool
		wantCalls   bool // the certificate is asked for
		wantCertErr string
	}{
		{name: "optional, issued", policy: "", wantReady: true, wantCalls: true},
		{name: "optional, refused", policy: identity.KeyFileCertOptional, refuse: true, wantReady: true, wantCalls: true},
		{name: "required, refused", policy: identity.KeyFileCertRequired, refuse: true, wantReady: false, wantCalls: true, wantCertErr: "IP not allowed"},
		{name: "off", policy: identity.KeyFileCertOff, wantReady: true, wantCalls: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, ztsfake.Options{}, false)
			f.zts.Grant("prov", "reader", "client.api")
			// Certificate refresh only from 10.0.0.0/8; the sidecar is on
			// 127.0.0.1: only certificates asked for with an N-token come.
			f.zts.RestrictCertRefresh(netip.MustParsePrefix("10.0.0.0/8"))
			if tc.refuse {
				f.zts.SetFailure(ztsfake.EndpointKeyRefresh, ztsfake.Failure{Status: 403, Message: "IP not allowed for refresh: 127.0.0.1"})
			}
			key, keyPEM := newECKeyPEM(t)
			if err := f.zts.RegisterServiceKey(testDomain, testService, "v1", publicPEM(t, key)); err != nil {
				t.Fatal(err)
			}
			m := newManager(t, identity.Options{
				Mode: identity.ModeKeyFile, ZTSURL: f.zts.URL(), RootCAs: f.zts.CAPool(),
				Domain: testDomain, Service: testService, KeyPEM: keyPEM, KeyVersion: "v1", KeyFileCert: tc.policy,
				IdentityDir: f.dir, Clock: f.clock, Logger: f.logs.logger(),
			})
			if tc.policy != identity.KeyFileCertOff {
				if err := m.Ready(); err == nil {
					t.Errorf("Ready() before the first attempt: nil, want to wait for it")
				}
			}
			startRun(t, m)
			for range 3 { // three renewals of the 1 h certificate
				f.advance(t, 45*time.Minute)
			}
			err := m.Ready()
			if (err == nil) != tc.wantReady {
				t.Errorf("Ready() = %v, want ready: %v", err, tc.wantReady)
			}
			if tc.wantCertErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantCertErr)) {
				t.Errorf("Ready() = %v, want ZTS's refusal %q", err, tc.wantCertErr)
			}
			calls := f.zts.Calls(ztsfake.EndpointKeyRefresh)
			if (calls > 0) != tc.wantCalls {
				t.Errorf("key refresh calls = %d, want calls: %v", calls, tc.wantCalls)
			}
			if tc.wantCalls && !tc.refuse && calls != 4 {
				t.Errorf("key refresh calls = %d over 3 renewals under the IP restriction, want 4 (all issued)", calls)
			}
			if (m.CertificateChainPEM() != nil) != (tc.wantCalls && !tc.refuse) {
				t.Errorf("certificate present: %v, want %v", m.CertificateChainPEM() != nil, tc.wantCalls && !tc.refuse)
			}
			if _, _, err := m.NTokenSource().Token(); err != nil {
				t.Errorf("N-token: %v", err)
			}
			if err := f.roleTokenThrough(m); err != nil {
				t.Errorf("role token through Transport(): %v", err)
			}
		})
	}
}

// secretVolume writes a certificate and key the way kubelet updates a
// Secret volume (cert-manager's Secret, mounted): the files are symlinks
// into "..data", itself a symlink to a directory of one version, swapped
// in one rename; a reader that opens the two files can still see one
// version of the certificate and the next version of the key.
type secretVolume struct {
	dir string
	n   int
}

func newSecretVolume(t *testing.T) *secretVolume {
	t.Helper()
	v := &secretVolume{dir: t.TempDir()}
	for _, name := range []string{"tls.crt", "tls.key"} {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(v.dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return v
}

func (v *secretVolume) write(t *testing.T, certPEM, keyPEM []byte) {
	t.Helper()
	v.n++
	ts := fmt.Sprintf("..%d", v.n)
	if err := os.Mkdir(filepath.Join(v.dir, ts), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"tls.crt": certPEM, "tls.key": keyPEM} {
		if err := os.WriteFile(filepath.Join(v.dir, ts, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tmp := filepath.Join(v.dir, "..data_tmp")
	if err := os.Symlink(ts, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(v.dir, "..data")); err != nil {
		t.Fatal(err)
	}
}

// TestFilesModeSecretRotation (suspected, confirmed): cert-manager
// rotates the key with the certificate, and kubelet swaps both in one
// rename; the sidecar reads them one after the other and can read the old
// certificate with the new key. That is a rotation under way, not a
// failure: it reads the pair again at once instead of reporting an error
// and counting a failed renewal every so many rotations.
func TestFilesModeSecretRotation(t *testing.T) {
	f := newFixture(t, ztsfake.Options{}, true)
	vol := newSecretVolume(t)
	pairs := make([][2][]byte, 8)
	for i := range pairs {
		c, k, err := f.zts.IssueIdentity(testDomain, testService)
		if err != nil {
			t.Fatal(err)
		}
		pairs[i] = [2][]byte{c, k}
	}
	vol.write(t, pairs[0][0], pairs[0][1])
	m := newManager(t, identity.Options{
		Mode: identity.ModeFiles, ZTSURL: f.zts.URL(), RootCAs: f.zts.CAPool(),
		CertFile: filepath.Join(vol.dir, "tls.crt"), KeyFile: filepath.Join(vol.dir, "tls.key"),
		PollInterval: 100 * time.Microsecond, IdentityDir: f.dir, Logger: f.logs.logger(),
	})
	startRun(t, m)
	waitReady(t, m)
	const rotations = 1000
	for i := 1; i <= rotations; i++ {
		p := pairs[i%len(pairs)]
		vol.write(t, p[0], p[1])
		time.Sleep(300 * time.Microsecond)
	}
	last := pairs[rotations%len(pairs)]
	waitFor(t, "the last pair to load", func() bool { return leafOf(t, m.CertificateChainPEM()).Equal(leafOf(t, last[0])) })
	if n := f.logs.count("identity certificate attempt failed"); n > 0 {
		t.Errorf("%d failed attempts reported over %d rotations of a Secret volume, want none", n, rotations)
	}
	if st := m.Status(); st.FailuresTotal > 0 {
		t.Errorf("Status().FailuresTotal = %d, want 0", st.FailuresTotal)
	}
}
