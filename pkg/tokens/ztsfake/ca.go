package ztsfake

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"time"
)

// Issued certificates are valid from ZTS's "now", not backdated: ZTS's
// own signer (Crypto.generateX509Certificate) does not backdate, so a
// client whose clock is behind ZTS's sees NotBefore in its future.

// authority is the fake's CA. It signs the server certificate and every
// certificate the fake issues. Immutable after newAuthority.
type authority struct {
	key     *ecdsa.PrivateKey
	cert    *x509.Certificate
	certPEM []byte
	pool    *x509.CertPool
}

func newAuthority(now time.Time) (*authority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	// The CA must be valid both at the injected time and at the wall
	// clock time that clients use to check the server certificate.
	start, end := now, now
	if wall := time.Now(); wall.Before(start) {
		start = wall
	} else {
		end = wall
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "ztsfake CA", Organization: []string{"ztsfake"}},
		// A year back, so that the CA is valid whatever SetClockOffset
		// does to ZTS's clock.
		NotBefore:             start.Add(-365 * 24 * time.Hour),
		NotAfter:              end.Add(10 * 365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("creating CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing CA certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &authority{key: key, cert: cert, certPEM: pemEncode("CERTIFICATE", der), pool: pool}, nil
}

// issue signs a certificate for pub from tmpl, filling serial and key usage.
func (a *authority) issue(tmpl *x509.Certificate, pub crypto.PublicKey) (*x509.Certificate, []byte, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	tmpl.SerialNumber = serial
	tmpl.BasicConstraintsValid = true
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	if _, ok := pub.(*rsa.PublicKey); ok {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, pub, a.key)
	if err != nil {
		return nil, nil, fmt.Errorf("signing certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("parsing issued certificate: %w", err)
	}
	return cert, pemEncode("CERTIFICATE", der), nil
}

// signCSR issues a certificate with the CSR's subject, SANs and public key,
// valid from now for lifetime.
func (a *authority) signCSR(csr *x509.CertificateRequest, now time.Time, lifetime time.Duration, usage ...x509.ExtKeyUsage) (*x509.Certificate, []byte, error) {
	now = now.Truncate(time.Second)
	return a.issue(&x509.Certificate{
		Subject:        csr.Subject,
		NotBefore:      now,
		NotAfter:       now.Add(lifetime),
		DNSNames:       csr.DNSNames,
		IPAddresses:    csr.IPAddresses,
		URIs:           csr.URIs,
		EmailAddresses: csr.EmailAddresses,
		ExtKeyUsage:    usage,
	}, csr.PublicKey)
}

// serverCert returns the TLS certificate of the fake for hosts (IPs or
// names), valid as long as the CA.
func (a *authority) serverCert(hosts []string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generating server key: %w", err)
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "localhost", Organization: []string{"ztsfake"}},
		NotBefore:   a.cert.NotBefore,
		NotAfter:    a.cert.NotAfter,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	cert, _, err := a.issue(tmpl, key.Public())
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}, nil
}

// IssueIdentity returns a client identity certificate and its key (PEM,
// "EC PRIVATE KEY", P-256) for domain.service, signed by the fake's CA: CN
// "<domain>.<service>", SAN URI "spiffe://<domain>/sa/<service>", client
// and server use, valid for Options.CertLifetime. The fake accepts it as the
// principal domain.service; tests and dev mode use it in place of a
// registered instance certificate.
func (s *Server) IssueIdentity(domain, service string) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating identity key: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding identity key: %w", err)
	}
	now := s.now().Truncate(time.Second)
	_, certPEM, err = s.ca.issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: domain + "." + service},
		NotBefore:   now,
		NotAfter:    now.Add(s.opts.CertLifetime),
		URIs:        []*url.URL{{Scheme: "spiffe", Host: domain, Path: "/sa/" + service}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
	}, key.Public())
	if err != nil {
		return nil, nil, fmt.Errorf("issuing identity for %s.%s: %w", domain, service, err)
	}
	return certPEM, pemEncode("EC PRIVATE KEY", keyDER), nil
}

// IssueServer returns a TLS server certificate for hosts (IP addresses or
// DNS names) signed by the fake's CA and valid as long as it: for test
// upstreams that serve with a certificate of ZTS's CA, as Athenz services
// serving with their own identity do.
func (s *Server) IssueServer(hosts ...string) (tls.Certificate, error) {
	return s.ca.serverCert(hosts)
}

// TLSClientConfig returns a TLS configuration that trusts the fake's CA
// and, if certPEM and keyPEM are given, presents that client certificate.
func (s *Server) TLSClientConfig(certPEM, keyPEM []byte) (*tls.Config, error) {
	cfg := &tls.Config{RootCAs: s.CAPool(), MinVersion: tls.VersionTLS12}
	if len(certPEM) == 0 && len(keyPEM) == 0 {
		return cfg, nil
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("loading client certificate: %w", err)
	}
	cfg.Certificates = []tls.Certificate{pair}
	return cfg, nil
}

// Transport returns an HTTP transport that trusts the fake's CA and, if
// certPEM and keyPEM are given, presents that client certificate. Use it
// with zts.NewClient(s.URL(), tr).
func (s *Server) Transport(certPEM, keyPEM []byte) (*http.Transport, error) {
	cfg, err := s.TLSClientConfig(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = cfg
	tr.Proxy = nil
	return tr, nil
}

// IdentityTransport issues an identity for domain.service (IssueIdentity)
// and returns a transport that presents it.
func (s *Server) IdentityTransport(domain, service string) (*http.Transport, error) {
	certPEM, keyPEM, err := s.IssueIdentity(domain, service)
	if err != nil {
		return nil, err
	}
	return s.Transport(certPEM, keyPEM)
}

// Client returns an HTTP client that trusts the fake's CA and presents no
// client certificate (as httptest.Server.Client).
func (s *Server) Client() *http.Client {
	tr, _ := s.Transport(nil, nil) // cannot fail without a certificate
	return &http.Client{Transport: tr}
}

func randomSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generating serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

func pemEncode(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
