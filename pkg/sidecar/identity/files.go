package identity

import (
	"crypto"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// filesState is what files mode remembers between polls. Used under
// Manager.work.
type filesState struct {
	stamp     fileStamp // of the pair in use
	failed    fileStamp // of a pair that did not load; retried once it changes
	failedMsg string    // of the last stat error, reported once
}

// fileStamp tells whether a pair of files changed since it was read: the
// modification time and size of each, and the file itself (its inode,
// where there is one), since a Secret or CSI volume replaces a version by
// new files and the modification time has the kernel's coarse resolution.
type fileStamp struct {
	certMod, keyMod   time.Time
	certSize, keySize int64
	certID, keyID     uint64
}

func statPair(certFile, keyFile string) (fileStamp, error) {
	c, err := os.Stat(certFile)
	if err != nil {
		return fileStamp{}, fmt.Errorf("ATHENZ_CERT_FILE: %w", err)
	}
	k, err := os.Stat(keyFile)
	if err != nil {
		return fileStamp{}, fmt.Errorf("ATHENZ_KEY_FILE: %w", err)
	}
	return fileStamp{certMod: c.ModTime(), keyMod: k.ModTime(), certSize: c.Size(), keySize: k.Size(),
		certID: fileID(c), keyID: fileID(k)}, nil
}

// readChangingPair reads the pair whose stamp is stamp. Tools that rotate
// the key with the certificate (cert-manager) replace both at once
// (kubelet swaps a Secret volume's files in one rename), but two reads can
// straddle the swap and get the old certificate with the new key. When a
// read fails and the files changed meanwhile, that is a rotation under
// way: read them again, a few times, before calling it a failure.
func readChangingPair(certFile, keyFile string, stamp fileStamp) (*filesContent, fileStamp, error) {
	for range 3 {
		content, err := readFilesPair(certFile, keyFile)
		if err == nil {
			return content, stamp, nil
		}
		again, serr := statPair(certFile, keyFile)
		if serr != nil || again == stamp {
			return nil, stamp, err
		}
		stamp = again
	}
	content, err := readFilesPair(certFile, keyFile)
	return content, stamp, err
}

// reloadFiles loads the certificate and key of files mode when they
// changed (size or modification time) and installs them, copying them to
// the identity directory unless they are already there. A pair that does
// not load (a writer caught half-way, a key that does not match) is
// reported once and tried again when the files change; the pair in use
// stays.
func (m *Manager) reloadFiles() (*credential, bool, error) {
	o := m.opts
	cur := m.cur.Load()
	stamp, err := statPair(o.CertFile, o.KeyFile)
	if err != nil {
		if err.Error() == m.files.failedMsg {
			return cur, false, nil
		}
		m.files.failedMsg = err.Error()
		return nil, false, err
	}
	m.files.failedMsg = ""
	if (cur != nil && stamp == m.files.stamp) || stamp == m.files.failed {
		return cur, false, nil
	}
	content, stamp, err := readChangingPair(o.CertFile, o.KeyFile, stamp)
	if err != nil {
		m.files.failed = stamp
		return nil, false, err
	}
	key, ok := content.pair.PrivateKey.(crypto.Signer)
	if !ok {
		m.files.failed = stamp
		return nil, false, fmt.Errorf("ATHENZ_KEY_FILE=%s: unsupported key type %T", o.KeyFile, content.pair.PrivateKey)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		m.files.failed = stamp
		return nil, false, fmt.Errorf("ATHENZ_KEY_FILE=%s: %w", o.KeyFile, err)
	}
	certs, err := parseCerts(content.certPEM)
	if err != nil {
		m.files.failed = stamp
		return nil, false, fmt.Errorf("ATHENZ_CERT_FILE=%s: %w", o.CertFile, err)
	}
	c := &credential{
		tls:      &content.pair,
		chainPEM: encodeCerts(certs),
		key:      key,
		keyPEM:   keyPEM,
		obtained: m.clock.Now(),
		// Another tool's certificate: its signer's clock is not ZTS's,
		// and nothing measures it.
		valid: certValidity(content.pair.Leaf, 0),
	}
	if o.CAFile != "" {
		// The issuer's CA, for apps that verify peers of the same issuer
		// (ATHENZ_CA_FILE of app containers): read with the pair, since
		// cert-manager and CSI drivers write it with them.
		ca, err := os.ReadFile(o.CAFile)
		if err == nil {
			_, err = parseCerts(ca)
		}
		if err != nil {
			m.files.failed = stamp
			return nil, false, fmt.Errorf("ATHENZ_CA_FILE=%s: %w", o.CAFile, err)
		}
		c.caPEM = ca
	}
	// Files that already are the identity directory's are not rewritten
	// (the rewrite would look like a change at the next poll).
	if samePath(o.CertFile, filepath.Join(o.IdentityDir, CertFileName)) {
		m.written[CertFileName] = c.chainPEM
	}
	if samePath(o.KeyFile, filepath.Join(o.IdentityDir, KeyFileName)) {
		m.written[KeyFileName] = c.keyPEM
	}
	if err := m.install(c); err != nil {
		return nil, false, err
	}
	m.files.stamp, m.files.failed = stamp, fileStamp{}
	return c, true, nil
}

func samePath(a, b string) bool {
	if filepath.Clean(a) == filepath.Clean(b) {
		return true
	}
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}
