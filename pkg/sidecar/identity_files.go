package sidecar

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"

	"github.com/athenz-injector/athenz-injector/pkg/tokens"
)

// filesPollInterval is how often files mode looks for a new certificate.
const filesPollInterval = 10 * time.Second

type filesOptions struct {
	certFile, keyFile string
	roots             *x509.CertPool
	clock             tokens.Clock
	log               logr.Logger
	dialTimeout       time.Duration
	pollInterval      time.Duration // default filesPollInterval
}

// filesIdentity uses a certificate and key written by something else
// (cert-manager, a CSI driver) and reloads them when the files change.
type filesIdentity struct {
	opts      filesOptions
	cert      atomic.Pointer[tls.Certificate]
	stamp     fileStamp // of the loaded files; used by Run only
	transport *http.Transport
}

// fileStamp tells whether a pair of files changed since they were read.
type fileStamp struct {
	certMod, keyMod   time.Time
	certSize, keySize int64
}

func newFilesIdentity(opts filesOptions) (*filesIdentity, error) {
	if opts.pollInterval <= 0 {
		opts.pollInterval = filesPollInterval
	}
	id := &filesIdentity{opts: opts}
	stamp, err := id.load()
	if err != nil {
		return nil, err
	}
	id.stamp = stamp
	id.transport = ztsTransport(opts.roots, func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return id.cert.Load(), nil
	}, opts.dialTimeout)
	return id, nil
}

func (id *filesIdentity) Transport() http.RoundTripper { return id.transport }

func (id *filesIdentity) NTokenSource() NTokenSource { return nil }

func (id *filesIdentity) Ready() error {
	c := id.cert.Load()
	now := id.opts.clock.Now()
	switch {
	case c == nil || c.Leaf == nil:
		return errors.New("no certificate loaded")
	case now.Before(c.Leaf.NotBefore):
		return fmt.Errorf("certificate %s is not valid before %s", id.opts.certFile, c.Leaf.NotBefore.UTC().Format(time.RFC3339))
	case !now.Before(c.Leaf.NotAfter):
		return fmt.Errorf("certificate %s expired at %s", id.opts.certFile, c.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// Run polls the files and loads them when they change. A pair that does
// not load (a writer caught half-way) is logged and retried at the next
// poll; the previous certificate stays in use.
func (id *filesIdentity) Run(ctx context.Context) error {
	t := time.NewTicker(id.opts.pollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		stamp, err := id.statFiles()
		if err != nil || stamp == id.stamp {
			continue
		}
		loaded, err := id.load()
		if err != nil {
			id.opts.log.Error(err, "reloading identity files", "cert", id.opts.certFile)
			continue
		}
		id.stamp = loaded
		// Connections made with the old certificate would keep it.
		id.transport.CloseIdleConnections()
		leaf := id.cert.Load().Leaf
		id.opts.log.Info("identity certificate reloaded", "cert", id.opts.certFile,
			"subject", leaf.Subject.String(), "notafter", leaf.NotAfter.UTC())
	}
}

func (id *filesIdentity) statFiles() (fileStamp, error) {
	c, err := os.Stat(id.opts.certFile)
	if err != nil {
		return fileStamp{}, err
	}
	k, err := os.Stat(id.opts.keyFile)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{certMod: c.ModTime(), keyMod: k.ModTime(), certSize: c.Size(), keySize: k.Size()}, nil
}

func (id *filesIdentity) load() (fileStamp, error) {
	stamp, err := id.statFiles()
	if err != nil {
		return fileStamp{}, fmt.Errorf("ATHENZ_CERT_FILE or ATHENZ_KEY_FILE: %w", err)
	}
	certPEM, err := os.ReadFile(id.opts.certFile)
	if err != nil {
		return fileStamp{}, fmt.Errorf("ATHENZ_CERT_FILE: %w", err)
	}
	keyPEM, err := os.ReadFile(id.opts.keyFile)
	if err != nil {
		return fileStamp{}, fmt.Errorf("ATHENZ_KEY_FILE: %w", err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// The tls error names no key material.
		return fileStamp{}, fmt.Errorf("ATHENZ_CERT_FILE=%s with ATHENZ_KEY_FILE=%s: %w", id.opts.certFile, id.opts.keyFile, err)
	}
	if pair.Leaf == nil {
		if pair.Leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return fileStamp{}, fmt.Errorf("ATHENZ_CERT_FILE=%s: %w", id.opts.certFile, err)
		}
	}
	id.cert.Store(&pair)
	return stamp, nil
}
