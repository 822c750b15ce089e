package identity

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/athenz-injector/athenz-injector/pkg/tokens"
)

// adopt takes over the identity an earlier run left in the identity
// directory (an init container, or this container before a restart): the
// key, so a new certificate matches the key file apps may hold, and the
// certificate and role certificates while they are valid, for this
// identity and this key. Anything that does not fit is ignored and
// replaced by the first renewal.
func (m *Manager) adopt() {
	o := m.opts
	dir := o.IdentityDir
	var (
		key    crypto.Signer
		keyPEM []byte
	)
	keyFile, _ := os.ReadFile(filepath.Join(dir, KeyFileName))
	switch o.Mode {
	case ModeKeyFile:
		key, keyPEM = m.serviceKey, m.serviceKeyPEM
		if bytes.Equal(keyFile, keyPEM) {
			m.written[KeyFileName] = keyFile
		}
	case ModeCopperArgos:
		if o.RotateKey || len(keyFile) == 0 {
			return
		}
		k, err := tokens.ParsePrivateKeyPEM(keyFile)
		if err != nil {
			return
		}
		key, keyPEM = k, keyFile
		m.startKey = &credential{key: k, keyPEM: keyFile}
		m.written[KeyFileName] = keyFile
	default:
		return
	}

	certPEM, err := os.ReadFile(filepath.Join(dir, CertFileName))
	if err != nil {
		return
	}
	certs, err := parseCerts(certPEM)
	if err != nil {
		return
	}
	leaf := certs[0]
	now := m.clock.Now()
	// Nothing says when these were issued: judge them by ZTS's clock as
	// last measured, if it was.
	hint, _ := m.skew.Offset()
	valid := certValidity(leaf, hint)
	switch {
	case !publicKeysEqual(leaf.PublicKey, key.Public()),
		!strings.EqualFold(leaf.Subject.CommonName, o.Domain+"."+o.Service),
		!valid.at(now):
		return
	case o.Mode == ModeCopperArgos && !slices.Contains(leaf.DNSNames, tokens.InstanceIDDNSName(o.PodUID, o.DNSSuffix)):
		return
	}
	pair := &tls.Certificate{PrivateKey: key, Leaf: leaf}
	for _, c := range certs {
		pair.Certificate = append(pair.Certificate, c.Raw)
	}
	c := &credential{
		tls:      pair,
		chainPEM: certPEM,
		key:      key,
		keyPEM:   keyPEM,
		obtained: fileTime(filepath.Join(dir, CertFileName), valid.notBefore, now),
		valid:    valid,
	}
	if o.Mode == ModeCopperArgos {
		c.instanceID = o.PodUID
	}
	if ca, err := os.ReadFile(filepath.Join(dir, CAFileName)); err == nil {
		if _, err := parseCerts(ca); err == nil {
			c.caPEM = ca
			m.written[CAFileName] = ca
		}
	}
	m.keyGen++
	c.keyGen = m.keyGen
	m.written[CertFileName] = certPEM
	m.cur.Store(c)
	m.identityDue = renewAt(c.obtained, valid, o.RefreshFraction, rand.Float64())
	if o.NToken {
		// ZTS's N-token came with the certificate and did not outlive the
		// process that asked for it: renew now to get one.
		m.identityDue = now
	}
	m.log.Info("identity certificate adopted from the identity directory", "serial", leaf.SerialNumber.Text(16),
		"notafter", leaf.NotAfter.UTC().Format(time.RFC3339), "renewat", m.identityDue.UTC().Format(time.RFC3339))

	for _, r := range m.roles {
		b, err := os.ReadFile(filepath.Join(dir, r.file))
		if err != nil {
			continue
		}
		rcs, err := parseCerts(b)
		if err != nil {
			continue
		}
		rc := rcs[0]
		rv := certValidity(rc, hint)
		if !publicKeysEqual(rc.PublicKey, key.Public()) ||
			!strings.EqualFold(rc.Subject.CommonName, r.target.Domain+":role."+r.target.Role) ||
			!rv.at(now) {
			continue
		}
		obtained := fileTime(filepath.Join(dir, r.file), rv.notBefore, now)
		r.cert, r.valid, r.keyGen = rc, rv, c.keyGen
		r.dueAt = renewAt(obtained, rv, o.RefreshFraction, rand.Float64())
		m.written[r.file] = b
	}
}

// fileTime is a file's modification time, kept between lo and hi.
func fileTime(path string, lo, hi time.Time) time.Time {
	t := hi
	if fi, err := os.Stat(path); err == nil {
		t = fi.ModTime()
	}
	if t.Before(lo) {
		t = lo
	}
	if t.After(hi) {
		t = hi
	}
	return t
}
