package tokens_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/AthenZ/athenz/libs/go/zmssvctoken"

	"github.com/athenz-injector/athenz-injector/pkg/tokens"
)

// TestNTokenValidatesWithAthenzLibrary checks our signer against Athenz's
// own validator, which the sidecar must not link (it is heavy) but tests
// may.
func TestNTokenValidatesWithAthenzLibrary(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, _ := x509.MarshalECPrivateKey(ecKey)
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
	tests := []struct {
		name   string
		keyPEM []byte
		pub    any
	}{
		{name: "RSA PKCS#1", keyPEM: pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)}), pub: &rsaKey.PublicKey},
		{name: "RSA PKCS#8", keyPEM: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), pub: &rsaKey.PublicKey},
		{name: "ECDSA P-256", keyPEM: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER}), pub: &ecKey.PublicKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			signer, err := tokens.NewNTokenSigner(tokens.NTokenOptions{
				Domain: "sports", Service: "api", KeyVersion: "v1", KeyPEM: tt.keyPEM, Host: "pod-1", IP: "127.0.0.1",
			})
			if err != nil {
				t.Fatalf("NewNTokenSigner: %v", err)
			}
			tok, exp, err := signer.Token()
			if err != nil {
				t.Fatalf("Token: %v", err)
			}
			pubDER, err := x509.MarshalPKIXPublicKey(tt.pub)
			if err != nil {
				t.Fatal(err)
			}
			v, err := zmssvctoken.NewPubKeyTokenValidator(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}))
			if err != nil {
				t.Fatalf("NewPubKeyTokenValidator: %v", err)
			}
			ntok, err := v.Validate(tok)
			if err != nil {
				t.Fatalf("zmssvctoken rejected our N-token: %v", err)
			}
			if ntok.Domain != "sports" || ntok.Name != "api" || ntok.KeyVersion != "v1" {
				t.Errorf("validated token = domain %q name %q key %q, want sports/api/v1", ntok.Domain, ntok.Name, ntok.KeyVersion)
			}
			if d := time.Until(exp); d < 59*time.Minute || d > time.Hour {
				t.Errorf("expiry in %v, want about 1 h", d)
			}
			again, _, _ := signer.Token()
			if again != tok {
				t.Error("second Token() signed a new token; want the cached one while most of its lifetime is left")
			}
		})
	}
}

func TestNTokenSignerRenewsBeforeExpiry(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalECPrivateKey(key)
	clock := tokens.NewFakeClock(epoch)
	s, err := tokens.NewNTokenSigner(tokens.NTokenOptions{Domain: "d", Service: "s", KeyVersion: "0",
		KeyPEM: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := s.Token()
	clock.Advance(46 * time.Minute)
	second, exp, _ := s.Token()
	if second == first {
		t.Error("token with 14 min of 60 left was reused; want a new one")
	}
	if !strings.Contains(second, ";e=") || exp.Sub(clock.Now()) != time.Hour {
		t.Errorf("new token expires in %v, want 1 h", exp.Sub(clock.Now()))
	}
}

func TestNewNTokenSignerErrorsNameTheField(t *testing.T) {
	tests := []struct {
		name      string
		opts      tokens.NTokenOptions
		wantField string
	}{
		{name: "bad domain", opts: tokens.NTokenOptions{Domain: "a b", Service: "s", KeyVersion: "0"}, wantField: "domain"},
		{name: "bad service", opts: tokens.NTokenOptions{Domain: "d", Service: "s.t", KeyVersion: "0"}, wantField: "service"},
		{name: "no key version", opts: tokens.NTokenOptions{Domain: "d", Service: "s"}, wantField: "key version"},
		{name: "not PEM", opts: tokens.NTokenOptions{Domain: "d", Service: "s", KeyVersion: "0", KeyPEM: []byte("secret-material")}, wantField: "key"},
		{name: "wrong block", opts: tokens.NTokenOptions{Domain: "d", Service: "s", KeyVersion: "0", KeyPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}})}, wantField: "key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tokens.NewNTokenSigner(tt.opts)
			if err == nil || !strings.HasPrefix(err.Error(), "invalid "+tt.wantField+":") {
				t.Fatalf("NewNTokenSigner error = %v, want one naming %q", err, tt.wantField)
			}
			if strings.Contains(err.Error(), "secret-material") {
				t.Errorf("error %q echoes the key material", err)
			}
		})
	}
}
