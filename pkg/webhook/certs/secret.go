package certs

import (
	"crypto"
	"crypto/x509"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// contents is a Secret's data, parsed. A field is nil when its key is
// missing or does not parse.
type contents struct {
	ca    *x509.Certificate // first certificate of ca.crt, if it is a CA
	caKey crypto.Signer     // ca.key, if it is ca's key
	// leaf is the first certificate of tls.crt if tls.key is its key;
	// chain holds the rest of tls.crt.
	leaf  *x509.Certificate
	chain []*x509.Certificate
	// bundle is ca followed by the other CA certificates of ca-bundle.crt,
	// without duplicates. It depends on the data alone (not on the clock),
	// so every replica derives the same caBundle from the same Secret.
	bundle []*x509.Certificate
}

func parseSecret(data map[string][]byte) *contents {
	c := &contents{}
	if cas := parseCerts(data[KeyCACert]); len(cas) > 0 && cas[0].IsCA {
		c.ca = cas[0]
		if key, err := parsePrivateKey(data[KeyCAKey]); err == nil && matches(c.ca, key) {
			c.caKey = key
		}
		c.bundle = addCerts([]*x509.Certificate{c.ca}, parseCerts(data[KeyCABundle]), func(x *x509.Certificate) bool { return x.IsCA })
	}
	if certs := parseCerts(data[corev1.TLSCertKey]); len(certs) > 0 {
		if key, err := parsePrivateKey(data[corev1.TLSPrivateKeyKey]); err == nil && matches(certs[0], key) {
			c.leaf, c.chain = certs[0], certs[1:]
		}
	}
	return c
}

// addCerts appends to list those of more that keep says yes to and that
// list does not hold yet.
func addCerts(list, more []*x509.Certificate, keep func(*x509.Certificate) bool) []*x509.Certificate {
	for _, m := range more {
		if !keep(m) || slices.ContainsFunc(list, m.Equal) {
			continue
		}
		list = append(list, m)
	}
	return list
}

// verdict says what a Secret needs. A zero verdict: nothing, use it.
type verdict struct {
	// reason is why the Secret is replaced, for the log; empty if not.
	reason string
	// newCA means the CA must be replaced too, not only the serving
	// certificate.
	newCA bool
}

// check decides whether the Secret's contents can be used at now. Only
// what makes them unusable or due for renewal counts: a valid Secret
// issued with other lifetimes or by someone else is used as it is.
func (m *Manager) check(c *contents, now time.Time) verdict {
	o := &m.opts
	switch {
	case c.ca == nil:
		return verdict{reason: "no CA certificate", newCA: true}
	case now.Before(c.ca.NotBefore):
		return verdict{reason: "CA certificate not valid yet", newCA: true}
	case !now.Before(renewalTime(c.ca, o.CARenewBefore)):
		return verdict{reason: "CA certificate due for renewal", newCA: true}
	}
	reason := m.checkLeaf(c, now)
	if reason == "" {
		return verdict{}
	}
	if c.caKey == nil {
		return verdict{reason: reason + ", and no CA key to sign a new one", newCA: true}
	}
	return verdict{reason: reason}
}

func (m *Manager) checkLeaf(c *contents, now time.Time) string {
	if c.leaf == nil {
		return "no serving certificate and key"
	}
	roots := x509.NewCertPool()
	roots.AddCert(c.ca)
	inter := x509.NewCertPool()
	for _, ic := range c.chain {
		inter.AddCert(ic)
	}
	opts := x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if _, err := c.leaf.Verify(opts); err != nil {
		return fmt.Sprintf("serving certificate does not verify against the CA (%v)", err)
	}
	dns, ips := m.opts.names()
	for _, n := range dns {
		if err := c.leaf.VerifyHostname(n); err != nil {
			return fmt.Sprintf("serving certificate does not cover %s", n)
		}
	}
	for _, ip := range ips {
		if err := c.leaf.VerifyHostname(ip.String()); err != nil {
			return fmt.Sprintf("serving certificate does not cover %s", ip)
		}
	}
	if !now.Before(renewalTime(c.leaf, m.opts.RenewBefore)) {
		return "serving certificate due for renewal"
	}
	return ""
}

// issue returns new Secret data for c and v: a new serving certificate,
// signed by a new CA if v.newCA. When the CA stays, the serving
// certificate covers the configured names and those of the certificate it
// replaces, so that replicas configured with different extra names (during
// a rollout) add names instead of taking turns replacing the certificate. A new CA goes first in the bundle, followed by the earlier
// CAs that have not expired: those of the Secret and those this Manager
// last synced, in case the Secret was deleted or overwritten.
func (m *Manager) issue(c *contents, v verdict, now time.Time) (map[string][]byte, error) {
	o := &m.opts
	data := map[string][]byte{}
	var ca *keyPair
	var bundle []*x509.Certificate
	if v.newCA {
		var err error
		ca, err = newCA(now, o.CALifetime, o.ServiceName+"."+o.Namespace+" webhook CA")
		if err != nil {
			return nil, err
		}
		unexpired := func(x *x509.Certificate) bool { return x.IsCA && now.Before(x.NotAfter) }
		bundle = addCerts([]*x509.Certificate{ca.cert}, c.bundle, unexpired)
		bundle = addCerts(bundle, m.lastBundle(), unexpired)
		data[KeyCACert], data[KeyCAKey] = ca.certPEM, ca.keyPEM
	} else {
		ca = &keyPair{cert: c.ca, key: c.caKey}
		bundle = addCerts([]*x509.Certificate{c.ca}, c.bundle, func(x *x509.Certificate) bool { return now.Before(x.NotAfter) })
	}

	dns, ips := o.names()
	if !v.newCA && c.leaf != nil && c.leaf.CheckSignatureFrom(c.ca) == nil {
		for _, n := range c.leaf.DNSNames {
			if !slices.Contains(dns, n) {
				dns = append(dns, n)
			}
		}
		for _, ip := range c.leaf.IPAddresses {
			if !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
		}
	}
	leaf, err := newServingCert(ca, now, o.CertLifetime, dns, ips)
	if err != nil {
		return nil, err
	}
	data[corev1.TLSCertKey], data[corev1.TLSPrivateKeyKey] = leaf.certPEM, leaf.keyPEM
	data[KeyCABundle] = encodeCerts(bundle)
	return data, nil
}

// leafNames is for logs: the names a serving certificate covers.
func leafNames(c *x509.Certificate) []string {
	names := slices.Clone(c.DNSNames)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	return names
}
