package ztsfake_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/AthenZ/athenz/clients/go/zts"

	"github.com/athenz-injector/athenz-injector/pkg/tokens/ztsfake"
)

// providerCall is one request a provider service received.
type providerCall struct {
	method, path, contentType string
	body                      map[string]any
}

// fakeProvider is an HTTP provider service that records its calls and
// answers with answer.
type fakeProvider struct {
	mu     sync.Mutex
	calls  []providerCall
	answer func(w http.ResponseWriter, body []byte)
}

func (p *fakeProvider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	var body map[string]any
	_ = json.Unmarshal(raw, &body)
	p.mu.Lock()
	p.calls = append(p.calls, providerCall{r.Method, r.URL.Path, r.Header.Get("Content-Type"), body})
	answer := p.answer
	p.mu.Unlock()
	answer(w, raw)
}

func (p *fakeProvider) last(t *testing.T) providerCall {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.calls) == 0 {
		t.Fatal("the provider was not called")
	}
	return p.calls[len(p.calls)-1]
}

func (p *fakeProvider) setAnswer(a func(w http.ResponseWriter, body []byte)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.answer = a
}

// confirmWith answers 200 with the confirmation and extra attributes.
func confirmWith(extra map[string]string) func(w http.ResponseWriter, body []byte) {
	return func(w http.ResponseWriter, body []byte) {
		var c map[string]any
		_ = json.Unmarshal(body, &c)
		attrs, _ := c["attributes"].(map[string]any)
		if attrs == nil {
			attrs = map[string]any{}
		}
		for k, v := range extra {
			attrs[k] = v
		}
		c["attributes"] = attrs
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(c)
	}
}

func TestHTTPProvider(t *testing.T) {
	p := &fakeProvider{answer: confirmWith(map[string]string{"certExpiryTime": "10"})}
	ps := httptest.NewTLSServer(p)
	t.Cleanup(ps.Close)
	s := ztsfake.NewTest(t, ztsfake.Options{Attest: ztsfake.HTTPProvider(ps.URL+"/", ps.Client())})
	anon := anonClient(t, s)

	csr, keyPEM := podCSR(t)
	register := func() (*zts.InstanceIdentity, error) {
		id, _, err := anon.PostInstanceRegisterInformation(&zts.InstanceRegisterInformation{
			Provider: "k8s.provider", Domain: "client", Service: "api", AttestationData: "sa-token", Csr: csr,
		})
		return id, err
	}
	id, err := register()
	if err != nil {
		t.Fatalf("PostInstanceRegisterInformation: %v", err)
	}
	call := p.last(t)
	attrs, _ := call.body["attributes"].(map[string]any)
	if call.method != http.MethodPost || call.path != "/instance" || call.contentType != "application/json" ||
		call.body["provider"] != "k8s.provider" || call.body["domain"] != "client" || call.body["service"] != "api" ||
		call.body["attestationData"] != "sa-token" || attrs["instanceId"] != "pod-1" || attrs["sanIP"] != "10.0.0.7" ||
		attrs["sanDNS"] != "api.client.k8s.example,pod-1.instanceid.athenz.k8s.example" ||
		attrs["sanURI"] != "spiffe://client/sa/api" || attrs["clientIP"] != "127.0.0.1" {
		t.Errorf("register: the provider got %+v, want POST /instance with the InstanceConfirmation of client.api pod-1", call)
	}
	if _, ok := call.body["refresh"]; ok || len(call.body) != 5 {
		t.Errorf("register: the provider got fields %v, want provider, domain, service, attestationData, attributes", call.body)
	}
	cert := parseCert(t, s, id.X509Certificate, x509.ExtKeyUsageClientAuth)
	if life := time.Until(cert.NotAfter); life > 10*time.Minute {
		t.Errorf("register: certificate lives %v, want at most 10m (the provider's certExpiryTime)", life)
	}

	// Refresh goes to /refresh.
	refresh := certClient(t, s, []byte(id.X509Certificate), keyPEM)
	if _, err := refresh.PostInstanceRefreshInformation("k8s.provider", "client", "api", "pod-1",
		&zts.InstanceRefreshInformation{Csr: csr, AttestationData: "sa-token-2"}); err != nil {
		t.Fatalf("PostInstanceRefreshInformation: %v", err)
	}
	if call := p.last(t); call.path != "/refresh" || call.body["attestationData"] != "sa-token-2" {
		t.Errorf("refresh: the provider got %+v, want POST /refresh with the new attestation data", call)
	}

	// Anything but 200 refuses, with the provider's message.
	for _, tt := range []struct {
		name   string
		answer func(w http.ResponseWriter, body []byte)
		msg    string
	}{
		{"403 with a message", func(w http.ResponseWriter, _ []byte) {
			w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(w, `{"code":403,"message":"pod deleted: pod ns/web-0 is terminating"}`)
		}, "answered 403: pod deleted: pod ns/web-0 is terminating"},
		{"500 with text", func(w http.ResponseWriter, _ []byte) {
			http.Error(w, "database\ndown", http.StatusInternalServerError)
		}, "answered 500: database down"},
		{"201", func(w http.ResponseWriter, body []byte) {
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write(body)
		}, "answered 201"},
		{"200 without a confirmation", func(w http.ResponseWriter, _ []byte) {
			_, _ = io.WriteString(w, "yes")
		}, "answered 200 with no InstanceConfirmation"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p.setAnswer(tt.answer)
			_, err := register()
			wantResourceError(t, "PostInstanceRegisterInformation", err, http.StatusForbidden, tt.msg)
		})
	}

	t.Run("provider down", func(t *testing.T) {
		down := httptest.NewTLSServer(p)
		url := down.URL
		down.Close()
		s := ztsfake.NewTest(t, ztsfake.Options{Attest: ztsfake.HTTPProvider(url, nil)})
		_, _, err := anonClient(t, s).PostInstanceRegisterInformation(&zts.InstanceRegisterInformation{
			Provider: "k8s.provider", Domain: "client", Service: "api", AttestationData: "sa-token", Csr: csr,
		})
		wantResourceError(t, "PostInstanceRegisterInformation", err, http.StatusForbidden, "calling provider "+url+"/instance")
	})
}

