package certs

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
)

// writeFiles writes the serving certificate and key to CertDir, each
// atomically (a temporary file renamed over the old one), and only if it
// changed, so the certificate watcher reloads only on a real change. The
// key goes first: a watcher that reads the pair between the two renames
// finds a new key with the old certificate, fails to load the mismatched
// pair and keeps serving the old one until the certificate follows.
func (m *Manager) writeFiles(cert, key []byte) error {
	dir := m.opts.CertDir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating cert dir: %w", err)
	}
	keyChanged, err := writeIfChanged(filepath.Join(dir, corev1.TLSPrivateKeyKey), key, 0o600)
	if err != nil {
		return err
	}
	certChanged, err := writeIfChanged(filepath.Join(dir, corev1.TLSCertKey), cert, 0o644)
	if err != nil {
		return err
	}
	if keyChanged || certChanged {
		m.opts.Logger.Info("wrote webhook serving certificate", "certDir", dir)
	}
	return nil
}

func writeIfChanged(path string, data []byte, mode os.FileMode) (bool, error) {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return false, nil
	}
	if err := writeAtomic(path, data, mode); err != nil {
		return false, fmt.Errorf("writing %s: %w", path, err)
	}
	return true, nil
}

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename, nothing is left to remove
	// CreateTemp makes the file 0600, so the key is never readable by
	// others, not even before the chmod.
	err = tmp.Chmod(mode)
	if err == nil {
		_, err = tmp.Write(data)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
