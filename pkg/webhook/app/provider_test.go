package app_test

import (
	"bytes"
	"crypto/tls"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
)

// TestProviderServesWebhookCertificate: without --provider-cert-dir the
// provider callback serves the webhook's certificate from --cert-dir.
func TestProviderServesWebhookCertificate(t *testing.T) {
	want, err := os.ReadFile(filepath.Join(controlPlane.CertDir, "tls.crt"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(want)
	if block == nil {
		t.Fatalf("%s/tls.crt is not PEM", controlPlane.CertDir)
	}
	// The test checks which certificate is served, not who signed it.
	conn, err := tls.Dial("tcp", providerAddr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("TLS to the provider callback at %s: %v", providerAddr, err)
	}
	defer conn.Close()
	got := conn.ConnectionState().PeerCertificates[0].Raw
	if !bytes.Equal(got, block.Bytes) {
		t.Errorf("the provider callback serves a certificate other than --cert-dir's tls.crt")
	}
}
