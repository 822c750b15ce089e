package ztsfake

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// DefaultHTTPProviderTimeout is the timeout of the client HTTPProvider uses
// when given none: ZTS's default read timeout for provider calls
// (athenz.instance.provider.client.read_timeout, 30 s).
const DefaultHTTPProviderTimeout = 30 * time.Second

// maxProviderAnswer bounds what HTTPProvider reads of a provider's answer.
const maxProviderAnswer = 64 << 10

// HTTPProvider returns an Options.Attest function that asks an HTTP
// provider service, as ZTS's InstanceHttpProvider does: it POSTs the
// InstanceConfirmation as JSON to <baseURL>/instance for a register and to
// <baseURL>/refresh for a refresh (InstanceConfirmation.Refresh), and
// confirms only on a 200 answer, whose attributes it returns (the fake
// honours certExpiryTime and certRefresh among them). Any other answer
// refuses the instance with an error that carries the provider's message;
// the fake answers the client 403 with it.
//
// client is used for the calls. For an https provider it must trust the
// provider's certificate; HTTPProviderClient builds one that checks it as
// ZTS does. Default (nil): a client with DefaultHTTPProviderTimeout.
func HTTPProvider(baseURL string, client *http.Client) func(ctx context.Context, c InstanceConfirmation) (map[string]string, error) {
	base := strings.TrimRight(baseURL, "/")
	if client == nil {
		client = &http.Client{Timeout: DefaultHTTPProviderTimeout}
	}
	return func(ctx context.Context, c InstanceConfirmation) (map[string]string, error) {
		path := "/instance"
		if c.Refresh {
			path = "/refresh"
		}
		body, err := json.Marshal(c)
		if err != nil {
			return nil, fmt.Errorf("unable to verify attestation data: encoding the confirmation: %v", err)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+path, bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("unable to verify attestation data: provider endpoint %q: %v", base, err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("unable to verify attestation data: calling provider %s: %v", base+path, err)
		}
		defer resp.Body.Close()
		answer, err := io.ReadAll(io.LimitReader(resp.Body, maxProviderAnswer))
		if err != nil {
			return nil, fmt.Errorf("unable to verify attestation data: reading the answer of provider %s: %v", base+path, err)
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("unable to verify attestation data: provider %s answered %d: %s",
				base+path, resp.StatusCode, providerMessage(answer))
		}
		var confirmed InstanceConfirmation
		if err := json.Unmarshal(answer, &confirmed); err != nil {
			return nil, fmt.Errorf("unable to verify attestation data: provider %s answered 200 with no InstanceConfirmation: %v", base+path, err)
		}
		return confirmed.Attributes, nil
	}
}

// providerMessage is the message of a provider's {"code","message"} error,
// else its answer as text on one line, "N/A" when empty (as ZTS logs it).
func providerMessage(answer []byte) string {
	var e struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(answer, &e) == nil && e.Message != "" {
		return e.Message
	}
	text := strings.TrimSpace(strings.ReplaceAll(string(answer), "\n", " "))
	if text == "" {
		return "N/A"
	}
	return text
}

// HTTPProviderClient returns a client for HTTPProvider that checks the
// provider's certificate as ZTS does (ProviderHostnameVerifier): the chain
// must verify against roots, and the leaf's common name must be the
// provider service's name (e.g. "sys.auth.k8s"); the host name of the URL
// is not checked. clientCerts are presented when the provider asks for a
// client certificate (ZTS presents its own). Its timeout is
// DefaultHTTPProviderTimeout.
func HTTPProviderClient(provider string, roots *x509.CertPool, clientCerts ...tls.Certificate) *http.Client {
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: clientCerts,
		// The standard host name check is replaced by VerifyConnection,
		// which still verifies the chain.
		InsecureSkipVerify: true, //nolint:gosec // verified in VerifyConnection
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyProviderCert(cs, provider, roots)
		},
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = cfg
	tr.Proxy = nil
	return &http.Client{Transport: tr, Timeout: DefaultHTTPProviderTimeout}
}

func verifyProviderCert(cs tls.ConnectionState, provider string, roots *x509.CertPool) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("provider presented no certificate")
	}
	leaf := cs.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}); err != nil {
		return fmt.Errorf("provider certificate: %w", err)
	}
	if leaf.Subject.CommonName != provider {
		return fmt.Errorf("provider certificate has common name %q, not the provider service name %q (ZTS checks the common name, not the host name)",
			leaf.Subject.CommonName, provider)
	}
	return nil
}
