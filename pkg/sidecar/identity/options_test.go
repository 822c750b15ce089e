package identity_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/athenz-injector/athenz-injector/pkg/sidecar/identity"
	"github.com/athenz-injector/athenz-injector/pkg/tokens"
	"github.com/athenz-injector/athenz-injector/pkg/tokens/ztsfake"
)

func TestInvalidOptions(t *testing.T) {
	dir := t.TempDir()
	const secret = "secret-sa-token-value"
	tokenFile := filepath.Join(dir, "token")
	emptyFile := filepath.Join(dir, "empty")
	garbage := filepath.Join(dir, "garbage.pem")
	keyFile := filepath.Join(dir, "key.pem")
	otherKeyFile := filepath.Join(dir, "other-key.pem")
	certFile := filepath.Join(dir, "cert.pem")
	for name, b := range map[string][]byte{tokenFile: []byte(secret), emptyFile: nil, garbage: []byte("not a PEM file")} {
		if err := os.WriteFile(name, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	_, keyPEM := newECKeyPEM(t)
	_, otherKeyPEM := newECKeyPEM(t)
	f := newFixture(t, ztsfake.Options{}, false)
	certPEM, _, err := f.zts.IssueIdentity(testDomain, testService)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{keyFile: keyPEM, otherKeyFile: otherKeyPEM, certFile: certPEM} {
		if err := os.WriteFile(name, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	copper := func() identity.Options {
		return identity.Options{
			Mode: identity.ModeCopperArgos, ZTSURL: "https://zts.example:4443/zts/v1",
			Domain: testDomain, Service: testService, Provider: testProvider, DNSSuffix: testSuffix,
			SATokenFile: tokenFile, PodUID: testPodUID, PodIP: testPodIP, IdentityDir: dir,
		}
	}
	keyMode := func() identity.Options {
		return identity.Options{
			Mode: identity.ModeKeyFile, ZTSURL: "https://zts.example:4443/zts/v1",
			Domain: testDomain, Service: testService, KeyFile: keyFile, KeyVersion: "v1", IdentityDir: dir,
		}
	}
	files := func() identity.Options {
		return identity.Options{
			Mode: identity.ModeFiles, ZTSURL: "https://zts.example:4443/zts/v1",
			CertFile: certFile, KeyFile: otherKeyFile, IdentityDir: dir,
		}
	}
	with := func(base func() identity.Options, change func(*identity.Options)) identity.Options {
		o := base()
		change(&o)
		return o
	}

	tests := []struct {
		name    string
		opts    identity.Options
		wantVar string
	}{
		{name: "missing provider", opts: with(copper, func(o *identity.Options) { o.Provider = "" }), wantVar: "ATHENZ_PROVIDER"},
		{name: "unknown key-file certificate policy", opts: with(keyMode, func(o *identity.Options) { o.KeyFileCert = "sometimes" }), wantVar: "ATHENZ_KEY_FILE_CERT"},
		{name: "role certificates without a certificate", opts: with(keyMode, func(o *identity.Options) {
			o.KeyFileCert = identity.KeyFileCertOff
			o.RoleCerts = []tokens.Target{{Domain: "prov", Role: "reader"}}
		}), wantVar: "ATHENZ_ROLE_CERTS"},
		{name: "provider not a name", opts: with(copper, func(o *identity.Options) { o.Provider = "sys auth" }), wantVar: "ATHENZ_PROVIDER"},
		{name: "unreadable token file", opts: with(copper, func(o *identity.Options) { o.SATokenFile = filepath.Join(dir, "missing") }), wantVar: "ATHENZ_SA_TOKEN_FILE"},
		{name: "empty token file", opts: with(copper, func(o *identity.Options) { o.SATokenFile = emptyFile }), wantVar: "ATHENZ_SA_TOKEN_FILE"},
		{name: "domain not an Athenz name", opts: with(copper, func(o *identity.Options) { o.Domain = "bad..domain" }), wantVar: "ATHENZ_DOMAIN"},
		{name: "missing domain", opts: with(copper, func(o *identity.Options) { o.Domain = "" }), wantVar: "ATHENZ_DOMAIN"},
		{name: "service not a simple name", opts: with(copper, func(o *identity.Options) { o.Service = "a.b" }), wantVar: "ATHENZ_SERVICE"},
		{name: "missing pod uid", opts: with(copper, func(o *identity.Options) { o.PodUID = "" }), wantVar: "POD_UID"},
		{name: "pod uid not an id", opts: with(copper, func(o *identity.Options) { o.PodUID = "a/b" }), wantVar: "POD_UID"},
		{name: "pod ip", opts: with(copper, func(o *identity.Options) { o.PodIP = "10.0.0" }), wantVar: "POD_IP"},
		{name: "trust domain without namespace", opts: with(copper, func(o *identity.Options) { o.TrustDomain = "cluster.local" }), wantVar: "POD_NAMESPACE"},
		{name: "missing dns suffix", opts: with(copper, func(o *identity.Options) { o.DNSSuffix = "" }), wantVar: "ATHENZ_DNS_SUFFIX"},
		{name: "bad dns suffix", opts: with(copper, func(o *identity.Options) { o.DNSSuffix = "a..b" }), wantVar: "ATHENZ_DNS_SUFFIX"},
		{name: "attestation format", opts: with(copper, func(o *identity.Options) { o.AttestationFormat = "jwt" }), wantVar: "ATHENZ_ATTESTATION_FORMAT"},
		{name: "renewal", opts: with(copper, func(o *identity.Options) { o.Renewal = "rotate" }), wantVar: "ATHENZ_CERT_RENEWAL"},
		{name: "key type", opts: with(copper, func(o *identity.Options) { o.KeyType = "dsa" }), wantVar: "ATHENZ_KEY_TYPE"},
		{name: "refresh fraction", opts: with(copper, func(o *identity.Options) { o.RefreshFraction = 1.5 }), wantVar: "ATHENZ_CERT_REFRESH_FRACTION"},
		{name: "group-writable key mode", opts: with(copper, func(o *identity.Options) { o.KeyFileMode = 0o660 }), wantVar: "ATHENZ_IDENTITY_KEY_MODE"},
		{name: "role cert for a whole domain", opts: with(copper, func(o *identity.Options) { o.RoleCerts = []tokens.Target{{Domain: "prov"}} }), wantVar: "ATHENZ_ROLE_CERTS"},
		{name: "identity mode", opts: with(copper, func(o *identity.Options) { o.Mode = "sia" }), wantVar: "ATHENZ_IDENTITY_MODE"},
		{name: "missing zts url", opts: with(copper, func(o *identity.Options) { o.ZTSURL = "" }), wantVar: "ATHENZ_ZTS_URL"},
		{name: "plain http zts url", opts: with(copper, func(o *identity.Options) { o.ZTSURL = "http://zts.example/zts/v1" }), wantVar: "ATHENZ_ZTS_URL"},
		{name: "unreadable CA file", opts: with(copper, func(o *identity.Options) { o.ZTSCAFile = filepath.Join(dir, "missing") }), wantVar: "ATHENZ_ZTS_CA_FILE"},
		{name: "CA file without certificates", opts: with(copper, func(o *identity.Options) { o.ZTSCAFile = garbage }), wantVar: "ATHENZ_ZTS_CA_FILE"},
		{name: "missing identity dir", opts: with(copper, func(o *identity.Options) { o.IdentityDir = filepath.Join(dir, "missing") }), wantVar: "ATHENZ_IDENTITY_DIR"},
		{name: "bad key PEM", opts: with(keyMode, func(o *identity.Options) { o.KeyFile = garbage }), wantVar: "ATHENZ_KEY_FILE"},
		{name: "missing key file", opts: with(keyMode, func(o *identity.Options) { o.KeyFile = "" }), wantVar: "ATHENZ_KEY_FILE"},
		{name: "unreadable key file", opts: with(keyMode, func(o *identity.Options) { o.KeyFile = filepath.Join(dir, "missing") }), wantVar: "ATHENZ_KEY_FILE"},
		{name: "missing key version", opts: with(keyMode, func(o *identity.Options) { o.KeyVersion = "" }), wantVar: "ATHENZ_KEY_VERSION"},
		{name: "key-file without domain", opts: with(keyMode, func(o *identity.Options) { o.Domain = "" }), wantVar: "ATHENZ_DOMAIN"},
		{name: "files without cert file", opts: with(files, func(o *identity.Options) { o.CertFile = "" }), wantVar: "ATHENZ_CERT_FILE"},
		{name: "files key does not match", opts: files(), wantVar: "ATHENZ_CERT_FILE"},
		{name: "files bad key PEM", opts: with(files, func(o *identity.Options) { o.KeyFile = garbage }), wantVar: "ATHENZ_KEY_FILE"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.opts.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.wantVar) {
				t.Fatalf("Validate() = %v, want an error naming %s", err, tc.wantVar)
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Errorf("Validate() error %q shows a token or a key", err)
			}
			if _, nerr := identity.New(tc.opts); nerr == nil || nerr.Error() != err.Error() {
				t.Errorf("New() = %v, want the Validate error", nerr)
			}
		})
	}

	for name, o := range map[string]identity.Options{"copper-argos": copper(), "key-file": keyMode()} {
		if err := o.Validate(); err != nil {
			t.Errorf("Validate() of valid %s options: %v", name, err)
		}
	}
}

func TestParseRoleCerts(t *testing.T) {
	tests := []struct {
		in      string
		want    int
		wantErr string
	}{
		{in: "", want: 0},
		{in: "prov:role.reader,prov:role.writer,prov:role.reader", want: 2},
		{in: "prov:domain", wantErr: "ATHENZ_ROLE_CERTS"},
		{in: "prov:role.reader,", wantErr: "ATHENZ_ROLE_CERTS"},
		{in: "noseparator", wantErr: "ATHENZ_ROLE_CERTS"},
	}
	for _, tc := range tests {
		got, err := identity.ParseRoleCerts(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseRoleCerts(%q) = %v, %v; want an error naming %s", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || len(got) != tc.want {
			t.Errorf("ParseRoleCerts(%q) = %v, %v; want %d targets", tc.in, got, err, tc.want)
		}
	}
}
