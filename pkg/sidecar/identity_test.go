package sidecar

import (
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"

	"github.com/athenz-injector/athenz-injector/pkg/tokens/ztsfake"
)

// filesEnv writes an identity certificate for domain.service issued by zts
// and returns the environment of a files-mode sidecar.
func filesEnv(t *testing.T, zts *ztsfake.Server, domain, service string) (env []string, certFile, keyFile string) {
	t.Helper()
	certPEM, keyPEM, err := zts.IssueIdentity(domain, service)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile = writeFile(t, dir, "service.cert.pem", certPEM)
	keyFile = writeFile(t, dir, "service.key.pem", keyPEM)
	caFile := writeFile(t, dir, "ca.pem", zts.CACertPEM())
	return []string{
		"ATHENZ_ZTS_URL=" + zts.URL(),
		"ATHENZ_ZTS_CA_FILE=" + caFile,
		"ATHENZ_IDENTITY_MODE=files",
		"ATHENZ_CERT_FILE=" + certFile,
		"ATHENZ_KEY_FILE=" + keyFile,
		"ATHENZ_IDENTITY_DIR=" + t.TempDir(),
		"ATHENZ_LISTEN=127.0.0.1:0",
		"ATHENZ_HEALTH_LISTEN=127.0.0.1:0",
	}, certFile, keyFile
}

// copperArgosEnv is the environment the injector gives a sidecar, against
// zts acting as its own provider.
func copperArgosEnv(t *testing.T, zts *ztsfake.Server) (env []string, identityDir string) {
	t.Helper()
	dir := t.TempDir()
	identityDir = t.TempDir()
	return []string{
		"ATHENZ_ZTS_URL=" + zts.URL(),
		"ATHENZ_ZTS_CA_FILE=" + writeFile(t, dir, "ca.pem", zts.CACertPEM()),
		"ATHENZ_IDENTITY_MODE=copper-argos",
		"ATHENZ_DOMAIN=" + testDomain,
		"ATHENZ_SERVICE=" + testService,
		"ATHENZ_PROVIDER=sys.auth.k8s",
		"ATHENZ_DNS_SUFFIX=athenz.test",
		"ATHENZ_SA_TOKEN_FILE=" + writeFile(t, dir, "token", []byte("header.claims.signature")),
		"ATHENZ_IDENTITY_DIR=" + identityDir,
		"ATHENZ_LISTEN=127.0.0.1:0",
		"ATHENZ_HEALTH_LISTEN=127.0.0.1:0",
		"POD_UID=0f1e2d3c-aaaa-bbbb-cccc-000000000001",
		"POD_IP=127.0.0.1",
		"POD_NAMESPACE=client",
	}, identityDir
}

// waitReady polls /readyz until it answers 200.
func waitReady(t *testing.T, f *fixture) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := do(t, nil, "GET", f.health+"/readyz", "", "", nil)
		if r.status == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz = %d %s after 10 s, want 200", r.status, r.body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// svccertLeaf GETs /svccert and returns the first certificate.
func svccertLeaf(t *testing.T, f *fixture) *x509.Certificate {
	t.Helper()
	r := do(t, nil, "GET", f.api+"/svccert", "", "", nil)
	if r.status != http.StatusOK {
		t.Fatalf("GET /svccert = %d %s, want 200", r.status, r.body)
	}
	block, _ := pem.Decode(r.body)
	if block == nil {
		t.Fatalf("GET /svccert body is not PEM: %q", r.body)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("GET /svccert: %v", err)
	}
	return cert
}

