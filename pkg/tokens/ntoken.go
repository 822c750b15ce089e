package tokens

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// NTokenOptions configures an NTokenSigner.
type NTokenOptions struct {
	Domain, Service string
	// KeyVersion is the id of the public key registered in Athenz ("0", "v1").
	KeyVersion string
	// KeyPEM is the service's private key (RSA or ECDSA; PKCS#1, SEC 1 or PKCS#8).
	KeyPEM []byte
	// KeyService, when set, is the service whose key signs (the z= field).
	KeyService string
	// Host and IP, when set, go in the h= and i= fields.
	Host, IP string
	// Lifetime of each token. Default: 1 h.
	Lifetime time.Duration
	// Clock default: RealClock.
	Clock Clock
}

// NTokenSigner builds Athenz principal tokens (N-tokens) signed with the
// service's own key, in the format ZMS and ZTS validate:
//
//	v=S1;d=<domain>;n=<service>;k=<key version>[;z=<key service>][;h=<host>][;i=<ip>];a=<salt>;t=<issued>;e=<expires>;s=<signature>
//
// It reuses a token until a quarter of its lifetime is left, so every
// caller gets a token with at least that much time. It exists so the
// sidecar does not link the Athenz zmssvctoken package and its hundreds of
// dependencies; tests check its tokens with zmssvctoken's validator.
type NTokenSigner struct {
	opts   NTokenOptions
	signer crypto.Signer

	mu      sync.Mutex // guards current, expires
	current string
	expires time.Time
}

// NewNTokenSigner parses the key and returns a signer.
func NewNTokenSigner(opts NTokenOptions) (*NTokenSigner, error) {
	if err := ValidateDomain(opts.Domain); err != nil {
		return nil, &FieldError{Field: "domain", Err: err}
	}
	if err := ValidateService(opts.Service); err != nil {
		return nil, &FieldError{Field: "service", Err: err}
	}
	if opts.KeyVersion == "" || strings.ContainsAny(opts.KeyVersion, ";= ") {
		return nil, &FieldError{Field: "key version", Err: fmt.Errorf("must be a non-empty id without ';', '=' or spaces")}
	}
	if opts.KeyService != "" {
		if err := ValidateService(opts.KeyService); err != nil {
			return nil, &FieldError{Field: "key service", Err: err}
		}
	}
	signer, err := ParsePrivateKeyPEM(opts.KeyPEM)
	if err != nil {
		return nil, &FieldError{Field: "key", Err: err}
	}
	if opts.Lifetime <= 0 {
		opts.Lifetime = time.Hour
	}
	if opts.Clock == nil {
		opts.Clock = RealClock{}
	}
	return &NTokenSigner{opts: opts, signer: signer}, nil
}

// Token returns a valid N-token, signing a new one when the current one has
// less than a quarter of its lifetime left.
func (s *NTokenSigner) Token() (string, time.Time, error) {
	now := s.opts.Clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.current != "" && s.expires.Sub(now) > s.opts.Lifetime/4 {
		return s.current, s.expires, nil
	}
	tok, exp, err := s.sign(now)
	if err != nil {
		return "", time.Time{}, err
	}
	s.current, s.expires = tok, exp
	return tok, exp, nil
}

func (s *NTokenSigner) sign(now time.Time) (string, time.Time, error) {
	var salt [8]byte
	if _, err := rand.Read(salt[:]); err != nil {
		return "", time.Time{}, fmt.Errorf("n-token salt: %w", err)
	}
	exp := now.Add(s.opts.Lifetime)
	var b strings.Builder
	b.WriteString("v=S1;d=")
	b.WriteString(s.opts.Domain)
	b.WriteString(";n=")
	b.WriteString(s.opts.Service)
	b.WriteString(";k=")
	b.WriteString(s.opts.KeyVersion)
	if s.opts.KeyService != "" {
		b.WriteString(";z=")
		b.WriteString(s.opts.KeyService)
	}
	if s.opts.Host != "" {
		b.WriteString(";h=")
		b.WriteString(s.opts.Host)
	}
	if s.opts.IP != "" {
		b.WriteString(";i=")
		b.WriteString(s.opts.IP)
	}
	b.WriteString(";a=")
	b.WriteString(hex.EncodeToString(salt[:]))
	b.WriteString(";t=")
	b.WriteString(strconv.FormatInt(now.Unix(), 10))
	b.WriteString(";e=")
	b.WriteString(strconv.FormatInt(exp.Unix(), 10))
	sig, err := SignSHA256(s.signer, []byte(b.String()))
	if err != nil {
		return "", time.Time{}, fmt.Errorf("signing n-token: %w", err)
	}
	b.WriteString(";s=")
	b.WriteString(sig)
	return b.String(), time.Unix(exp.Unix(), 0), nil
}

// SignSHA256 signs data the way Athenz signs tokens: SHA-256, then RSA
// PKCS#1 v1.5 or ECDSA (ASN.1), encoded in YBase64.
func SignSHA256(signer crypto.Signer, data []byte) (string, error) {
	sum := sha256.Sum256(data)
	sig, err := signer.Sign(rand.Reader, sum[:], crypto.SHA256)
	if err != nil {
		return "", err
	}
	return YBase64.EncodeToString(sig), nil
}

// ParsePrivateKeyPEM reads an RSA or ECDSA private key in PKCS#1, SEC 1 or
// PKCS#8 PEM. Errors never echo the key.
func ParsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	switch block.Type {
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, errors.New("malformed PKCS#1 RSA private key")
		}
		return k, nil
	case "EC PRIVATE KEY":
		k, err := x509.ParseECPrivateKey(block.Bytes)
		if err != nil {
			return nil, errors.New("malformed SEC 1 EC private key")
		}
		return k, nil
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, errors.New("malformed PKCS#8 private key")
		}
		switch k := k.(type) {
		case *rsa.PrivateKey:
			return k, nil
		case *ecdsa.PrivateKey:
			return k, nil
		}
		return nil, fmt.Errorf("unsupported PKCS#8 key type %T (want RSA or ECDSA)", k)
	}
	return nil, fmt.Errorf("unsupported PEM block %q (want RSA PRIVATE KEY, EC PRIVATE KEY or PRIVATE KEY)", block.Type)
}
