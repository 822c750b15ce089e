package identity

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/AthenZ/athenz/clients/go/zts"

	"github.com/athenz-injector/athenz-injector/pkg/tokens"
)

// roleCert is one role certificate of Options.RoleCerts. Fields are
// written under both Manager.work and Manager.mu, so step (under work) may
// read them without mu, and Ready and Status (under mu) too.
type roleCert struct {
	target tokens.Target
	file   string // name in the identity directory

	cert     *x509.Certificate // nil until the first
	pair     *tls.Certificate  // cert's chain with the identity key, for TLS clients
	valid    validity          // cert's, on the node's clock
	keyGen   uint64            // of the identity key the certificate is for
	dueAt    time.Time
	failures int
	lastErr  error
}

// due reports whether the certificate must be fetched now.
func (r *roleCert) due(now time.Time, keyGen uint64) bool {
	if r.cert != nil && r.keyGen != keyGen {
		return true // made for a key that is no longer in use
	}
	return !now.Before(r.dueAt)
}

// nextDue is when the certificate is next fetched.
func (r *roleCert) nextDue() time.Time { return r.dueAt }

// ready says whether the role certificate is usable at now with the
// identity key keyGen.
func (r *roleCert) ready(now time.Time, keyGen uint64) error {
	last := ""
	if r.lastErr != nil {
		last = fmt.Sprintf(" (attempt %d failed: %v)", r.failures, r.lastErr)
	}
	switch {
	case r.cert == nil:
		return fmt.Errorf("role certificate %s not obtained yet%s", r.target, last)
	case r.keyGen != keyGen:
		return fmt.Errorf("role certificate %s is for the previous key%s", r.target, last)
	case !now.Before(r.valid.notAfter):
		return fmt.Errorf("role certificate %s expired at %s%s", r.target, r.valid.notAfter.UTC().Format(time.RFC3339), last)
	}
	return nil
}

// principal is the identity's principal name, domain.service.
func (m *Manager) principal(c *credential) string {
	if m.opts.Domain != "" && m.opts.Service != "" {
		return m.opts.Domain + "." + m.opts.Service
	}
	return c.leaf().Subject.CommonName
}

// roleCSR is a role certificate's CSR, with the identity's key: CN
// <domain>:role.<role>; SAN URI the role's SPIFFE URI and
// athenz://principal/<principal>; SAN email <principal>@<dns suffix> when
// a DNS suffix is set.
func (m *Manager) roleCSR(c *credential, t tokens.Target) (string, error) {
	p := m.principal(c)
	spec := csrSpec{
		cn:   t.Domain + ":role." + t.Role,
		uris: []string{tokens.RoleSPIFFEURI(m.opts.TrustDomain, t.Domain, t.Role), "athenz://principal/" + p},
	}
	if m.opts.DNSSuffix != "" {
		spec.emails = []string{p + "@" + m.opts.DNSSuffix}
	}
	return newCSR(c.key, spec)
}

// renewRole fetches one role certificate (POST /rolecert) and writes it.
func (m *Manager) renewRole(ctx context.Context, c *credential, r *roleCert) {
	err := m.fetchRole(ctx, c, r)
	if err == nil || ctx.Err() != nil {
		return
	}
	now := m.clock.Now()
	m.mu.Lock()
	r.failures++
	r.lastErr = err
	attempt := r.failures
	delay := m.backoff(attempt)
	r.dueAt = now.Add(delay)
	m.mu.Unlock()
	m.log.Error(err, "role certificate attempt failed, retrying", "role", r.target.String(), "attempt", attempt, "retryin", delay.String())
}

func (m *Manager) fetchRole(ctx context.Context, c *credential, r *roleCert) error {
	csr, err := m.roleCSR(c, r.target)
	if err != nil {
		return err
	}
	req := &zts.RoleCertificateRequest{Csr: csr}
	if m.opts.CertExpiry > 0 {
		req.ExpiryTime = int64(m.opts.CertExpiry.Minutes())
	}
	zc, cancel := ztsClient(ctx, m.opts.ZTSURL, m.own, m.opts.Timeout)
	defer cancel()
	started := m.clock.Now()
	rc, err := zc.PostRoleCertificateRequestExt(req)
	received := m.clock.Now()
	if err != nil {
		return fmt.Errorf("role certificate %s: %w", r.target, convertError(ctx, err))
	}
	if rc == nil || rc.X509Certificate == "" {
		return fmt.Errorf("role certificate %s: %w: answer without a certificate", r.target, tokens.ErrZTSUnavailable)
	}
	certs, err := parseCerts([]byte(rc.X509Certificate))
	if err != nil {
		return fmt.Errorf("role certificate %s from ZTS: %w", r.target, err)
	}
	if !publicKeysEqual(certs[0].PublicKey, c.key.Public()) {
		return fmt.Errorf("role certificate %s from ZTS is not for the identity key", r.target)
	}
	if err := m.write(fileWrite{Name: r.file, Data: encodeCerts(certs), Perm: CertFileMode}); err != nil {
		return err
	}
	valid := m.ztsValidity(started, received)(certs[0])
	due := renewAt(started, valid, m.opts.RefreshFraction, rand.Float64())
	pair := &tls.Certificate{PrivateKey: c.key, Leaf: certs[0]}
	for _, rc := range certs {
		pair.Certificate = append(pair.Certificate, rc.Raw)
	}
	m.mu.Lock()
	r.cert, r.pair, r.valid, r.keyGen, r.dueAt = certs[0], pair, valid, c.keyGen, due
	r.failures, r.lastErr = 0, nil
	m.mu.Unlock()
	m.log.Info("role certificate in place", "role", r.target.String(), "serial", certs[0].SerialNumber.Text(16),
		"notafter", certs[0].NotAfter.UTC().Format(time.RFC3339), "renewat", due.UTC().Format(time.RFC3339))
	return nil
}

// RoleCertificate returns the role certificate of t (one of
// Options.RoleCerts) with the identity key, for a TLS client that
// presents it (the proxy's TLS origination), or why there is none usable
// now. The pointer changes with every new certificate.
func (m *Manager) RoleCertificate(t tokens.Target) (*tls.Certificate, error) {
	c := m.cur.Load()
	now := m.clock.Now()
	var keyGen uint64
	if c != nil {
		keyGen = c.keyGen
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range m.roles {
		if r.target != t {
			continue
		}
		if err := r.ready(now, keyGen); err != nil {
			return nil, err
		}
		return r.pair, nil
	}
	return nil, fmt.Errorf("role certificate %s is not in ATHENZ_ROLE_CERTS", t)
}
