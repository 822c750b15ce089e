package identity

import (
	"context"
	"fmt"

	"github.com/AthenZ/athenz/clients/go/zts"

	"github.com/athenz-injector/athenz-injector/pkg/tokens"
)

// keyRefresh gets a certificate for the service key from
// POST /instance/{domain}/{service}/refresh, authenticated by an N-token
// signed with that key (no certificate: ZTS then issues a first
// certificate, which its IP restriction of refreshes does not cover), and
// installs it. The CSR names no instance and no IP: the certificate
// belongs to the service key, not to one Pod.
func (m *Manager) keyRefresh(ctx context.Context) (*credential, error) {
	o := m.opts
	csr, err := m.serviceCSR(m.serviceKey, "", false)
	if err != nil {
		return nil, err
	}
	req := &zts.InstanceRefreshRequest{Csr: csr, KeyId: o.KeyVersion}
	if o.CertExpiry > 0 {
		minutes := int32(o.CertExpiry.Minutes())
		req.ExpiryTime = &minutes
	}
	zc, cancel := ztsClient(ctx, o.ZTSURL, m.ownNToken, o.Timeout)
	defer cancel()
	started := m.clock.Now()
	ident, err := zc.PostInstanceRefreshRequest(zts.CompoundName(o.Domain), zts.SimpleName(o.Service), req)
	received := m.clock.Now()
	if err != nil {
		return nil, fmt.Errorf("refreshing the certificate of %s.%s with key %s: %w", o.Domain, o.Service, o.KeyVersion, convertError(ctx, err))
	}
	if ident == nil || ident.Certificate == "" {
		return nil, fmt.Errorf("refreshing the certificate of %s.%s: %w: answer without a certificate", o.Domain, o.Service, tokens.ErrZTSUnavailable)
	}
	c, err := newCredential([]byte(ident.Certificate), []byte(ident.CaCertBundle), m.serviceKey, m.serviceKeyPEM, started,
		m.ztsValidity(started, received))
	if err != nil {
		return nil, err
	}
	if cur := m.cur.Load(); cur != nil && c.caPEM == nil {
		c.caPEM = cur.caPEM
	}
	if err := m.install(c); err != nil {
		return nil, err
	}
	return c, nil
}
