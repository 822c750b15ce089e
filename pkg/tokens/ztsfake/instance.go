package ztsfake

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/athenz-injector/athenz-injector/pkg/tokens"
)

// InstanceConfirmation is the object ZTS sends to a provider service to
// confirm an instance (POST <provider>/instance on register, POST
// <provider>/refresh on refresh). Options.Attest receives it.
type InstanceConfirmation struct {
	Provider        string `json:"provider"`
	Domain          string `json:"domain"`
	Service         string `json:"service"`
	AttestationData string `json:"attestationData,omitempty"`
	// Attributes are what ZTS tells the provider about the request:
	// sanDNS, sanIP, sanURI (comma-separated), clientIP, hostname,
	// instanceId, csrPublicKey (PEM) and certSubjectDn. Empty ones are left
	// out.
	Attributes map[string]string `json:"attributes,omitempty"`
	// Refresh is true for a refresh, false for a register. It is not part
	// of the JSON object; ZTS tells the two apart by the provider's path.
	Refresh bool `json:"-"`
}

// Provider attributes the fake honors, as ZTS does.
const (
	attrCertExpiryTime = "certExpiryTime" // minutes; caps the certificate lifetime
	attrCertRefresh    = "certRefresh"    // "false": refresh is refused
)

type instanceRef struct{ provider, domain, service, id string }

// instanceRecord is ZTS's certificate record of a registered instance:
// refresh must present the current or the previous certificate.
type instanceRecord struct {
	serial, prevSerial *big.Int
	refreshDenied      bool
}

// instanceIdentity is ZTS's InstanceIdentity.
type instanceIdentity struct {
	Provider              string            `json:"provider"`
	Name                  string            `json:"name"`
	InstanceID            string            `json:"instanceId"`
	X509Certificate       string            `json:"x509Certificate,omitempty"`
	X509CertificateSigner string            `json:"x509CertificateSigner,omitempty"`
	ServiceToken          string            `json:"serviceToken,omitempty"`
	Attributes            map[string]string `json:"attributes,omitempty"`
}

// instanceRequest holds the fields of InstanceRegisterInformation and
// InstanceRefreshInformation that the fake uses.
type instanceRequest struct {
	Provider        string   `json:"provider"`
	Domain          string   `json:"domain"`
	Service         string   `json:"service"`
	AttestationData string   `json:"attestationData"`
	CSR             string   `json:"csr"`
	Token           *bool    `json:"token"`
	ExpiryTime      *int32   `json:"expiryTime"` // minutes
	Hostname        string   `json:"hostname"`
	HostCnames      []string `json:"hostCnames"`
}

// registerKey is "<domain>.<service>" from the register body.
func registerKey(_ *http.Request, body []byte) string {
	var req instanceRequest
	if json.Unmarshal(body, &req) != nil || req.Domain == "" || req.Service == "" {
		return ""
	}
	return req.Domain + "." + req.Service
}

// pathServiceKey is "<domain>.<service>" from the path.
func pathServiceKey(r *http.Request, _ []byte) string {
	return r.PathValue("domain") + "." + r.PathValue("service")
}

// handleRegister serves POST /instance.
func (s *Server) handleRegister(w http.ResponseWriter, r *http.Request, body []byte) error {
	var req instanceRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return badRequest("request body is not an InstanceRegisterInformation: %v", err)
	}
	provider, domain, service := strings.ToLower(req.Provider), strings.ToLower(req.Domain), strings.ToLower(req.Service)
	if err := validateService(provider, domain, service); err != nil {
		return err
	}
	csr, err := parseCSR(req.CSR)
	if err != nil {
		return badRequest("csr: %v", err)
	}
	s.knobs.setLastCSR(EndpointInstanceRegister, csr)
	id, err := checkServiceCSR(csr, provider, domain, service, req.Hostname, req.HostCnames, true)
	if err != nil {
		return badRequest("csr: %v", err)
	}
	attrs, err := s.attest(r.Context(), s.confirmation(r, provider, domain, service, id, &req, csr, false))
	if err != nil {
		return err
	}
	cert, certPEM, err := s.ca.signCSR(csr, s.now(), s.certLifetime(req.ExpiryTime, attrs),
		x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.instances[instanceRef{provider, domain, service, id}] = &instanceRecord{
		serial:        cert.SerialNumber,
		refreshDenied: strings.EqualFold(attrs[attrCertRefresh], "false"),
	}
	s.mu.Unlock()
	identity, err := s.identity(r, provider, domain, service, id, certPEM, req.Token)
	if err != nil {
		return err
	}
	w.Header().Set("Location", fmt.Sprintf("%s/instance/%s/%s/%s/%s", apiPrefix, provider, domain, service, id))
	writeJSON(w, http.StatusCreated, identity)
	return nil
}

