package ztsfake

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// parseCSR decodes a PEM certificate signing request and checks its
// signature.
func parseCSR(s string) (*x509.CertificateRequest, error) {
	if s == "" {
		return nil, errors.New("missing")
	}
	block, _ := pem.Decode([]byte(s))
	if block == nil {
		return nil, errors.New("not PEM")
	}
	if block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST" {
		return nil, fmt.Errorf("PEM block %q, want CERTIFICATE REQUEST", block.Type)
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, err
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("signature: %w", err)
	}
	return csr, nil
}

// checkServiceCSR checks a service certificate CSR as ZTS does: CN
// "<domain>.<service>"; SAN DNS names are the service name
// "<service>.<domain with '.' replaced by '-'>.<suffix>", the instance id
// name, or the request's hostname and CNAMEs; a SPIFFE URI names the
// service. With needID it returns the instance id from
// "<id>.instanceid.athenz.<suffix>" or "athenz://instanceid/<provider>/<id>".
func checkServiceCSR(csr *x509.CertificateRequest, provider, domain, service, hostname string, cnames []string, needID bool) (string, error) {
	if cn := strings.ToLower(csr.Subject.CommonName); cn != domain+"."+service {
		return "", fmt.Errorf("common name %q does not match %s.%s", csr.Subject.CommonName, domain, service)
	}
	servicePrefix := service + "." + strings.ReplaceAll(domain, ".", "-") + "."
	for _, name := range csr.DNSNames {
		n := strings.ToLower(name)
		switch {
		case strings.Contains(n, ".instanceid.athenz."):
		case strings.HasPrefix(n, servicePrefix) && len(n) > len(servicePrefix):
		case hostname != "" && n == strings.ToLower(hostname):
		case containsFold(cnames, n):
		default:
			return "", fmt.Errorf("SAN DNS %q is not allowed: want %s<dns suffix>, <id>.instanceid.athenz.<dns suffix>, or the request's hostname", name, servicePrefix)
		}
	}
	for _, u := range csr.URIs {
		if err := checkServiceSPIFFE(u, domain, service); err != nil {
			return "", err
		}
	}
	if !needID {
		return "", nil
	}
	id, err := instanceID(csr.DNSNames, csr.URIs, provider)
	if err != nil {
		return "", err
	}
	if id == "" {
		return "", errors.New("no instance id: want a SAN DNS <id>.instanceid.athenz.<dns suffix> or URI athenz://instanceid/<provider>/<id>")
	}
	if !isPathElement(id) {
		return "", fmt.Errorf("instance id %q is not a valid path element", id)
	}
	return id, nil
}

// checkServiceSPIFFE checks that a spiffe URI names domain.service:
// spiffe://<domain>/sa/<service> or spiffe://<trust domain>/ns/<ns>/sa/<domain>.<service>.
func checkServiceSPIFFE(u *url.URL, domain, service string) error {
	if u.Scheme != "spiffe" {
		return nil
	}
	parts := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
	switch {
	case len(parts) == 2 && parts[0] == "sa" && strings.EqualFold(u.Host, domain) && strings.EqualFold(parts[1], service):
		return nil
	case len(parts) == 4 && parts[0] == "ns" && parts[2] == "sa" && strings.EqualFold(parts[3], domain+"."+service):
		return nil
	}
	return fmt.Errorf("SAN URI %q does not name %s.%s: want spiffe://%s/sa/%s or spiffe://<trust domain>/ns/<namespace>/sa/%s.%s",
		u.String(), domain, service, domain, service, domain, service)
}

// instanceID returns the instance id named in SANs, "" if none; two
// different ids are an error.
func instanceID(dnsNames []string, uris []*url.URL, provider string) (string, error) {
	var found []string
	for _, name := range dnsNames {
		if id, _, ok := strings.Cut(name, ".instanceid.athenz."); ok && id != "" {
			found = append(found, id)
		}
	}
	for _, u := range uris {
		if u.Scheme != "athenz" || u.Host != "instanceid" {
			continue
		}
		p, id, ok := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
		if ok && id != "" && (provider == "" || strings.EqualFold(p, provider)) {
			found = append(found, id)
		}
	}
	for _, id := range found[min(1, len(found)):] {
		if id != found[0] {
			return "", fmt.Errorf("SANs name two instance ids, %q and %q", found[0], id)
		}
	}
	if len(found) == 0 {
		return "", nil
	}
	return found[0], nil
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// isPathElement reports whether s is a non-empty ZTS PathElement
// ([a-zA-Z0-9-._~=+@$,:]), the syntax of an instance id.
func isPathElement(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.ContainsRune("-._~=+@$,:", c):
		default:
			return false
		}
	}
	return true
}
