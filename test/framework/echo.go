package framework

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
)

// Echo is an HTTP upstream that answers every request with the request's
// headers as JSON and remembers them, to see what a proxy added and
// removed.
type Echo struct {
	*httptest.Server

	mu   sync.Mutex // guards last
	last http.Header
}

// StartEcho starts an Echo on 127.0.0.1. Close stops it.
func StartEcho() *Echo { return StartEchoOn(net.IPv4(127, 0, 0, 1)) }

// StartEchoOn starts an Echo on ip (HostIP, for a node's Pods).
func StartEchoOn(ip net.IP) *Echo {
	e := &Echo{}
	e.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.last = r.Header.Clone()
		e.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"method": r.Method, "path": r.URL.Path, "headers": r.Header})
	}))
	e.Listener.Close()
	l, err := net.Listen("tcp", net.JoinHostPort(ip.String(), "0"))
	if err != nil {
		panic(fmt.Sprintf("framework: listening on %s: %v", ip, err))
	}
	e.Listener = l
	e.Start()
	return e
}

// LastHeaders returns the headers of the last request, nil before one.
func (e *Echo) LastHeaders() http.Header {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.last.Clone()
}

// IdentityServer is an HTTPS server that requires a client certificate
// chaining to a CA (ZTS's), as an Athenz-protected service does, and
// answers with what the certificate says and the Athenz role token it
// got: an app's mTLS handshake with the Pod's identity, or the sidecar's
// proxy calling it over TLS for the app, seen from the other side.
type IdentityServer struct {
	*httptest.Server
}

// ClientIdentity is what IdentityServer answers.
type ClientIdentity struct {
	CommonName string   `json:"commonName"`
	Serial     string   `json:"serial"` // hexadecimal
	DNSNames   []string `json:"dnsNames"`
	URIs       []string `json:"uris"`
	IPs        []string `json:"ips"`
	// RoleAuth is the request's Athenz-Role-Auth header.
	RoleAuth string `json:"roleAuth,omitempty"`
	// Proto is the request's protocol, HTTP/1.1 or HTTP/2.0.
	Proto string `json:"proto"`
}

// StartIdentityServer starts an IdentityServer on ip with a serving
// certificate from ca, trusting clients whose certificate chains to
// clientCAs.
func StartIdentityServer(ip net.IP, ca *TestCA, clientCAs *x509.CertPool) (*IdentityServer, error) {
	kp, err := ca.Issue(CertRequest{CommonName: ip.String(), IPs: []net.IP{ip}, Server: true})
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(kp.CertPEM, kp.KeyPEM)
	if err != nil {
		return nil, err
	}
	return StartIdentityServerWithCert(ip, cert, clientCAs)
}

// StartIdentityServerWithCert starts an IdentityServer on ip serving cert
// (e.g. one of ZTS's CA, as an Athenz service serving with its own
// identity), trusting clients whose certificate chains to clientCAs. It
// offers HTTP/2.
func StartIdentityServerWithCert(ip net.IP, cert tls.Certificate, clientCAs *x509.CertPool) (*IdentityServer, error) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaf := r.TLS.PeerCertificates[0]
		id := ClientIdentity{CommonName: leaf.Subject.CommonName, Serial: leaf.SerialNumber.Text(16), DNSNames: leaf.DNSNames,
			RoleAuth: r.Header.Get("Athenz-Role-Auth"), Proto: r.Proto}
		for _, u := range leaf.URIs {
			id.URIs = append(id.URIs, u.String())
		}
		for _, a := range leaf.IPAddresses {
			id.IPs = append(id.IPs, a.String())
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(id)
	}))
	srv.Listener.Close()
	l, err := net.Listen("tcp", net.JoinHostPort(ip.String(), "0"))
	if err != nil {
		return nil, err
	}
	srv.Listener = l
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    clientCAs,
		MinVersion:   tls.VersionTLS12,
	}
	srv.StartTLS()
	return &IdentityServer{Server: srv}, nil
}
