package identity

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// credential is one identity: a certificate chain with its key, as used
// for mTLS to ZTS and written to the identity directory. Immutable.
type credential struct {
	tls      *tls.Certificate // chain (leaf first), key and Leaf
	chainPEM []byte           // service.cert.pem: leaf and intermediates
	key      crypto.Signer
	keyPEM   []byte // service.key.pem, PKCS#8
	caPEM    []byte // ca.cert.pem; nil when the source sent none
	obtained time.Time
	// instanceID is the copper-argos instance id for refresh.
	instanceID string
	// keyGen counts key changes; role certificates made for an older key
	// are fetched again.
	keyGen uint64
}

func (c *credential) leaf() *x509.Certificate { return c.tls.Leaf }

// validAt reports whether the certificate can be presented at now.
func (c *credential) validAt(now time.Time) bool {
	return c != nil && !now.Before(c.leaf().NotBefore) && now.Before(c.leaf().NotAfter)
}

// generateKey makes a new private key and its PKCS#8 PEM.
func generateKey(t KeyType) (crypto.Signer, []byte, error) {
	var (
		key crypto.Signer
		err error
	)
	switch t {
	case KeyRSA:
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("generating %s key: %w", t, err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return key, keyPEM, nil
}

// encodeKey returns the key as PKCS#8 PEM ("PRIVATE KEY"), the form most
// TLS libraries read (Java's among them).
func encodeKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encoding private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// csrSpec is what goes into a certificate signing request.
type csrSpec struct {
	cn     string
	dns    []string
	uris   []string
	ips    []net.IP
	emails []string
}

// newCSR returns a PEM certificate signing request signed by key.
func newCSR(key crypto.Signer, spec csrSpec) (string, error) {
	tmpl := &x509.CertificateRequest{
		Subject:        pkix.Name{CommonName: spec.cn},
		DNSNames:       spec.dns,
		IPAddresses:    spec.ips,
		EmailAddresses: spec.emails,
	}
	for _, u := range spec.uris {
		parsed, err := url.Parse(u)
		if err != nil {
			return "", fmt.Errorf("SAN URI %q: %w", u, err)
		}
		tmpl.URIs = append(tmpl.URIs, parsed)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return "", fmt.Errorf("creating CSR: %w", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})), nil
}

// parseCerts decodes every CERTIFICATE block of a PEM bundle.
func parseCerts(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	return out, nil
}

func encodeCerts(certs []*x509.Certificate) []byte {
	var buf bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return buf.Bytes()
}

// newCredential builds a credential from ZTS's answer: certPEM is the leaf
// (possibly followed by intermediates), caPEM the signer bundle. The chain
// written and presented is the leaf, the intermediates ZTS sent with it,
// and the signer bundle's certificates that are not self-signed roots.
func newCredential(certPEM, caPEM []byte, key crypto.Signer, keyPEM []byte, obtained time.Time) (*credential, error) {
	certs, err := parseCerts(certPEM)
	if err != nil {
		return nil, fmt.Errorf("certificate from ZTS: %w", err)
	}
	leaf := certs[0]
	if !publicKeysEqual(leaf.PublicKey, key.Public()) {
		return nil, errors.New("certificate from ZTS is not for the key of the request")
	}
	chain := certs
	var ca []byte
	if len(bytes.TrimSpace(caPEM)) > 0 {
		cas, err := parseCerts(caPEM)
		if err != nil {
			return nil, fmt.Errorf("CA bundle from ZTS: %w", err)
		}
		for _, c := range cas {
			if isSelfSigned(c) || containsCert(chain, c) {
				continue
			}
			chain = append(chain, c)
		}
		ca = caPEM
	}
	pair := &tls.Certificate{PrivateKey: key, Leaf: leaf}
	for _, c := range chain {
		pair.Certificate = append(pair.Certificate, c.Raw)
	}
	return &credential{
		tls:      pair,
		chainPEM: encodeCerts(chain),
		key:      key,
		keyPEM:   keyPEM,
		caPEM:    ca,
		obtained: obtained,
	}, nil
}

func isSelfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil
}

func containsCert(list []*x509.Certificate, c *x509.Certificate) bool {
	for _, x := range list {
		if x.Equal(c) {
			return true
		}
	}
	return false
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	ea, ok := a.(equaler)
	return ok && ea.Equal(b)
}

// renewAt is when a certificate obtained at obtained is renewed: after
// fraction of its lifetime, counted from when it was obtained (ZTS
// backdates NotBefore for clock skew, which would make the lifetime look
// longer than it is), less up to a tenth of that interval of jitter so
// that Pods started together spread their renewals.
func renewAt(obtained time.Time, leaf *x509.Certificate, fraction float64, jitter float64) time.Time {
	start := leaf.NotBefore
	if obtained.After(start) {
		start = obtained
	}
	life := leaf.NotAfter.Sub(start)
	if life <= 0 {
		return obtained
	}
	d := time.Duration(float64(life) * fraction)
	d -= time.Duration(float64(d) * 0.1 * jitter)
	return start.Add(d)
}

// instanceIDFromLocation returns the last path element of a register
// answer's Location, /zts/v1/instance/<provider>/<domain>/<service>/<id>.
func instanceIDFromLocation(loc string) string {
	if loc == "" {
		return ""
	}
	if u, err := url.Parse(loc); err == nil {
		loc = u.Path
	}
	loc = strings.TrimSuffix(loc, "/")
	if i := strings.LastIndexByte(loc, '/'); i >= 0 {
		return loc[i+1:]
	}
	return ""
}

// ntokenExpiry reads the e= field of an N-token.
func ntokenExpiry(tok string) (time.Time, bool) {
	unsigned, _, _ := strings.Cut(tok, ";s=")
	for f := range strings.SplitSeq(unsigned, ";") {
		if v, ok := strings.CutPrefix(f, "e="); ok {
			var sec int64
			if _, err := fmt.Sscanf(v, "%d", &sec); err == nil && sec > 0 {
				return time.Unix(sec, 0), true
			}
		}
	}
	return time.Time{}, false
}
