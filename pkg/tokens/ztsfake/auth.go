package ztsfake

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
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/athenz-injector/athenz-injector/pkg/tokens"
)

// Athenz header names.
const (
	headerPrincipalAuth = "Athenz-Principal-Auth"
)

// ntokenClockSkew is how far in the future an N-token's issue time may be,
// as ZTS's athenz.auth.principal.token_allowed_offset (300 s).
const ntokenClockSkew = 5 * time.Minute

// principal is an authenticated caller.
type principal struct {
	name   string            // lower case, "domain.service" or "user.x"
	cert   *x509.Certificate // set when authenticated by a TLS client certificate
	ntoken *ntoken           // set when authenticated by an N-token
}

// authenticate returns the caller, or nil if the request carries no
// credentials. A client certificate that the TLS layer verified against
// the fake's CA wins over an N-token. Invalid credentials are a 401.
func (s *Server) authenticate(r *http.Request) (*principal, error) {
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.PeerCertificates) > 0 {
		leaf := r.TLS.PeerCertificates[0]
		name := strings.ToLower(leaf.Subject.CommonName)
		if err := tokens.ValidateCompoundName(name); err != nil {
			return nil, unauthorized("client certificate CN %q is not a principal name: %v", leaf.Subject.CommonName, err)
		}
		return &principal{name: name, cert: leaf}, nil
	}
	raw := r.Header.Get(headerPrincipalAuth)
	if raw == "" {
		return nil, nil
	}
	tok, err := s.verifyNToken(raw)
	if err != nil {
		return nil, unauthorized("%s: %v", headerPrincipalAuth, err)
	}
	return &principal{name: tok.domain + "." + tok.name, ntoken: tok}, nil
}

// requirePrincipal is authenticate for operations that need a caller.
func (s *Server) requirePrincipal(r *http.Request) (*principal, error) {
	p, err := s.authenticate(r)
	if err != nil {
		return nil, err
	}
	if p == nil {
		return nil, unauthorized("authentication required: present a client certificate issued by the ZTS CA or an N-token in %s", headerPrincipalAuth)
	}
	return p, nil
}

// ntoken is a parsed N-token:
// v=S1;d=<domain>;n=<service>;k=<key version>[;z=<key service>][;h=<host>][;i=<ip>];a=<salt>;t=<issued>;e=<expires>;s=<signature>
type ntoken struct {
	version, domain, name, keyVersion, keyService, host, ip string
	issued, expires                                         time.Time
	unsigned, signature                                     string
}

func parseNToken(raw string) (*ntoken, error) {
	unsigned, sig, ok := strings.Cut(raw, ";s=")
	if !ok || sig == "" {
		return nil, errors.New("the N-token has no signature (s=)")
	}
	t := &ntoken{unsigned: unsigned, signature: sig}
	for field := range strings.SplitSeq(unsigned, ";") {
		k, v, ok := strings.Cut(field, "=")
		if !ok {
			return nil, fmt.Errorf("the N-token field %q is not key=value", field)
		}
		switch k {
		case "v":
			t.version = v
		case "d":
			t.domain = strings.ToLower(v)
		case "n":
			t.name = strings.ToLower(v)
		case "k":
			t.keyVersion = v
		case "z":
			t.keyService = strings.ToLower(v)
		case "h":
			t.host = v
		case "i":
			t.ip = v
		case "t", "e":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("the N-token field %s=%q is not a unix time", k, v)
			}
			if k == "t" {
				t.issued = time.Unix(n, 0)
			} else {
				t.expires = time.Unix(n, 0)
			}
		}
	}
	switch {
	case !strings.HasPrefix(t.version, "S"):
		return nil, fmt.Errorf("the N-token's version %q is not a service token's (S1)", t.version)
	case t.domain == "" || t.name == "":
		return nil, errors.New("the N-token has no domain (d=) or name (n=)")
	case t.keyVersion == "":
		return nil, errors.New("the N-token has no key version (k=)")
	case t.issued.IsZero() || t.expires.IsZero():
		return nil, errors.New("the N-token has no issue (t=) or expiry (e=) time")
	}
	if err := tokens.ValidateDomain(t.domain); err != nil {
		return nil, fmt.Errorf("the N-token domain: %w", err)
	}
	if err := tokens.ValidateSimpleName(t.name); err != nil {
		return nil, fmt.Errorf("the N-token name: %w", err)
	}
	return t, nil
}

