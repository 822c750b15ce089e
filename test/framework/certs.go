package framework

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// TestCA is a throwaway CA for a run: the cluster's (API server serving
// and client certificates, the kubelet's) and the serving certificates of
// an injector that runs outside the cluster (the webhooks' in the chart's
// manual certificate mode, the provider callback's).
type TestCA struct {
	// PEM is the CA certificate.
	PEM []byte
	// File is PEM in a file (for --client-ca-file, helm --set-file).
	File string

	cert *x509.Certificate
	key  *ecdsa.PrivateKey

	mu     sync.Mutex
	serial int64
}

// NewTestCA creates a CA valid for a day and writes it to dir/ca.crt.
func NewTestCA(dir string) (*TestCA, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "athenz-injector test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("creating the test CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	ca := &TestCA{
		PEM:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		File:   filepath.Join(dir, "ca.crt"),
		cert:   cert,
		key:    key,
		serial: 1,
	}
	if err := os.WriteFile(ca.File, ca.PEM, 0o600); err != nil {
		return nil, err
	}
	return ca, nil
}

// Pool is a pool with only the CA.
func (ca *TestCA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// CertRequest says what certificate Issue makes.
type CertRequest struct {
	CommonName    string
	Organizations []string // groups, for a Kubernetes client certificate
	DNSNames      []string
	IPs           []net.IP
	Server        bool // server authentication (else client)
}

// KeyPair is a certificate and its key, PEM.
type KeyPair struct {
	CertPEM, KeyPEM []byte
}

// Issue issues a certificate valid for a day.
func (ca *TestCA) Issue(r CertRequest) (KeyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return KeyPair{}, err
	}
	ca.mu.Lock()
	ca.serial++
	serial := ca.serial
	ca.mu.Unlock()
	now := time.Now()
	usage := x509.ExtKeyUsageClientAuth
	if r.Server {
		usage = x509.ExtKeyUsageServerAuth
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: r.CommonName, Organization: r.Organizations},
		DNSNames:     r.DNSNames,
		IPAddresses:  r.IPs,
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return KeyPair{}, fmt.Errorf("issuing a certificate for %s: %w", r.CommonName, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return KeyPair{}, err
	}
	return KeyPair{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

// Write writes the pair to dir/tls.crt and dir/tls.key (the layout of
// --cert-dir and of a kubernetes.io/tls Secret) and returns their paths.
func (kp KeyPair) Write(dir string) (certFile, keyFile string, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", err
	}
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(keyFile, kp.KeyPEM, 0o600); err != nil {
		return "", "", err
	}
	return certFile, keyFile, os.WriteFile(certFile, kp.CertPEM, 0o600)
}

// IssueServing issues a serving certificate with common name cn for the
// IP address ip and writes it to dir (KeyPair.Write).
func (ca *TestCA) IssueServing(dir, cn string, ip net.IP) error {
	kp, err := ca.Issue(CertRequest{CommonName: cn, IPs: []net.IP{ip}, Server: true})
	if err != nil {
		return err
	}
	_, _, err = kp.Write(dir)
	return err
}
