package provider_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/AthenZ/athenz/clients/go/zts"
	"github.com/ardielle/ardielle-go/rdl"
	corev1 "k8s.io/api/core/v1"

	"github.com/athenz-injector/athenz-injector/pkg/tokens"
	"github.com/athenz-injector/athenz-injector/pkg/tokens/ztsfake"
	"github.com/athenz-injector/athenz-injector/pkg/webhook/provider"
)

type attestFunc = func(context.Context, ztsfake.InstanceConfirmation) (map[string]string, error)

// sidecarCSR is the CSR the sidecar of pod sends for domain.service, and
// its key.
func sidecarCSR(t *testing.T, pod *corev1.Pod, domain, service string) (string, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	spiffe, err := url.Parse(tokens.ServiceSPIFFEURI(trustDomain, pod.Namespace, domain, service))
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: domain + "." + service},
		DNSNames: []string{
			tokens.ServiceDNSName(domain, service, dnsSuffix),
			tokens.InstanceIDDNSName(string(pod.UID), dnsSuffix),
		},
		URIs:        []*url.URL{spiffe},
		IPAddresses: []net.IP{net.ParseIP(pod.Status.PodIP)},
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}

// wantRefused checks that a ZTS call was refused with 403 and a message
// that contains every one of msgs.
func wantRefused(t *testing.T, call string, err error, msgs ...string) {
	t.Helper()
	var re rdl.ResourceError
	if !errors.As(err, &re) || re.Code != 403 {
		t.Fatalf("%s: %v, want a 403 ResourceError", call, err)
	}
	t.Logf("%s: %d %s", call, re.Code, re.Message)
	for _, m := range msgs {
		if !strings.Contains(re.Message, m) {
			t.Errorf("%s: message %q, want it to contain %q", call, re.Message, m)
		}
	}
}

// ztsChain is the fake ZTS asking the provider callback, served over
// mutual TLS as ZTS calls an HTTP provider, before it signs.
type ztsChain struct {
	fake *ztsfake.Server
	logs *logBuffer
	anon zts.ZTSClient
}

func newZTSChain(t *testing.T) *ztsChain {
	t.Helper()
	var attest atomic.Pointer[attestFunc]
	fake := ztsfake.NewTest(t, ztsfake.Options{Attest: func(ctx context.Context, c ztsfake.InstanceConfirmation) (map[string]string, error) {
		return (*attest.Load())(ctx, c)
	}})

	// The provider serves a certificate whose common name is its service
	// name, as ZTS requires, and accepts only ZTS's client certificate.
	provCert, provKey, err := fake.IssueIdentity("sys.auth", "k8s")
	if err != nil {
		t.Fatal(err)
	}
	serving, err := tls.X509KeyPair(provCert, provKey)
	if err != nil {
		t.Fatal(err)
	}
	ztsCert, ztsKey, err := fake.IssueIdentity("sys.auth", "zts")
	if err != nil {
		t.Fatal(err)
	}
	ztsPair, err := tls.X509KeyPair(ztsCert, ztsKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "zts-ca.pem")
	if err := os.WriteFile(caFile, fake.CACertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	srv, err := provider.NewServer(provider.ServerOptions{
		Handler:        newHandler(t, logs, nil),
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &serving, nil },
		ClientCAFile:   caFile,
	})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, srv)
	httpProvider := ztsfake.HTTPProvider("https://"+addr, ztsfake.HTTPProviderClient(providerName, fake.CAPool(), ztsPair))
	attest.Store(&httpProvider)
	return &ztsChain{fake: fake, logs: logs, anon: zts.NewClient(fake.URL(), fake.Client().Transport)}
}

// register is the sidecar of pod registering as domain.service.
func (z *ztsChain) register(t *testing.T, domain, service, attestation string, p *corev1.Pod) (*zts.InstanceIdentity, []byte, error) {
	t.Helper()
	csr, keyPEM := sidecarCSR(t, p, domain, service)
	id, _, err := z.anon.PostInstanceRegisterInformation(&zts.InstanceRegisterInformation{
		Provider: providerName, Domain: zts.DomainName(domain), Service: zts.SimpleName(service),
		AttestationData: attestation, Csr: csr,
	})
	return id, keyPEM, err
}

// TestZTSThroughProvider runs the whole chain but the sidecar: the real
// Athenz ZTS client registers a Pod with the fake ZTS, which asks the
// provider callback over mutual TLS before it signs, as ZTS asks an HTTP
// provider.
func TestZTSThroughProvider(t *testing.T) {
	ns := uniqueNamespace("media")
	domain := tokens.NamespaceToDomain(ns)
	pod := newPod(t, podSpec{namespace: ns, name: "encoder-0", serviceAccount: "encoder", ip: "10.5.0.7"})
	other := newPod(t, podSpec{namespace: ns, name: "other-0", serviceAccount: "encoder", ip: "10.5.0.8"})
	token := mintToken(t, pod, audience, false)
	chain := newZTSChain(t)
	fake, logs := chain.fake, chain.logs
	register := func(domain, service, attestation string, p *corev1.Pod) (*zts.InstanceIdentity, []byte, error) {
		return chain.register(t, domain, service, attestation, p)
	}

	// Register, then refresh over mTLS with the new certificate.
	id, keyPEM, err := register(domain, "encoder", token, pod)
	if err != nil {
		t.Fatalf("PostInstanceRegisterInformation for the Pod: %v\nprovider log:\n%s", err, logs)
	}
	block, _ := pem.Decode([]byte(id.X509Certificate))
	if block == nil {
		t.Fatalf("register: certificate %q is not PEM", id.X509Certificate)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != domain+".encoder" || string(id.InstanceId) != string(pod.UID) {
		t.Errorf("register: certificate for %q, instance %q; want %s.encoder, %s", cert.Subject.CommonName, id.InstanceId, domain, pod.UID)
	}
	tr, err := fake.Transport([]byte(id.X509Certificate), keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.CloseIdleConnections)
	csr, _ := sidecarCSR(t, pod, domain, "encoder")
	if _, err := zts.NewClient(fake.URL(), tr).PostInstanceRefreshInformation(providerName, zts.DomainName(domain), "encoder",
		zts.PathElement(pod.UID), &zts.InstanceRefreshInformation{Csr: csr, AttestationData: token}); err != nil {
		t.Errorf("PostInstanceRefreshInformation for the Pod: %v\nprovider log:\n%s", err, logs)
	}

	// Refused: the provider's reason reaches the client in ZTS's 403.
	_, _, err = register("other.team", "encoder", token, pod)
	wantRefused(t, "register for another domain", err, "unable to verify attestation data", `namespace "`+ns+`" maps to domain "`+domain+`", not "other.team"`)
	_, _, err = register(domain, "encoder", token, other)
	wantRefused(t, "register with another Pod's instance id and IP", err, "instance id: ")
	_, _, err = register(domain, "encoder", mintToken(t, pod, "zts", false), pod)
	wantRefused(t, "register with a token for another audience", err, provider.MsgTokenRefused)

	if got := fake.Calls(ztsfake.EndpointInstanceRegister); got != 4 {
		t.Errorf("fake ZTS saw %d registers, want 4", got)
	}
}
