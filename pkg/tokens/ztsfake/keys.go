package ztsfake

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"strings"

	"github.com/athenz-injector/athenz-injector/pkg/tokens"
)

// ZTS's own identity: its public keys are served for sys.auth.zts, and
// N-tokens it signs carry z=zts.
const (
	sysAuthDomain = "sys.auth"
	ztsService    = "zts"
)

// signingKey is the key that signs role tokens, access tokens and the
// N-tokens the fake issues. Immutable after newSigningKey.
type signingKey struct {
	id     string
	alg    string // "RS256" or "ES256"
	signer crypto.Signer
	pubPEM []byte
}

func newSigningKey(keyType string) (*signingKey, error) {
	var (
		signer crypto.Signer
		alg    string
		err    error
	)
	switch keyType {
	case "ec":
		signer, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		alg = "ES256"
	default:
		signer, err = rsa.GenerateKey(rand.Reader, 2048)
		alg = "RS256"
	}
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(signer.Public())
	if err != nil {
		return nil, fmt.Errorf("encoding public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return &signingKey{
		id:     keyType + "-" + hex.EncodeToString(sum[:4]),
		alg:    alg,
		signer: signer,
		pubPEM: pemEncode("PUBLIC KEY", der),
	}, nil
}

// SigningPublicKeyPEM returns the public key (PEM, "PUBLIC KEY") that
// verifies the role tokens, access tokens and N-tokens the fake signs.
func (s *Server) SigningPublicKeyPEM() []byte { return append([]byte(nil), s.key.pubPEM...) }

// SigningKeyID returns the id of the signing key: the k= field of role
// tokens and N-tokens and the kid of access tokens and the JWKS, e.g.
// "rsa-1a2b3c4d".
func (s *Server) SigningKeyID() string { return s.key.id }

// signAthenz signs an Athenz token (role token or N-token) the way ZTS
// does: SHA-256 over the text, RSA PKCS#1 v1.5 or ECDSA (ASN.1), YBase64.
func (k *signingKey) signAthenz(unsigned string) (string, error) {
	sig, err := tokens.SignSHA256(k.signer, []byte(unsigned))
	if err != nil {
		return "", fmt.Errorf("signing token: %w", err)
	}
	return sig, nil
}

// signJWT returns a compact JWS of claims with header {alg, kid, typ}.
// ES256 signatures are r||s, 32 bytes each (RFC 7518).
func (k *signingKey) signJWT(typ string, claims any) (string, error) {
	header := struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		Typ string `json:"typ,omitempty"`
	}{k.alg, k.id, typ}
	hb, err := json.Marshal(header)
	if err != nil {
		return "", err
	}
	cb, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString(hb) + "." + enc.EncodeToString(cb)
	sum := sha256.Sum256([]byte(signing))
	var sig []byte
	switch key := k.signer.(type) {
	case *ecdsa.PrivateKey:
		r, s, err := ecdsa.Sign(rand.Reader, key, sum[:])
		if err != nil {
			return "", fmt.Errorf("signing JWT: %w", err)
		}
		sig = make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
	default:
		sig, err = k.signer.Sign(rand.Reader, sum[:], crypto.SHA256)
		if err != nil {
			return "", fmt.Errorf("signing JWT: %w", err)
		}
	}
	return signing + "." + enc.EncodeToString(sig), nil
}

// jwk is one key of the JWKS, with ZTS's field names.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg,omitempty"`
	Use string `json:"use,omitempty"`
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
	N   string `json:"n,omitempty"`
	E   string `json:"e,omitempty"`
}

// jwk returns the public signing key as a JWK. Like ZTS, the EC curve is
// "P-256" when rfc is set and "prime256v1" otherwise.
func (k *signingKey) jwk(rfc bool) jwk {
	enc := base64.RawURLEncoding
	switch pub := k.signer.Public().(type) {
	case *ecdsa.PublicKey:
		crv := "prime256v1"
		if rfc {
			crv = "P-256"
		}
		b, _ := pub.Bytes() // uncompressed point: 0x04 || x || y
		return jwk{Kty: "EC", Kid: k.id, Alg: k.alg, Use: "sig", Crv: crv,
			X: enc.EncodeToString(b[1:33]), Y: enc.EncodeToString(b[33:65])}
	case *rsa.PublicKey:
		return jwk{Kty: "RSA", Kid: k.id, Alg: k.alg, Use: "sig",
			N: enc.EncodeToString(pub.N.Bytes()),
			E: enc.EncodeToString(big.NewInt(int64(pub.E)).Bytes())}
	}
	return jwk{Kid: k.id}
}

// handleJWKS serves GET /oauth2/keys[?rfc=true][&service=zts].
func (s *Server) handleJWKS(w http.ResponseWriter, r *http.Request, _ []byte) error {
	q := r.URL.Query()
	rfc := false
	if v := q.Get("rfc"); v != "" {
		switch strings.ToLower(v) {
		case "true":
			rfc = true
		case "false":
		default:
			return badRequest("rfc: %q is not a boolean", v)
		}
	}
	keys := []jwk{s.key.jwk(rfc)}
	if svc := q.Get("service"); svc != "" && svc != ztsService {
		keys = []jwk{} // ZTS serves only its own keys here
	}
	writeJSON(w, http.StatusOK, map[string]any{"keys": keys})
	return nil
}

func publicKeyKey(r *http.Request, _ []byte) string {
	return r.PathValue("domain") + "." + r.PathValue("service") + ":" + r.PathValue("keyId")
}

// handlePublicKey serves GET /domain/{domain}/service/{service}/publickey/{keyId}:
// {"key": YBase64(PEM), "id": keyId}. sys.auth.zts has the signing key;
// other services have the keys given to RegisterServiceKey.
func (s *Server) handlePublicKey(w http.ResponseWriter, r *http.Request, _ []byte) error {
	domain := strings.ToLower(r.PathValue("domain"))
	service := strings.ToLower(r.PathValue("service"))
	keyID := r.PathValue("keyId")
	if err := tokens.ValidateDomain(domain); err != nil {
		return badRequest("domain: %v", err)
	}
	if err := tokens.ValidateSimpleName(service); err != nil {
		return badRequest("service: %v", err)
	}
	pub, ok := s.lookupKey(domain, service, keyID)
	if !ok {
		return notFound("getPublicKeyEntry: no public key %q for service %s.%s", keyID, domain, service)
	}
	writeJSON(w, http.StatusOK, map[string]string{
		"key": tokens.YBase64.EncodeToString(pub.pem),
		"id":  keyID,
	})
	return nil
}
