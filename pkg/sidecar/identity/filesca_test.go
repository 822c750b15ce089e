package identity_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/athenz-injector/athenz-injector/pkg/sidecar/identity"
	"github.com/athenz-injector/athenz-injector/pkg/tokens/ztsfake"
)

// TestFilesModeCA: in files mode the issuer's CA (ATHENZ_CA_FILE, e.g.
// cert-manager's ca.crt) is copied to ca.cert.pem with the pair, so that
// an app's ATHENZ_CA_FILE names a file that exists in every mode; a CA
// file that holds no certificate keeps the sidecar from loading the pair.
func TestFilesModeCA(t *testing.T) {
	f := newFixture(t, ztsfake.Options{}, true)
	src := t.TempDir()
	certFile, keyFile, caFile := filepath.Join(src, "tls.crt"), filepath.Join(src, "tls.key"), filepath.Join(src, "ca.crt")
	cert, key, err := f.zts.IssueIdentity(testDomain, testService)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{certFile: cert, keyFile: key, caFile: f.zts.CACertPEM()} {
		if err := os.WriteFile(name, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	filesManager := func(f *fixture) *identity.Manager {
		m := newManager(t, identity.Options{
			Mode: identity.ModeFiles, ZTSURL: f.zts.URL(), RootCAs: f.zts.CAPool(),
			CertFile: certFile, KeyFile: keyFile, CAFile: caFile, PollInterval: 10 * time.Millisecond,
			IdentityDir: f.dir, Logger: f.logs.logger(),
		})
		startRun(t, m)
		return m
	}
	waitReady(t, filesManager(f))
	got, err := os.ReadFile(filepath.Join(f.dir, identity.CAFileName))
	if err != nil {
		t.Fatalf("files mode with ATHENZ_CA_FILE wrote no %s: %v", identity.CAFileName, err)
	}
	if !bytes.Equal(got, f.zts.CACertPEM()) {
		t.Errorf("%s = %q, want the content of ATHENZ_CA_FILE", identity.CAFileName, got)
	}

	bad := newFixture(t, ztsfake.Options{}, true)
	if err := os.WriteFile(caFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	m2 := filesManager(bad)
	waitFor(t, "the bad CA file to be reported", func() bool { return bad.logs.count("ATHENZ_CA_FILE=") >= 1 })
	if m2.Ready() == nil {
		t.Errorf("Ready() = nil with an ATHENZ_CA_FILE that holds no certificate")
	}
}