func TestHTTPProviderClient(t *testing.T) {
	s := ztsfake.NewTest(t, ztsfake.Options{})
	pair := func(domain, service string) tls.Certificate {
		certPEM, keyPEM, err := s.IssueIdentity(domain, service)
		if err != nil {
			t.Fatal(err)
		}
		c, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// The provider serves a certificate for its service name (no
	// 127.0.0.1 in it) and requires a client certificate from the CA.
	ps := httptest.NewUnstartedServer(&fakeProvider{answer: confirmWith(nil)})
	ps.TLS = &tls.Config{
		Certificates: []tls.Certificate{pair("sys.auth", "k8s")},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    s.CAPool(),
		MinVersion:   tls.VersionTLS12,
	}
	ps.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	ps.StartTLS()
	t.Cleanup(ps.Close)
	ztsCert := pair("sys.auth", "zts")
	c := ztsfake.InstanceConfirmation{Provider: "sys.auth.k8s", Domain: "client", Service: "api", AttestationData: "t"}

	for _, tt := range []struct {
		name   string
		client *http.Client
		err    string
	}{
		{"as ZTS", ztsfake.HTTPProviderClient("sys.auth.k8s", s.CAPool(), ztsCert), ""},
		{"another provider name", ztsfake.HTTPProviderClient("sys.auth.other", s.CAPool(), ztsCert), `common name "sys.auth.k8s", not the provider service name "sys.auth.other"`},
		{"untrusted", ztsfake.HTTPProviderClient("sys.auth.k8s", x509.NewCertPool(), ztsCert), "provider certificate: "},
		{"no client certificate", ztsfake.HTTPProviderClient("sys.auth.k8s", s.CAPool()), "calling provider"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Cleanup(tt.client.CloseIdleConnections)
			_, err := ztsfake.HTTPProvider(ps.URL, tt.client)(t.Context(), c)
			switch {
			case tt.err == "" && err != nil:
				t.Errorf("HTTPProvider: %v, want a confirmation", err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Errorf("HTTPProvider: %v, want an error containing %q", err, tt.err)
			}
		})
	}
}
