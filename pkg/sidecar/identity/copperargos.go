package identity

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/AthenZ/athenz/clients/go/zts"

	"github.com/athenz-injector/athenz-injector/pkg/tokens"
)

// reregisterHint ends the error of a refused refresh.
const reregisterHint = "if the provider refuses refresh (ZTS's built-in Kubernetes provider does), set ATHENZ_CERT_RENEWAL=reregister"

// serviceCSR is the CSR of the identity certificate: CN <domain>.<service>;
// SAN DNS <service>.<domain with '.' as '-'>.<suffix> and, for an
// instance, <id>.instanceid.athenz.<suffix>; SAN URI the service's SPIFFE
// URI; SAN IP the Pod IP.
func (m *Manager) serviceCSR(key crypto.Signer, instanceID string, withIP bool) (string, error) {
	o := m.opts
	spec := csrSpec{
		cn:   o.Domain + "." + o.Service,
		uris: []string{tokens.ServiceSPIFFEURI(o.TrustDomain, o.PodNamespace, o.Domain, o.Service)},
	}
	if o.DNSSuffix != "" {
		spec.dns = append(spec.dns, tokens.ServiceDNSName(o.Domain, o.Service, o.DNSSuffix))
		if instanceID != "" {
			spec.dns = append(spec.dns, tokens.InstanceIDDNSName(instanceID, o.DNSSuffix))
		}
	}
	if withIP && o.PodIP != "" {
		spec.ips = []net.IP{net.ParseIP(o.PodIP)}
	}
	return newCSR(key, spec)
}

// attestationData re-reads the service account token (kubelet rotates it)
// and formats it as Options.AttestationFormat says.
func (m *Manager) attestationData() (string, error) {
	tok, err := readSAToken(m.opts.SATokenFile)
	if err != nil {
		return "", err
	}
	if m.opts.AttestationFormat == AttestationIDTokenJSON {
		b, err := json.Marshal(struct {
			IdentityToken string `json:"identityToken"`
		}{tok})
		if err != nil {
			return "", fmt.Errorf("encoding attestation data: %w", err)
		}
		return string(b), nil
	}
	return tok, nil
}

