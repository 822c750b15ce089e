package identity_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/AthenZ/athenz/clients/go/zts"
	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"

	"github.com/athenz-injector/athenz-injector/pkg/sidecar/atomicfile/atomicfiletest"
	"github.com/athenz-injector/athenz-injector/pkg/sidecar/identity"
	"github.com/athenz-injector/athenz-injector/pkg/tokens"
	"github.com/athenz-injector/athenz-injector/pkg/tokens/ztsfake"
)

// ntokenSource and identityAPI copy pkg/sidecar's Identity interface: the
// Manager must satisfy it structurally, which works because NTokenSource
// is an alias of an unnamed interface on both sides.
type ntokenSource = interface {
	Token() (string, time.Time, error)
}

type identityAPI interface {
	Transport() http.RoundTripper
	NTokenSource() ntokenSource
	Ready() error
	Run(ctx context.Context) error
}

var _ identityAPI = (*identity.Manager)(nil)

const (
	testDomain   = "client"
	testService  = "api"
	testProvider = "k8s.provider"
	testSuffix   = "k8s.example"
	testPodUID   = "pod-1"
	testPodIP    = "10.0.0.7"
)

// attestLog records what the fake ZTS asked the provider to confirm and
// accepts every request with attestation data.
type attestLog struct {
	mu   sync.Mutex
	seen []ztsfake.InstanceConfirmation
}

func (a *attestLog) attest(_ context.Context, c ztsfake.InstanceConfirmation) (map[string]string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.seen = append(a.seen, c)
	if c.AttestationData == "" {
		return nil, fmt.Errorf("attestation refused: no attestation data")
	}
	return nil, nil
}

func (a *attestLog) last() ztsfake.InstanceConfirmation {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.seen) == 0 {
		return ztsfake.InstanceConfirmation{}
	}
	return a.seen[len(a.seen)-1]
}

// fixture is a fake ZTS on a fake clock, an identity directory and a
// service account token file.
type fixture struct {
	zts       *ztsfake.Server
	clock     *tokens.FakeClock
	dir       string
	tokenFile string
	logs      *logLines
}

// newFixture starts a fake ZTS whose clock is a FakeClock (nil opts.Now),
// or the wall clock when real is set.
func newFixture(t *testing.T, opts ztsfake.Options, real bool) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir(), logs: &logLines{t: t}}
	if !real {
		f.clock = tokens.NewFakeClock(time.Unix(time.Now().Unix(), 0))
		opts.Now = f.clock.Now
	}
	if opts.KeyType == "" {
		opts.KeyType = "ec"
	}
	f.zts = ztsfake.NewTest(t, opts)
	f.tokenFile = filepath.Join(t.TempDir(), "token")
	f.writeToken(t, "sa-token-1")
	t.Cleanup(func() {
		if testing.Verbose() {
			for _, line := range f.logs.all() {
				t.Log(line)
			}
		}
	})
	return f
}

