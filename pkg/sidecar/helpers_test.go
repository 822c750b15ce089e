package sidecar

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"

	"github.com/athenz-injector/athenz-injector/pkg/tokens/ztsfake"
)

const (
	testDomain  = "client"
	testService = "api"
)

// The tests run dev mode as a sidecar built with the "dev" tag does
// (cmd/sidecar/dev.go).
func init() {
	StartDevZTS = func(domain, service, keyVersion string, now func() time.Time) (DevZTS, []byte, error) {
		return ztsfake.StartDev(domain, service, keyVersion, now)
	}
}

// fixture is a sidecar in key-file mode against a fake ZTS.
type fixture struct {
	zts    *ztsfake.Server
	srv    *Server
	api    string // http://127.0.0.1:port
	health string
	pubPEM []byte // the service's public key, to validate N-tokens
	cancel context.CancelFunc
}

// newZTS starts a fake ZTS where client.api has role reader in prov.
func newZTS(t *testing.T) *ztsfake.Server {
	t.Helper()
	zts := ztsfake.NewTest(t, ztsfake.Options{KeyType: "ec"})
	zts.Grant("prov", "reader", testDomain+"."+testService)
	zts.Grant("prov", "writer", testDomain+"."+testService)
	zts.AddDomain("secret")
	return zts
}

// keyFileEnv registers a fresh service key for client.api with zts and
// returns the environment of a key-file sidecar on loopback ports.
func keyFileEnv(t *testing.T, zts *ztsfake.Server) (env []string, pubPEM []byte) {
	t.Helper()
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	pubDER, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	pubPEM = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	if err := zts.RegisterServiceKey(testDomain, testService, "1", pubPEM); err != nil {
		t.Fatal(err)
	}
	keyFile := writeFile(t, dir, "service.key.pem", keyPEM)
	caFile := writeFile(t, dir, "ca.pem", zts.CACertPEM())
	return []string{
		"ATHENZ_ZTS_URL=" + zts.URL(),
		"ATHENZ_ZTS_CA_FILE=" + caFile,
		"ATHENZ_IDENTITY_MODE=key-file",
		"ATHENZ_KEY_FILE=" + keyFile,
		"ATHENZ_KEY_VERSION=1",
		"ATHENZ_DOMAIN=" + testDomain,
		"ATHENZ_SERVICE=" + testService,
		"ATHENZ_IDENTITY_DIR=" + t.TempDir(),
		"ATHENZ_LISTEN=127.0.0.1:0",
		"ATHENZ_HEALTH_LISTEN=127.0.0.1:0",
		"PATH=/usr/bin", // not ATHENZ_: ignored
	}, pubPEM
}

func writeFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// startSidecar starts a key-file sidecar against zts with extra environment
// and an optional change to the parsed Config. It stops with the test.
func startSidecar(t *testing.T, zts *ztsfake.Server, extraEnv []string, mutate func(*Config)) *fixture {
	t.Helper()
	env, pub := keyFileEnv(t, zts)
	// Extras first: the first value of a variable wins, so they override.
	return startWithEnv(t, zts, append(append([]string{}, extraEnv...), env...), pub, mutate)
}

// startWithEnv starts a sidecar and waits until its identity is ready (the
// certificate is obtained in the background), so tests start from a
// working identity; startWithEnvNoWait does not wait.
func startWithEnv(t *testing.T, zts *ztsfake.Server, env []string, pub []byte, mutate func(*Config)) *fixture {
	t.Helper()
	f := startWithEnvNoWait(t, zts, env, pub, mutate)
	waitIdentity(t, f.srv)
	return f
}

// waitIdentity waits up to 10 s for the server's identity to be ready.
func waitIdentity(t *testing.T, srv *Server) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := srv.identity.Ready()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("identity not ready after 10 s: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func startWithEnvNoWait(t *testing.T, zts *ztsfake.Server, env []string, pub []byte, mutate func(*Config)) *fixture {
	t.Helper()
	cfg, err := ConfigFromEnv(env)
	if err != nil {
		t.Fatalf("ConfigFromEnv: %v", err)
	}
	cfg.ShutdownTimeout = 5 * time.Second
	if mutate != nil {
		mutate(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := Start(ctx, cfg, testr.NewWithOptions(t, testr.Options{Verbosity: 1}))
	if err != nil {
		cancel()
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := srv.Wait(); err != nil {
			t.Errorf("Wait after shutdown = %v, want nil", err)
		}
	})
	a := srv.Addrs()
	return &fixture{zts: zts, srv: srv, api: "http://" + a.API, health: "http://" + a.Health, pubPEM: pub, cancel: cancel}
}

// response is a decoded answer of the token API.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decoding %s: %v", r.body, err)
	}
}

// errorBody decodes a {"code","message"} answer and checks code == status.
func (r response) errorMessage(t *testing.T) string {
	t.Helper()
	var e struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	r.json(t, &e)
	if e.Code != r.status {
		t.Errorf("error body code %d, want the status %d (body %s)", e.Code, r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("error Content-Type %q, want application/json", ct)
	}
	return e.Message
}

func do(t *testing.T, client *http.Client, method, url, contentType, body string, header http.Header) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if client == nil {
		client = http.DefaultClient
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return response{status: res.StatusCode, header: res.Header, body: b}
}
