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
	// valid is the certificate's validity on this node's clock.
	valid validity
	// instanceID is the copper-argos instance id for refresh.
	instanceID string
	// keyGen counts key changes; role certificates made for an older key
	// are fetched again.
	keyGen uint64
}

func (c *credential) leaf() *x509.Certificate { return c.tls.Leaf }

// validAt reports whether the certificate can be presented at now (the
// node's clock).
func (c *credential) validAt(now time.Time) bool {
	return c != nil && c.valid.at(now)
}

// validity is when a certificate is valid on this node's clock: its
// NotBefore and NotAfter, which are ZTS's, less ZTS's clock offset (ZTS's
// clock minus the node's). Whoever checks the certificate (ZTS, an app's
// peer) does so by a clock close to ZTS's, so that is the clock that
// decides when it expires and must be renewed, not the node's.
type validity struct{ notBefore, notAfter time.Time }

func certValidity(leaf *x509.Certificate, offset time.Duration) validity {
	return validity{notBefore: leaf.NotBefore.Add(-offset), notAfter: leaf.NotAfter.Add(-offset)}
}

func (v validity) at(now time.Time) bool { return !now.Before(v.notBefore) && now.Before(v.notAfter) }

// issueOffset is ZTS's clock offset to apply to a certificate it issued in
// answer to a request sent at sent and answered at received (the node's
// clock), given hint, the offset measured from the issue times of its
// tokens (0 when none was). ZTS's clock was within the certificate's
// validity when it issued it: offset is within [NotBefore - received,
// NotAfter - sent]. A hint a little outside it (both are whole seconds)
// is moved to its edge; a hint far outside is wrong (ZTS's clock moved, or
// nothing was measured yet), and the middle of the range is the better
// guess.
func issueOffset(leaf *x509.Certificate, sent, received time.Time, hint time.Duration) time.Duration {
	const resolution = 2 * time.Second
	lo, hi := leaf.NotBefore.Sub(received), leaf.NotAfter.Sub(sent)
	switch {
	case hi < lo:
		return hint
	case hint < lo-resolution || hint > hi+resolution:
		return lo + (hi-lo)/2
	}
	return min(max(hint, lo), hi)
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
func newCredential(certPEM, caPEM []byte, key crypto.Signer, keyPEM []byte, obtained time.Time, valid func(*x509.Certificate) validity) (*credential, error) {
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
		valid:    valid(leaf),
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

// renewAt is when a credential valid for v (the node's clock) and
// obtained at obtained is renewed: after fraction of its lifetime, counted
// from when it was obtained (a signer may backdate NotBefore for clock
// skew, which would make the lifetime look longer than it is), less up to
// a tenth of that interval of jitter so that Pods started together spread
// their renewals.
func renewAt(obtained time.Time, v validity, fraction float64, jitter float64) time.Time {
	start := v.notBefore
	if obtained.After(start) {
		start = obtained
	}
	life := v.notAfter.Sub(start)
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