func (f *fixture) writeToken(t *testing.T, tok string) {
	t.Helper()
	if err := os.WriteFile(f.tokenFile, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// options are valid copper-argos options for client.api in Pod pod-1.
func (f *fixture) options() identity.Options {
	o := identity.Options{
		Mode:         identity.ModeCopperArgos,
		ZTSURL:       f.zts.URL(),
		RootCAs:      f.zts.CAPool(),
		Domain:       testDomain,
		Service:      testService,
		Provider:     testProvider,
		DNSSuffix:    testSuffix,
		SATokenFile:  f.tokenFile,
		PodUID:       testPodUID,
		PodIP:        testPodIP,
		PodNamespace: testDomain,
		IdentityDir:  f.dir,
		Logger:       f.logs.logger(),
	}
	if f.clock != nil {
		o.Clock = f.clock
	}
	return o
}

func newManager(t *testing.T, o identity.Options) *identity.Manager {
	t.Helper()
	m, err := identity.New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return m
}

// startRun runs m until the test ends.
func startRun(t *testing.T, m *identity.Manager) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v, want nil after the context ends", err)
		}
	})
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func waitReady(t *testing.T, m *identity.Manager) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := m.Ready()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Ready() = %v, want nil within 10 s", err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// advance moves the fake clock once the Manager's loop is idle (waiting on
// a clock timer), and waits until it is idle again, so that the work that
// fell due is done when advance returns.
//
// It stops at each timer on the way, so that the work happens at the time
// it fell due, as on a real clock (ZTS, on the same clock, then dates what
// it issues at that time too).
func (f *fixture) advance(t *testing.T, d time.Duration) {
	t.Helper()
	target := f.clock.Now().Add(d)
	for {
		waitFor(t, "the manager to wait on the clock", func() bool { return f.clock.Pending() > 0 })
		next, ok := f.clock.Next()
		if !ok || next.After(target) {
			f.clock.Advance(target.Sub(f.clock.Now()))
			return
		}
		f.clock.Advance(next.Sub(f.clock.Now()))
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	return b
}

// leafOf parses the first certificate of a PEM bundle.
func leafOf(t *testing.T, b []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("no PEM block in %q", b)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("ParseCertificate: %v", err)
	}
	return c
}

// identityFiles reads and checks the identity directory: the key matches
// the certificate, which chains to the fake's CA.
func (f *fixture) identityFiles(t *testing.T) (certPEM, keyPEM []byte, leaf *x509.Certificate) {
	t.Helper()
	certPEM = readFile(t, filepath.Join(f.dir, identity.CertFileName))
	keyPEM = readFile(t, filepath.Join(f.dir, identity.KeyFileName))
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.Fatalf("%s and %s do not make a pair: %v", identity.CertFileName, identity.KeyFileName, err)
	}
	leaf = leafOf(t, certPEM)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: f.zts.CAPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		CurrentTime: leaf.NotBefore}); err != nil {
		t.Fatalf("%s does not chain to the fake CA: %v", identity.CertFileName, err)
	}
	return certPEM, keyPEM, leaf
}

// roleTokenThrough gets a role token through the Manager's Transport.
func (f *fixture) roleTokenThrough(m *identity.Manager) error {
	_, err := zts.NewClient(f.zts.URL(), m.Transport()).GetRoleToken("prov", "reader", nil, nil, "")
	return err
}

// startReader reads the identity files in a loop and records every read
// that is empty, partial or a key that does not match the certificate.
func startReader(t *testing.T, dir string) *atomicfiletest.Reader {
	return atomicfiletest.StartReader(t, func() string {
		defer time.Sleep(100 * time.Microsecond)
		certPEM, err1 := os.ReadFile(filepath.Join(dir, identity.CertFileName))
		keyPEM, err2 := os.ReadFile(filepath.Join(dir, identity.KeyFileName))
		caPEM, err3 := os.ReadFile(filepath.Join(dir, identity.CAFileName))
		switch {
		case err1 != nil || err2 != nil || err3 != nil:
			return fmt.Sprintf("read error: %v %v %v", err1, err2, err3)
		case len(certPEM) == 0 || len(keyPEM) == 0 || len(caPEM) == 0:
			return "empty file"
		}
		if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
			return "certificate and key do not make a pair: " + err.Error()
		}
		if block, _ := pem.Decode(caPEM); block == nil {
			return "partial CA file"
		}
		return ""
	})
}

// logLines keeps the log lines of a Manager.
type logLines struct {
	t     *testing.T
	mu    sync.Mutex
	lines []string
}

func (l *logLines) logger() logr.Logger {
	return funcr.New(func(prefix, args string) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.lines = append(l.lines, args)
	}, funcr.Options{})
}

// count returns how many lines contain s.
func (l *logLines) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

func (l *logLines) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

func newECKeyPEM(t *testing.T) (crypto.Signer, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}

func publicPEM(t *testing.T, key crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}