// handleRefresh serves POST /instance/{provider}/{domain}/{service}/{instanceId}.
func (s *Server) handleRefresh(w http.ResponseWriter, r *http.Request, body []byte) error {
	const caller = "postInstanceRefreshInformation"
	p, err := s.requirePrincipal(r)
	if err != nil {
		return err
	}
	provider, domain, service, id, err := instancePath(r)
	if err != nil {
		return err
	}
	if p.cert == nil {
		return forbidden("%s: instance refresh requires authentication with the instance's certificate (mTLS)", caller)
	}
	if p.name != domain+"."+service {
		return forbidden("%s: principal %s does not match %s.%s", caller, p.name, domain, service)
	}
	var req instanceRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return badRequest("request body is not an InstanceRefreshInformation: %v", err)
	}
	csr, err := parseCSR(req.CSR)
	if err != nil {
		return badRequest("csr: %v", err)
	}
	s.knobs.setLastCSR(EndpointInstanceRefresh, csr)
	csrID, err := checkServiceCSR(csr, provider, domain, service, req.Hostname, req.HostCnames, true)
	if err != nil {
		return badRequest("csr: %v", err)
	}
	if csrID != id {
		return badRequest("csr: instance id %q does not match %q in the path", csrID, id)
	}
	if certID, _ := instanceID(p.cert.DNSNames, p.cert.URIs, provider); certID != "" && certID != id {
		return forbidden("%s: the client certificate is for instance %q, not %q", caller, certID, id)
	}
	ref := instanceRef{provider, domain, service, id}
	if err := s.checkRecord(caller, ref, p.cert.SerialNumber); err != nil {
		return err
	}
	attrs, err := s.attest(r.Context(), s.confirmation(r, provider, domain, service, id, &req, csr, true))
	if err != nil {
		return err
	}
	cert, certPEM, err := s.ca.signCSR(csr, s.now(), s.certLifetime(req.ExpiryTime, attrs),
		x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if rec := s.instances[ref]; rec != nil {
		rec.prevSerial, rec.serial = rec.serial, cert.SerialNumber
		if strings.EqualFold(attrs[attrCertRefresh], "false") {
			rec.refreshDenied = true
		}
	}
	s.mu.Unlock()
	identity, err := s.identity(r, provider, domain, service, id, certPEM, req.Token)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, identity)
	return nil
}

// checkRecord finds the instance's certificate record and checks that the
// presented certificate is its current or previous one.
func (s *Server) checkRecord(caller string, ref instanceRef, serial *big.Int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.instances[ref]
	switch {
	case rec == nil:
		return forbidden("%s: unable to find certificate record for instance %s of %s.%s (provider %s): register it first",
			caller, ref.id, ref.domain, ref.service, ref.provider)
	case rec.refreshDenied:
		return forbidden("%s: the provider does not allow refresh of instance %s (certRefresh=false): register again",
			caller, ref.id)
	case serial.Cmp(rec.serial) != 0 && (rec.prevSerial == nil || serial.Cmp(rec.prevSerial) != 0):
		return forbidden("%s: certificate serial %s is not the current or previous certificate of instance %s",
			caller, serial.Text(16), ref.id)
	}
	return nil
}

