package sidecar

import (
	"context"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"

	"github.com/athenz-injector/athenz-injector/pkg/tokens"
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
		"ATHENZ_LISTEN=127.0.0.1:0",
		"ATHENZ_HEALTH_LISTEN=127.0.0.1:0",
	}, certFile, keyFile
}

// TestFilesMode: the sidecar authenticates to ZTS with the certificate from
// files; it has no N-token, and says so.
func TestFilesMode(t *testing.T) {
	zts := newZTS(t)
	env, _, _ := filesEnv(t, zts, testDomain, testService)
	f := startWithEnv(t, zts, env, nil, nil)

	r := do(t, nil, "POST", f.api+"/roletoken", "application/json", `{"domain":"prov","role":"reader"}`, nil)
	if r.status != 200 || !strings.Contains(string(r.body), ";p=client.api;") {
		t.Errorf("POST /roletoken = %d %s, want a role token for principal client.api", r.status, r.body)
	}
	r = do(t, nil, "GET", f.api+"/ntoken", "", "", nil)
	if r.status != http.StatusNotImplemented {
		t.Fatalf("GET /ntoken in files mode = %d %s, want 501", r.status, r.body)
	}
	if msg := r.errorMessage(t); !strings.Contains(msg, "ATHENZ_IDENTITY_MODE=key-file") {
		t.Errorf("message %q, want it to say how to get N-tokens", msg)
	}
	upstream, hits := countingEcho(t)
	r = do(t, proxyClient(t, strings.TrimPrefix(f.api, "http://"), ""), "GET", upstream.URL, "", "", nil)
	if r.status != http.StatusNotImplemented || hits.Load() != 0 {
		t.Errorf("N-token proxy in files mode = %d %s (upstream hits %d), want 501 and no upstream call", r.status, r.body, hits.Load())
	}
	if r := do(t, nil, "GET", f.health+"/readyz", "", "", nil); r.status != 200 {
		t.Errorf("/readyz = %d %s, want 200", r.status, r.body)
	}
}

// TestFilesReload: files mode picks up a rotated certificate without a
// restart.
func TestFilesReload(t *testing.T) {
	zts := newZTS(t)
	_, certFile, keyFile := filesEnv(t, zts, testDomain, testService)
	id, err := newFilesIdentity(filesOptions{
		certFile: certFile, keyFile: keyFile, roots: zts.CAPool(), clock: tokens.RealClock{},
		log: testr.New(t), dialTimeout: time.Second, pollInterval: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- id.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	}()

	certPEM, keyPEM, err := zts.IssueIdentity(testDomain, "rotated")
	if err != nil {
		t.Fatal(err)
	}
	// Write the key first; a poll between the writes sees a mismatched
	// pair, logs it and keeps the old certificate.
	writeAtomic(t, keyFile, keyPEM)
	writeAtomic(t, certFile, certPEM)
	deadline := time.Now().Add(5 * time.Second)
	for id.cert.Load().Leaf.Subject.CommonName != testDomain+".rotated" {
		if time.Now().After(deadline) {
			t.Fatalf("certificate CN still %q 5 s after rotation", id.cert.Load().Leaf.Subject.CommonName)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := id.Ready(); err != nil {
		t.Errorf("Ready after rotation = %v", err)
	}
}

func writeAtomic(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestFilesExpiredNotReady: an expired certificate makes /readyz say so.
func TestFilesExpiredNotReady(t *testing.T) {
	past := time.Now().Add(-48 * time.Hour)
	zts := ztsfake.NewTest(t, ztsfake.Options{Now: func() time.Time { return past }})
	_, certFile, keyFile := filesEnv(t, zts, testDomain, testService)
	id, err := newFilesIdentity(filesOptions{certFile: certFile, keyFile: keyFile, clock: tokens.RealClock{}, log: testr.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	rd := newReadiness(id, nil)
	if err := rd.check(); err == nil || !strings.Contains(err.Error(), "identity: certificate "+certFile+" expired at") {
		t.Errorf("readiness with an expired certificate = %v, want it to say the certificate expired", err)
	}
}

// TestFilesBadPair: a key that does not match the certificate stops the
// sidecar at start, naming both variables.
func TestFilesBadPair(t *testing.T) {
	zts := newZTS(t)
	env, _, _ := filesEnv(t, zts, testDomain, testService)
	_, _, otherKey := filesEnv(t, zts, testDomain, "other")
	cfg, err := ConfigFromEnv(overrideEnv(env, []string{"ATHENZ_KEY_FILE=" + otherKey}))
	if err != nil {
		t.Fatal(err)
	}
	err = Run(t.Context(), cfg, testr.New(t))
	if err == nil || !strings.Contains(err.Error(), "ATHENZ_CERT_FILE=") || !strings.Contains(err.Error(), "ATHENZ_KEY_FILE="+otherKey) {
		t.Errorf("Run with a mismatched key = %v, want an error naming ATHENZ_CERT_FILE and ATHENZ_KEY_FILE", err)
	}
}

// TestKeyFileUnregisteredKey: in key-file mode ZTS checks our N-token; a
// key it does not know is refused with 401, which the client sees.
func TestKeyFileUnregisteredKey(t *testing.T) {
	zts := newZTS(t)
	env, _ := keyFileEnv(t, zts)
	env = overrideEnv(env, []string{"ATHENZ_KEY_VERSION=2"}) // not registered
	f := startWithEnv(t, zts, env, nil, nil)
	r := do(t, nil, "GET", f.api+"/roletoken?domain=prov&role=reader", "", "", nil)
	if r.status != http.StatusUnauthorized {
		t.Fatalf("role token with an unregistered key = %d %s, want ZTS's 401", r.status, r.body)
	}
	if msg := r.errorMessage(t); !strings.Contains(msg, `no public key "2" registered for client.api`) {
		t.Errorf("message %q, want ZTS's reason", msg)
	}
}