// TestCopperArgosMode: the sidecar registers the Pod with ZTS, serves the
// certificate at /svccert and writes it to the identity directory, gets
// tokens over mTLS, and serves the N-token ZTS issued.
func TestCopperArgosMode(t *testing.T) {
	zts := newZTS(t)
	env, dir := copperArgosEnv(t, zts)
	f := startWithEnv(t, zts, env, nil, nil)
	waitReady(t, f)

	leaf := svccertLeaf(t, f)
	if got, want := leaf.Subject.CommonName, testDomain+"."+testService; got != want {
		t.Errorf("/svccert CN = %q, want %q", got, want)
	}
	for _, name := range []string{"service.cert.pem", "service.key.pem", "ca.cert.pem"} {
		if st, err := os.Stat(filepath.Join(dir, name)); err != nil || st.Size() == 0 {
			t.Errorf("identity file %s: %v (size %v), want it written", name, err, st)
		}
	}
	r := do(t, nil, "GET", f.api+"/roletoken?domain=prov&role=reader", "", "", nil)
	if r.status != 200 || !strings.Contains(string(r.body), ";p=client.api;") {
		t.Errorf("role token over the registered certificate = %d %s", r.status, r.body)
	}
	r = do(t, nil, "GET", f.api+"/ntoken", "", "", nil)
	if r.status != 200 || !strings.Contains(string(r.body), `"token":"v=S1;d=client;n=api;`) {
		t.Errorf("GET /ntoken = %d %s, want the N-token ZTS issued for client.api", r.status, r.body)
	}
	if n := zts.Calls(ztsfake.EndpointInstanceRegister); n != 1 {
		t.Errorf("instance register calls = %d, want 1", n)
	}
}

// TestFilesMode: the sidecar authenticates to ZTS with the certificate from
// files; it has no N-token, and says so.
func TestFilesMode(t *testing.T) {
	zts := newZTS(t)
	env, _, _ := filesEnv(t, zts, testDomain, testService)
	f := startWithEnv(t, zts, env, nil, nil)
	waitReady(t, f)

	r := do(t, nil, "POST", f.api+"/roletoken", "application/json", `{"domain":"prov","role":"reader"}`, nil)
	if r.status != 200 || !strings.Contains(string(r.body), ";p=client.api;") {
		t.Errorf("POST /roletoken = %d %s, want a role token for principal client.api", r.status, r.body)
	}
	r = do(t, nil, "GET", f.api+"/ntoken", "", "", nil)
	if r.status != http.StatusNotImplemented {
		t.Fatalf("GET /ntoken in files mode = %d %s, want 501", r.status, r.body)
	}
	if msg := r.errorMessage(t); !strings.Contains(msg, "files mode has no service key") {
		t.Errorf("message %q, want it to say why there is no N-token", msg)
	}
	upstream, hits := countingEcho(t)
	r = do(t, proxyClient(t, strings.TrimPrefix(f.api, "http://"), ""), "GET", upstream.URL, "", "", nil)
	if r.status != http.StatusNotImplemented || hits.Load() != 0 {
		t.Errorf("N-token proxy in files mode = %d %s (upstream hits %d), want 501 and no upstream call", r.status, r.body, hits.Load())
	}
	if got := svccertLeaf(t, f).Subject.CommonName; got != testDomain+"."+testService {
		t.Errorf("/svccert CN = %q", got)
	}
}

// TestFilesBadPair: a key that does not match the certificate stops the
// sidecar at start, naming the variables.
func TestFilesBadPair(t *testing.T) {
	zts := newZTS(t)
	env, _, _ := filesEnv(t, zts, testDomain, testService)
	_, _, otherKey := filesEnv(t, zts, testDomain, "other")
	cfg, err := ConfigFromEnv(overrideEnv(env, []string{"ATHENZ_KEY_FILE=" + otherKey}))
	if err != nil {
		t.Fatal(err)
	}
	err = Run(t.Context(), cfg, testr.New(t))
	if err == nil || !strings.Contains(err.Error(), "ATHENZ_CERT_FILE") || !strings.Contains(err.Error(), "ATHENZ_KEY_FILE") {
		t.Errorf("Run with a mismatched key = %v, want an error naming ATHENZ_CERT_FILE and ATHENZ_KEY_FILE", err)
	}
}

