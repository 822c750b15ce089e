package ztsfake

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/athenz-injector/athenz-injector/pkg/tokens"
)

// roleCertKey is the CSR's common name, "<domain>:role.<role>".
func roleCertKey(_ *http.Request, body []byte) string {
	var req struct {
		CSR string `json:"csr"`
	}
	if json.Unmarshal(body, &req) != nil {
		return ""
	}
	csr, err := parseCSR(req.CSR)
	if err != nil {
		return ""
	}
	return csr.Subject.CommonName
}

// handleRoleCert serves POST /rolecert: body {"csr","expiryTime"
// (minutes, 0 = default),"proxyForPrincipal"?}, answer {"x509Certificate"}.
func (s *Server) handleRoleCert(w http.ResponseWriter, r *http.Request, body []byte) error {
	const caller = "postRoleCertificateRequestExt"
	p, err := s.requirePrincipal(r)
	if err != nil {
		return err
	}
	var req struct {
		CSR               string `json:"csr"`
		ExpiryTime        int64  `json:"expiryTime"`
		ProxyForPrincipal string `json:"proxyForPrincipal"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return badRequest("request body is not a RoleCertificateRequest: %v", err)
	}
	csr, err := parseCSR(req.CSR)
	if err != nil {
		return badRequest("csr: %v", err)
	}
	s.knobs.setLastCSR(EndpointRoleCert, csr)
	domain, role, ok := strings.Cut(strings.ToLower(csr.Subject.CommonName), ":role.")
	if !ok {
		return badRequest("csr: common name %q is not <domain>:role.<role>", csr.Subject.CommonName)
	}
	if err := tokens.ValidateDomain(domain); err != nil {
		return badRequest("csr: common name domain: %v", err)
	}
	if err := tokens.ValidateCompoundName(role); err != nil {
		return badRequest("csr: common name role: %v", err)
	}
	principalName := p.name
	if proxy := strings.ToLower(req.ProxyForPrincipal); proxy != "" {
		if err := tokens.ValidateCompoundName(proxy); err != nil {
			return badRequest("proxyForPrincipal: %v", err)
		}
		if !s.isProxyUser(p.name) {
			return forbidden("%s: Principal: %s not authorized for proxy role certificate request", caller, p.name)
		}
		principalName = proxy
	}
	if err := checkRoleCSR(csr, domain, role, principalName); err != nil {
		return badRequest("csr: %v", err)
	}
	if !s.domainExists(domain) {
		return notFound("%s: No such domain: %s", caller, domain)
	}
	if len(s.rolesFor(domain, principalName, []string{role})) == 0 {
		return forbidden("%s", tokenErrorMessage(caller, principalName, domain, []string{role}))
	}
	lifetime := s.opts.CertLifetime
	if req.ExpiryTime > 0 {
		lifetime = min(lifetime, time.Duration(req.ExpiryTime)*time.Minute)
	}
	_, certPEM, err := s.ca.signCSR(csr, s.now(), lifetime, x509.ExtKeyUsageClientAuth)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"x509Certificate": string(certPEM)})
	return nil
}

// checkRoleCSR checks a role certificate CSR's SANs: a SPIFFE URI names the
// role (spiffe://<domain>/ra/<role> or spiffe://<trust domain>/ns/<domain>/ra/<role>),
// and a principal given as an email "<principal>@<suffix>" or a URI
// "athenz://principal/<principal>" is the caller.
func checkRoleCSR(csr *x509.CertificateRequest, domain, role, principal string) error {
	for _, u := range csr.URIs {
		switch u.Scheme {
		case "spiffe":
			if !spiffeNamesRole(u, domain, role) {
				return fmt.Errorf("SAN URI %q does not name role %s:role.%s: want spiffe://%s/ra/%s or spiffe://<trust domain>/ns/%s/ra/%s",
					u.String(), domain, role, domain, role, domain, role)
			}
		case "athenz":
			if u.Host == "principal" && !strings.EqualFold(strings.TrimPrefix(u.Path, "/"), principal) {
				return fmt.Errorf("SAN URI %q does not name the caller %s", u.String(), principal)
			}
		}
	}
	for _, e := range csr.EmailAddresses {
		if name, _, _ := strings.Cut(e, "@"); !strings.EqualFold(name, principal) {
			return fmt.Errorf("SAN email %q does not name the caller %s", e, principal)
		}
	}
	return nil
}

func spiffeNamesRole(u *url.URL, domain, role string) bool {
	parts := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
	switch {
	case len(parts) == 2 && parts[0] == "ra":
		return strings.EqualFold(u.Host, domain) && strings.EqualFold(parts[1], role)
	case len(parts) == 4 && parts[0] == "ns" && parts[2] == "ra":
		return strings.EqualFold(parts[1], domain) && strings.EqualFold(parts[3], role)
	}
	return false
}
