package app

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
)

// errNoCertificate is what TLS handshakes and the readiness check see until
// the serving certificate is loaded.
var errNoCertificate = errors.New("webhook serving certificate not loaded yet")

// certLoader serves the webhook's certificate from files that may appear
// only after start (a Secret that a rotator or cert-manager fills later)
// and, once they are there, hot-reloads them with controller-runtime's
// certwatcher. It is a manager Runnable.
type certLoader struct {
	certPath, keyPath string
	poll              time.Duration
	log               logr.Logger

	mu      sync.RWMutex // guards watcher
	watcher *certwatcher.CertWatcher
}

func newCertLoader(certPath, keyPath string, log logr.Logger) *certLoader {
	return &certLoader{certPath: certPath, keyPath: keyPath, poll: time.Second, log: log}
}

// Start waits for a readable certificate and key, then watches them until
// ctx is done.
func (c *certLoader) Start(ctx context.Context) error {
	waiting := false
	for {
		w, err := certwatcher.New(c.certPath, c.keyPath)
		if err == nil {
			c.mu.Lock()
			c.watcher = w
			c.mu.Unlock()
			c.log.Info("webhook serving certificate loaded", "cert", c.certPath)
			return w.Start(ctx)
		}
		if !waiting {
			waiting = true
			if _, statErr := os.Stat(c.certPath); statErr != nil {
				c.log.Info("waiting for the webhook serving certificate", "cert", c.certPath, "key", c.keyPath)
			} else {
				c.log.Error(err, "cannot load the webhook serving certificate, retrying", "cert", c.certPath, "key", c.keyPath)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(c.poll):
		}
	}
}

// NeedLeaderElection is false: every replica serves the webhook.
func (c *certLoader) NeedLeaderElection() bool { return false }

func (c *certLoader) current() *certwatcher.CertWatcher {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.watcher
}

// GetCertificate is the TLS server's certificate callback.
func (c *certLoader) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	w := c.current()
	if w == nil {
		return nil, errNoCertificate
	}
	return w.GetCertificate(hello)
}

// Loaded is a readiness check: ready once the certificate is loaded.
func (c *certLoader) Loaded(*http.Request) error {
	if c.current() == nil {
		return errNoCertificate
	}
	return nil
}