// verifyNToken parses an N-token, checks its times against the fake's
// clock and its signature against the registered key: the key of
// sys.auth.<z> when the token has z= (z=zts: the fake's signing key), else
// the key version k of <d>.<n> given to RegisterServiceKey.
func (s *Server) verifyNToken(raw string) (*ntoken, error) {
	t, err := parseNToken(raw)
	if err != nil {
		return nil, err
	}
	now := s.now()
	if !now.Before(t.expires) {
		return nil, fmt.Errorf("the N-token for %s.%s expired at %s", t.domain, t.name, t.expires.UTC().Format(time.RFC3339))
	}
	if t.issued.After(now.Add(ntokenClockSkew)) {
		return nil, fmt.Errorf("the N-token for %s.%s is issued in the future (%s)", t.domain, t.name, t.issued.UTC().Format(time.RFC3339))
	}
	keyDomain, keyService := t.domain, t.name
	if t.keyService != "" {
		keyDomain, keyService = sysAuthDomain, t.keyService
	}
	pub, ok := s.lookupKey(keyDomain, keyService, t.keyVersion)
	if !ok {
		return nil, fmt.Errorf("no public key %q registered for %s.%s", t.keyVersion, keyDomain, keyService)
	}
	sig, err := tokens.YBase64.DecodeString(t.signature)
	if err != nil {
		return nil, fmt.Errorf("the N-token signature is not YBase64: %w", err)
	}
	if err := verifySHA256(pub.key, t.unsigned, sig); err != nil {
		return nil, fmt.Errorf("the N-token signature does not verify with key %q of %s.%s", t.keyVersion, keyDomain, keyService)
	}
	return t, nil
}

// verifySHA256 checks an Athenz signature: SHA-256, RSA PKCS#1 v1.5 or
// ECDSA ASN.1.
func verifySHA256(pub crypto.PublicKey, data string, sig []byte) error {
	sum := sha256.Sum256([]byte(data))
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return rsa.VerifyPKCS1v15(k, crypto.SHA256, sum[:], sig)
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(k, sum[:], sig) {
			return errors.New("invalid ECDSA signature")
		}
		return nil
	}
	return fmt.Errorf("unsupported key type %T", pub)
}

// signNToken returns an N-token for domain.service signed by the fake's
// key with z=zts, as ZTS returns in InstanceIdentity.serviceToken.
func (s *Server) signNToken(domain, service, clientIP string, lifetime time.Duration) (string, error) {
	salt := make([]byte, 8)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("generating salt: %w", err)
	}
	now := s.now()
	var b strings.Builder
	fmt.Fprintf(&b, "v=S1;d=%s;n=%s;k=%s;z=%s;h=localhost", domain, service, s.key.id, ztsService)
	if ip := net.ParseIP(clientIP); ip != nil && ip.To4() != nil {
		fmt.Fprintf(&b, ";i=%s", ip.To4())
	}
	fmt.Fprintf(&b, ";a=%s;t=%d;e=%d", hex.EncodeToString(salt), now.Unix(), now.Add(lifetime).Unix())
	sig, err := s.key.signAthenz(b.String())
	if err != nil {
		return "", err
	}
	return b.String() + ";s=" + sig, nil
}

// serviceKeyRef names one public key of a service.
type serviceKeyRef struct{ domain, service, keyVersion string }

type publicKey struct {
	key crypto.PublicKey
	pem []byte // PKIX "PUBLIC KEY"
}

// RegisterServiceKey registers the public key keyVersion of
// domain.service, as ZMS would hold it: N-tokens signed with the private key
// then authenticate as domain.service, key-owner refresh
// (POST /instance/{domain}/{service}/refresh) accepts CSRs for it, and the
// public key endpoint serves it. publicKeyPEM may be a "PUBLIC KEY",
// "RSA PUBLIC KEY" or "CERTIFICATE" block, or a private key (its public
// half is used). Registering a version again replaces the key.
func (s *Server) RegisterServiceKey(domain, service, keyVersion string, publicKeyPEM []byte) error {
	pub, err := parsePublicKeyPEM(publicKeyPEM)
	if err != nil {
		return fmt.Errorf("registering key %q of %s.%s: %w", keyVersion, domain, service, err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return fmt.Errorf("registering key %q of %s.%s: %w", keyVersion, domain, service, err)
	}
	ref := serviceKeyRef{strings.ToLower(domain), strings.ToLower(service), keyVersion}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.serviceKeys[ref] = &publicKey{key: pub, pem: pemEncode("PUBLIC KEY", der)}
	return nil
}

// lookupKey returns a service's public key: the fake's signing key for
// sys.auth.zts, else a registered one.
func (s *Server) lookupKey(domain, service, keyVersion string) (*publicKey, bool) {
	if domain == sysAuthDomain && service == ztsService && keyVersion == s.key.id {
		return &publicKey{key: s.key.signer.Public(), pem: s.key.pubPEM}, true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	pub, ok := s.serviceKeys[serviceKeyRef{domain, service, keyVersion}]
	return pub, ok
}

func parsePublicKeyPEM(b []byte) (crypto.PublicKey, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	var (
		key any
		err error
	)
	switch block.Type {
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var c *x509.Certificate
		if c, err = x509.ParseCertificate(block.Bytes); err == nil {
			key = c.PublicKey
		}
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("unsupported PEM block %q", block.Type)
	}
	if err != nil {
		return nil, err
	}
	if signer, ok := key.(crypto.Signer); ok {
		key = signer.Public()
	}
	switch key.(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey:
		return key, nil
	}
	return nil, fmt.Errorf("unsupported key type %T (want RSA or ECDSA)", key)
}

// samePublicKey reports whether a and b are the same RSA or ECDSA key.
func samePublicKey(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	ea, ok := a.(equaler)
	return ok && ea.Equal(b)
}

// clientIP is the request's remote IP without the port.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