// handleDelete serves DELETE /instance/{provider}/{domain}/{service}/{instanceId}.
func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request, _ []byte) error {
	const caller = "deleteInstanceIdentity"
	p, err := s.requirePrincipal(r)
	if err != nil {
		return err
	}
	provider, domain, service, id, err := instancePath(r)
	if err != nil {
		return err
	}
	if p.name != domain+"."+service && p.name != provider {
		return forbidden("%s: principal %s may not delete instances of %s.%s", caller, p.name, domain, service)
	}
	ref := instanceRef{provider, domain, service, id}
	s.mu.Lock()
	_, ok := s.instances[ref]
	delete(s.instances, ref)
	s.mu.Unlock()
	if !ok {
		return notFound("%s: unknown instance %s of %s.%s (provider %s)", caller, id, domain, service, provider)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// handleKeyRefresh serves POST /instance/{domain}/{service}/refresh: a
// certificate for a service that owns a registered key, authenticated by
// an N-token or a certificate of that service.
func (s *Server) handleKeyRefresh(w http.ResponseWriter, r *http.Request, body []byte) error {
	const caller = "postInstanceRefreshRequest"
	p, err := s.requirePrincipal(r)
	if err != nil {
		return err
	}
	domain, service := strings.ToLower(r.PathValue("domain")), strings.ToLower(r.PathValue("service"))
	if err := tokens.ValidateDomain(domain); err != nil {
		return badRequest("domain: %v", err)
	}
	if err := tokens.ValidateSimpleName(service); err != nil {
		return badRequest("service: %v", err)
	}
	if p.name != domain+"."+service {
		return forbidden("%s: principal %s may not refresh the certificate of %s.%s", caller, p.name, domain, service)
	}
	var req struct {
		CSR        string `json:"csr"`
		ExpiryTime *int32 `json:"expiryTime"` // minutes
		KeyID      string `json:"keyId"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return badRequest("request body is not an InstanceRefreshRequest: %v", err)
	}
	csr, err := parseCSR(req.CSR)
	if err != nil {
		return badRequest("csr: %v", err)
	}
	s.knobs.setLastCSR(EndpointKeyRefresh, csr)
	if _, err := checkServiceCSR(csr, "", domain, service, "", nil, false); err != nil {
		return badRequest("csr: %v", err)
	}
	// As ZTS: authenticated by an N-token, the key is the N-token's (the
	// request's keyId is ignored) and this is a first certificate;
	// authenticated by a certificate of the service, it is a refresh of
	// that certificate, with the request's keyId.
	refresh := p.cert != nil
	keyID := req.KeyID
	if !refresh {
		keyID = p.ntoken.keyVersion
		if p.ntoken.keyService != "" {
			// An N-token signed by ZTS (z=zts) names ZTS's key, which is
			// not one of the service's.
			keyID = ""
		}
	}
	pub, ok := s.lookupKey(domain, service, keyID)
	if keyID == "" || !ok {
		return badRequest("%s: Unable to retrieve public key for %s.%s with key id: %q", caller, domain, service, keyID)
	}
	if !samePublicKey(pub.key, csr.PublicKey) {
		return badRequest("%s: Invalid CSR - public key mismatch with key %q registered for %s.%s", caller, keyID, domain, service)
	}
	if refresh {
		if err := s.checkCertRefresh(caller, p.cert, csr, clientIP(r)); err != nil {
			return err
		}
	}
	_, certPEM, err := s.ca.signCSR(csr, s.now(), s.certLifetime(req.ExpiryTime, nil),
		x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{
		"name":         domain + "." + service,
		"certificate":  string(certPEM),
		"caCertBundle": string(s.ca.certPEM),
	})
	return nil
}

// checkCertRefresh makes ZTS's checks of a key-owner refresh
// authenticated by a certificate (validateServiceX509RefreshRequest): the
// CSR has the certificate's DNS names and public key, and the caller's IP
// is allowed to refresh (RestrictCertRefresh).
func (s *Server) checkCertRefresh(caller string, cert *x509.Certificate, csr *x509.CertificateRequest, ip string) error {
	if !sameNames(cert.DNSNames, csr.DNSNames) {
		return badRequest("%s: Request validation failed: DNS_NAME_MISMATCH", caller)
	}
	if !samePublicKey(cert.PublicKey, csr.PublicKey) {
		return badRequest("%s: Request validation failed: PUBLIC_KEY_MISMATCH", caller)
	}
	if !s.certRefreshAllowed(ip) {
		return forbidden("%s: IP not allowed for refresh: %s", caller, ip)
	}
	return nil
}

// RestrictCertRefresh limits key-owner certificate refresh
// (POST /instance/{domain}/{service}/refresh authenticated by a
// certificate) to callers from the given address ranges, as ZTS's
// athenz.zts.cert_refresh_ip_fname does; others get 403 "IP not allowed
// for refresh". A first certificate, asked for with an N-token, is not
// restricted, as in ZTS. No prefixes (the default) allows every caller.
// Tests run on loopback, so any prefix that does not hold 127.0.0.1
// refuses them.
func (s *Server) RestrictCertRefresh(allowed ...netip.Prefix) {
	if len(allowed) == 0 {
		s.refreshIPs.Store(nil)
		return
	}
	s.refreshIPs.Store(&allowed)
}

func (s *Server) certRefreshAllowed(ip string) bool {
	allowed := s.refreshIPs.Load()
	if allowed == nil {
		return true
	}
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	addr = addr.Unmap()
	for _, p := range *allowed {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// sameNames reports whether a and b hold the same names, ignoring order
// (ZTS compares the sets, case kept).
func sameNames(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, n := range a {
		if !slices.Contains(b, n) {
			return false
		}
	}
	return true
}

// identity builds the InstanceIdentity answer, with an N-token if asked.
func (s *Server) identity(r *http.Request, provider, domain, service, id string, certPEM []byte, token *bool) (*instanceIdentity, error) {
	out := &instanceIdentity{
		Provider:              provider,
		Name:                  domain + "." + service,
		InstanceID:            id,
		X509Certificate:       string(certPEM),
		X509CertificateSigner: string(s.ca.certPEM),
	}
	if token != nil && *token {
		// ZTS gives this N-token its own lifetime
		// (athenz.zts.instance_token_timeout), not the certificate's: a
		// client renews it with another refresh or register.
		tok, err := s.signNToken(domain, service, clientIP(r), s.opts.NTokenLifetime)
		if err != nil {
			return nil, err
		}
		out.ServiceToken = tok
	}
	return out, nil
}

// confirmation builds what ZTS would send to the provider.
func (s *Server) confirmation(r *http.Request, provider, domain, service, id string, req *instanceRequest, csr *x509.CertificateRequest, refresh bool) InstanceConfirmation {
	ips := make([]string, 0, len(csr.IPAddresses))
	for _, ip := range csr.IPAddresses {
		ips = append(ips, ip.String())
	}
	uris := make([]string, 0, len(csr.URIs))
	for _, u := range csr.URIs {
		uris = append(uris, u.String())
	}
	attrs := map[string]string{
		"sanDNS":        strings.Join(csr.DNSNames, ","),
		"sanIP":         strings.Join(ips, ","),
		"sanURI":        strings.Join(uris, ","),
		"clientIP":      clientIP(r),
		"hostname":      req.Hostname,
		"instanceId":    id,
		"certSubjectDn": csr.Subject.String(),
	}
	if der, err := x509.MarshalPKIXPublicKey(csr.PublicKey); err == nil {
		attrs["csrPublicKey"] = string(pemEncode("PUBLIC KEY", der))
	}
	for k, v := range attrs {
		if v == "" {
			delete(attrs, k)
		}
	}
	return InstanceConfirmation{
		Provider:        provider,
		Domain:          domain,
		Service:         service,
		AttestationData: req.AttestationData,
		Attributes:      attrs,
		Refresh:         refresh,
	}
}

// attest asks the K8SProvider emulation or Options.Attest, or applies the
// default: a register needs attestation data, a refresh (already
// authenticated by its certificate) does not. A refusal is a 403 with the
// refusal's text.
func (s *Server) attest(ctx context.Context, c InstanceConfirmation) (map[string]string, error) {
	if s.isK8SProvider(c.Provider) {
		return s.attestK8S(c)
	}
	if s.opts.Attest != nil {
		attrs, err := s.opts.Attest(ctx, c)
		if err != nil {
			return nil, forbidden("%s", err.Error())
		}
		return attrs, nil
	}
	if !c.Refresh && c.AttestationData == "" {
		return nil, forbidden("unable to validate instance: attestationData is empty")
	}
	return nil, nil
}

// certLifetime is Options.CertLifetime, shortened by the request's
// expiryTime and the provider's certExpiryTime (both minutes).
func (s *Server) certLifetime(expiryMinutes *int32, attrs map[string]string) time.Duration {
	d := s.opts.CertLifetime
	if expiryMinutes != nil && *expiryMinutes > 0 {
		d = min(d, time.Duration(*expiryMinutes)*time.Minute)
	}
	if n, err := strconv.Atoi(attrs[attrCertExpiryTime]); err == nil && n > 0 {
		d = min(d, time.Duration(n)*time.Minute)
	}
	return d
}

// instancePath reads and validates {provider}/{domain}/{service}/{instanceId}.
func instancePath(r *http.Request) (provider, domain, service, id string, err error) {
	provider = strings.ToLower(r.PathValue("provider"))
	domain = strings.ToLower(r.PathValue("domain"))
	service = strings.ToLower(r.PathValue("service"))
	id = r.PathValue("instanceId")
	if err := validateService(provider, domain, service); err != nil {
		return "", "", "", "", err
	}
	if !isPathElement(id) {
		return "", "", "", "", badRequest("instanceId: %q is not a valid path element", id)
	}
	return provider, domain, service, id, nil
}

func validateService(provider, domain, service string) error {
	if err := tokens.ValidateCompoundName(provider); err != nil {
		return badRequest("provider: %v", err)
	}
	if err := tokens.ValidateDomain(domain); err != nil {
		return badRequest("domain: %v", err)
	}
	if err := tokens.ValidateSimpleName(service); err != nil {
		return badRequest("service: %v", err)
	}
	return nil
}
