package ztsfake_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/AthenZ/athenz/clients/go/zts"
	"github.com/ardielle/ardielle-go/rdl"

	"github.com/athenz-injector/athenz-injector/pkg/tokens/ztsfake"
)

// fixedNow returns a clock stuck at the current second.
func fixedNow() (time.Time, func() time.Time) {
	now := time.Unix(time.Now().Unix(), 0)
	return now, func() time.Time { return now }
}

// testClock is a settable clock, safe to read from the server's goroutines.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// newClient returns a real Athenz ZTS client authenticated as
// domain.service with a certificate from IssueIdentity.
func newClient(t *testing.T, s *ztsfake.Server, domain, service string) zts.ZTSClient {
	t.Helper()
	tr, err := s.IdentityTransport(domain, service)
	if err != nil {
		t.Fatalf("IdentityTransport(%q, %q): %v", domain, service, err)
	}
	t.Cleanup(tr.CloseIdleConnections)
	return zts.NewClient(s.URL(), tr)
}

// certClient returns a ZTS client presenting the given certificate.
func certClient(t *testing.T, s *ztsfake.Server, certPEM, keyPEM []byte) zts.ZTSClient {
	t.Helper()
	tr, err := s.Transport(certPEM, keyPEM)
	if err != nil {
		t.Fatalf("Transport: %v", err)
	}
	t.Cleanup(tr.CloseIdleConnections)
	return zts.NewClient(s.URL(), tr)
}

// anonClient returns a ZTS client that trusts the CA and has no credentials.
func anonClient(t *testing.T, s *ztsfake.Server) zts.ZTSClient {
	return certClient(t, s, nil, nil)
}

// wantResourceError checks that err is the client's rdl.ResourceError with
// code and a message containing msg.
func wantResourceError(t *testing.T, call string, err error, code int, msg string) {
	t.Helper()
	var re rdl.ResourceError
	if !errors.As(err, &re) {
		t.Fatalf("%s: got error %T %v, want rdl.ResourceError %d", call, err, err, code)
	}
	if re.Code != code || !strings.Contains(re.Message, msg) {
		t.Fatalf("%s: got ResourceError{%d, %q}, want {%d, containing %q}", call, re.Code, re.Message, code, msg)
	}
}

func int32p(v int32) *int32 { return &v }

func newECKey(t *testing.T) (*ecdsa.PrivateKey, []byte) {
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

func newRSAKey(t *testing.T) (*rsa.PrivateKey, []byte) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
}

func publicPEM(t *testing.T, key crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// csrSpec describes a CSR to build.
type csrSpec struct {
	cn     string
	dns    []string
	uris   []string
	ips    []string
	emails []string
}

func newCSR(t *testing.T, key crypto.Signer, spec csrSpec) string {
	t.Helper()
	tmpl := &x509.CertificateRequest{
		Subject:        pkix.Name{CommonName: spec.cn, Organization: []string{"test"}},
		DNSNames:       spec.dns,
		EmailAddresses: spec.emails,
	}
	for _, u := range spec.uris {
		parsed, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, parsed)
	}
	for _, ip := range spec.ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatalf("CreateCertificateRequest: %v", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

// parseCert decodes one PEM certificate and checks that it chains to the
// fake's CA for usage.
func parseCert(t *testing.T, s *ztsfake.Server, certPEM string, usage x509.ExtKeyUsage) *x509.Certificate {
	t.Helper()
	return parseCertAt(t, s, certPEM, usage, time.Time{})
}

// parseCertAt is parseCert with the chain checked at the time at (zero:
// now).
func parseCertAt(t *testing.T, s *ztsfake.Server, certPEM string, usage x509.ExtKeyUsage, at time.Time) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode([]byte(certPEM))
	if block == nil {
		t.Fatalf("certificate is not PEM: %q", certPEM)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("ParseCertificate: %v", err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: s.CAPool(), KeyUsages: []x509.ExtKeyUsage{usage}, CurrentTime: at}); err != nil {
		t.Fatalf("certificate %q does not chain to the fake CA for %v: %v", cert.Subject.CommonName, usage, err)
	}
	return cert
}

// jwtParts splits and decodes a compact JWS.
type jwtParts struct {
	header map[string]any
	claims map[string]any
	signed string
	sig    []byte
}

func decodeJWT(t *testing.T, tok string) jwtParts {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("JWT %q has %d parts, want 3", tok, len(parts))
	}
	var out jwtParts
	for i, dst := range []*map[string]any{&out.header, &out.claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatalf("JWT part %d: %v", i, err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatalf("JWT part %d: %v", i, err)
		}
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		t.Fatalf("JWT signature: %v", err)
	}
	out.signed, out.sig = parts[0]+"."+parts[1], sig
	return out
}

// verifyJWT checks a JWT's signature with the key of its kid in jwks.
func verifyJWT(t *testing.T, jwks *zts.JWKList, tok string) jwtParts {
	t.Helper()
	p := decodeJWT(t, tok)
	kid, _ := p.header["kid"].(string)
	var key *zts.JWK
	for _, k := range jwks.Keys {
		if k.Kid == kid {
			key = k
		}
	}
	if key == nil {
		t.Fatalf("JWT kid %q is not in the JWKS", kid)
	}
	b64 := func(s string) []byte {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			t.Fatalf("JWK field %q: %v", s, err)
		}
		return b
	}
	sum := sha256.Sum256([]byte(p.signed))
	switch key.Kty {
	case "RSA":
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(b64(key.N)), E: int(new(big.Int).SetBytes(b64(key.E)).Int64())}
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], p.sig); err != nil {
			t.Fatalf("RS256 signature does not verify: %v", err)
		}
	case "EC":
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), slices.Concat([]byte{4}, b64(key.X), b64(key.Y)))
		if err != nil {
			t.Fatalf("JWK EC key: %v", err)
		}
		if len(p.sig) != 64 || !ecdsa.Verify(pub, sum[:], new(big.Int).SetBytes(p.sig[:32]), new(big.Int).SetBytes(p.sig[32:])) {
			t.Fatalf("ES256 signature does not verify")
		}
	default:
		t.Fatalf("JWK kty %q", key.Kty)
	}
	return p
}

// tokenFields splits an Athenz token "k=v;...;s=sig" into its fields and
// the signed part.
func tokenFields(t *testing.T, tok string) (map[string]string, string, string) {
	t.Helper()
	unsigned, sig, ok := strings.Cut(tok, ";s=")
	if !ok {
		t.Fatalf("token %q has no signature", tok)
	}
	fields := map[string]string{}
	for f := range strings.SplitSeq(unsigned, ";") {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			t.Fatalf("token field %q is not k=v", f)
		}
		if _, dup := fields[k]; dup {
			t.Fatalf("token field %q repeats", k)
		}
		fields[k] = v
	}
	return fields, unsigned, sig
}