// copperArgos gets a certificate from ZTS: a register when there is no
// certificate yet, when renewal is by registering again, or when the
// current certificate has expired (refresh needs it for mTLS); else a
// refresh over mTLS. The new certificate is installed.
func (m *Manager) copperArgos(ctx context.Context) (*credential, error) {
	o := m.opts
	cur := m.cur.Load()
	key, keyPEM := (crypto.Signer)(nil), []byte(nil)
	switch {
	case cur != nil && !o.RotateKey:
		key, keyPEM = cur.key, cur.keyPEM
	case cur == nil && m.startKey != nil:
		key, keyPEM = m.startKey.key, m.startKey.keyPEM
	default:
		var err error
		if key, keyPEM, err = generateKey(o.KeyType); err != nil {
			return nil, err
		}
	}
	csr, err := m.serviceCSR(key, o.PodUID, true)
	if err != nil {
		return nil, err
	}
	attestation, err := m.attestationData()
	if err != nil {
		return nil, err
	}
	var expiry *int32
	if o.CertExpiry > 0 {
		minutes := int32(o.CertExpiry.Minutes())
		expiry = &minutes
	}
	var token *bool
	if o.NToken {
		token = new(true)
	}
	var namespace zts.SimpleName
	if o.TrustDomain != "" {
		namespace = zts.SimpleName(o.PodNamespace)
	}

	zc, cancel := ztsClient(ctx, o.ZTSURL, m.own, o.Timeout)
	defer cancel()
	started := m.clock.Now()
	register := cur == nil || o.Renewal == RenewalReregister || !cur.validAt(started)
	var (
		ident      *zts.InstanceIdentity
		instanceID string
	)
	if register {
		var location string
		ident, location, err = zc.PostInstanceRegisterInformation(&zts.InstanceRegisterInformation{
			Provider:        zts.ServiceName(o.Provider),
			Domain:          zts.DomainName(o.Domain),
			Service:         zts.SimpleName(o.Service),
			AttestationData: attestation,
			Csr:             csr,
			Token:           token,
			ExpiryTime:      expiry,
			Namespace:       namespace,
			Cloud:           zts.SimpleName(o.Cloud),
		})
		if err != nil {
			return nil, fmt.Errorf("registering instance %s with provider %s: %w", o.PodUID, o.Provider, convertError(ctx, err))
		}
		instanceID = string(ident.InstanceId)
		if instanceID == "" {
			instanceID = instanceIDFromLocation(location)
		}
	} else {
		instanceID = cur.instanceID
		ident, err = zc.PostInstanceRefreshInformation(zts.ServiceName(o.Provider), zts.DomainName(o.Domain),
			zts.SimpleName(o.Service), zts.PathElement(instanceID), &zts.InstanceRefreshInformation{
				AttestationData: attestation,
				Csr:             csr,
				Token:           token,
				ExpiryTime:      expiry,
				Namespace:       namespace,
			})
		if err != nil {
			err = convertError(ctx, err)
			if ze := (*tokens.ZTSError)(nil); errors.As(err, &ze) && ze.Status == http.StatusForbidden {
				return nil, fmt.Errorf("refreshing instance %s: %w; %s", instanceID, err, reregisterHint)
			}
			return nil, fmt.Errorf("refreshing instance %s: %w", instanceID, err)
		}
	}
	received := m.clock.Now()
	if ident == nil || ident.X509Certificate == "" {
		return nil, fmt.Errorf("instance %s: %w: answer without a certificate", o.PodUID, tokens.ErrZTSUnavailable)
	}
	if instanceID == "" {
		instanceID = o.PodUID
	}
	// The N-token's issue time tells ZTS's clock at the time it signed the
	// certificate: read it first, the certificate is judged by it.
	var nt *ztsNToken
	if o.NToken {
		nt = m.parseNToken(string(ident.ServiceToken), started, received)
	}
	c, err := newCredential([]byte(ident.X509Certificate), []byte(ident.X509CertificateSigner), key, keyPEM, started,
		m.ztsValidity(started, received))
	if err != nil {
		return nil, err
	}
	c.instanceID = instanceID
	if cur != nil && c.caPEM == nil {
		c.caPEM = cur.caPEM
	}
	if err := m.install(c); err != nil {
		return nil, err
	}
	if nt != nil {
		m.ntoken.Store(nt)
	}
	return c, nil
}

// parseNToken reads the N-token ZTS returned with a certificate asked for
// at started and received at received (the node's clock), records ZTS's
// clock from its issue time, and returns it with its expiry on the node's
// clock and when to renew it; nil when there is none to use.
func (m *Manager) parseNToken(tok string, started, received time.Time) *ztsNToken {
	tok = strings.TrimSpace(tok)
	if tok == "" {
		m.log.Info("ZTS returned no n-token with the certificate; /ntoken stays unavailable (ZTS may be set to return a JWT instead: set ATHENZ_NTOKEN=false)")
		return nil
	}
	issued, expires, ok := tokens.AthenzTokenTimes(tok)
	if !ok || !expires.After(issued) {
		m.log.Info("ZTS returned an n-token without a valid issue and expiry time (t=, e=); ignoring it")
		return nil
	}
	m.skew.Observe(issued, started, received)
	v := validity{notBefore: started, notAfter: started.Add(expires.Sub(issued))}
	return &ztsNToken{value: tok, expiry: v.notAfter, renewAt: renewAt(started, v, m.opts.RefreshFraction, rand.Float64())}
}

// ztsValidity returns how to place a certificate ZTS issued in answer to
// a request sent at started and answered at received on the node's clock:
// by ZTS's clock offset as measured (see issueOffset).
func (m *Manager) ztsValidity(started, received time.Time) func(*x509.Certificate) validity {
	return func(leaf *x509.Certificate) validity {
		hint, _ := m.skew.Offset()
		return certValidity(leaf, issueOffset(leaf, started, received, hint))
	}
}