// TestKeyFileUnregisteredKey: in key-file mode ZTS checks our N-token; with
// a key it does not know the sidecar never becomes ready and says why.
func TestKeyFileUnregisteredKey(t *testing.T) {
	zts := newZTS(t)
	env, _ := keyFileEnv(t, zts)
	env = overrideEnv(env, []string{"ATHENZ_KEY_VERSION=2"}) // not registered
	f := startWithEnvNoWait(t, zts, env, nil, nil)
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := do(t, nil, "GET", f.health+"/readyz", "", "", nil)
		if r.status != http.StatusServiceUnavailable {
			t.Fatalf("/readyz with an unregistered key = %d %s, want 503", r.status, r.body)
		}
		if strings.Contains(string(r.body), `no public key`) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz = %s, want ZTS's reason (no public key registered)", r.body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestInitMode: --mode=init writes the identity files and checks the
// prefetch tokens once, then returns; a refused token fails it naming the
// token.
func TestInitMode(t *testing.T) {
	tests := []struct {
		name       string
		prefetch   string
		tokenFiles string
		wantErr    string
	}{
		{name: "identity and tokens", prefetch: "prov:role.reader"},
		{name: "refused token", prefetch: "prov:role.admin", wantErr: "access token prov:role.admin"},
		{name: "token files", prefetch: "prov:role.reader", tokenFiles: "roletoken:prov:role.reader"},
		{name: "refused token file", prefetch: "prov:role.reader", tokenFiles: "accesstoken:prov:role.admin", wantErr: "token file accesstoken:prov:role.admin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			zts := newZTS(t)
			env, dir := copperArgosEnv(t, zts)
			cfg, err := ConfigFromEnv(append(env, "ATHENZ_PREFETCH="+tt.prefetch, "ATHENZ_TOKEN_FILES="+tt.tokenFiles))
			if err != nil {
				t.Fatal(err)
			}
			cfg.Mode = ModeInit
			err = Run(t.Context(), cfg, testr.New(t))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Run(--mode=init) = %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Run(--mode=init) = %v", err)
			}
			if _, err := os.Stat(filepath.Join(dir, "service.cert.pem")); err != nil {
				t.Errorf("after init: %v", err)
			}
			if tt.tokenFiles != "" {
				if b, err := os.ReadFile(filepath.Join(dir, "tokens/prov/reader.roletoken")); err != nil || !strings.HasPrefix(string(b), "v=Z1;d=prov;r=reader;") {
					t.Errorf("after init, tokens/prov/reader.roletoken = %q (%v), want the role token", b, err)
				}
			}
		})
	}
}

// TestTokenBeforeIdentity: a token asked for while the sidecar is still
// getting its identity waits for it and is answered, rather than getting
// ZTS's refusal of a caller without a certificate, remembered by the
// cache's negative TTL (it was 10 s of 401s for an app that asked as the
// sidecar started, issue 15). When the identity's first attempt fails,
// the request gets ZTS's own answer at once (TestZTSTLSFailure).
func TestTokenBeforeIdentity(t *testing.T) {
	zts := newZTS(t)
	zts.Grant("prov", "reader", testDomain+"."+testService)
	const registerTime = 300 * time.Millisecond
	zts.SetLatency(ztsfake.EndpointInstanceRegister, registerTime)
	env, _ := copperArgosEnv(t, zts)
	f := startWithEnvNoWait(t, zts, env, nil, nil)
	if err := f.srv.identity.Ready(); err == nil {
		t.Fatal("identity ready before its registration answered; the test needs it not to be")
	}
	start := time.Now()
	r := do(t, nil, "GET", f.api+"/roletoken?domain=prov&role=reader", "", "", nil)
	if r.status != http.StatusOK {
		t.Fatalf("role token while the identity registers = %d %s, want 200 once it is in place", r.status, r.body)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("answered after %v: the wait is for the registration (%v), not longer", d, registerTime)
	}
	if n := zts.CallsFor(ztsfake.EndpointRoleToken, "prov:reader"); n != 1 {
		t.Errorf("ZTS role token calls = %d, want 1 (none without a certificate)", n)
	}
}
