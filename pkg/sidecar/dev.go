package sidecar

import (
	"crypto/x509"
	"fmt"
	"os"

	"time"

	"github.com/go-logr/logr"
)

// Dev mode defaults: the identity of the sidecar when ATHENZ_DOMAIN and
// ATHENZ_SERVICE are not set.
const (
	DevDomain     = "dev"
	DevService    = "app"
	devKeyVersion = "0"
)

// DevZTS is dev mode's in-process fake ZTS as Start uses it;
// *ztsfake.Server is one.
type DevZTS interface {
	URL() string
	CAPool() *x509.CertPool
	CACertPEM() []byte
	Close()
}

// StartDevZTS starts dev mode's fake ZTS, which grants every role in every
// domain, on the clock now (nil: the wall clock), with a service key it
// generated for domain.service, registered as keyVersion (keyPEM). It is nil unless a build
// sets it: dev mode links pkg/tokens/ztsfake, test code that a production
// sidecar does not carry. cmd/sidecar sets it when built with the "dev"
// build tag (make build-sidecar-dev); Validate refuses --dev without it.
var StartDevZTS func(domain, service, keyVersion string, now func() time.Time) (zts DevZTS, keyPEM []byte, err error)

// devZTS is the in-process fake ZTS of dev mode and the generated service
// key registered with it.
type devZTS struct {
	zts    DevZTS
	keyPEM []byte
	tmpDir string // the identity directory made for dev mode, if any
}

func (d *devZTS) close() {
	d.zts.Close()
	if d.tmpDir != "" {
		os.RemoveAll(d.tmpDir)
	}
}

// startDev starts a fake ZTS that grants every role in every domain,
// generates a service key for the dev identity, registers it, and points
// cfg at them (key-file mode).
func startDev(cfg *Config, log logr.Logger) (*devZTS, error) {
	if cfg.Domain == "" {
		cfg.Domain = DevDomain
	}
	if cfg.Service == "" {
		cfg.Service = DevService
	}
	var now func() time.Time
	if cfg.Clock != nil {
		now = cfg.Clock.Now
	}
	zts, keyPEM, err := StartDevZTS(cfg.Domain, cfg.Service, devKeyVersion, now)
	if err != nil {
		return nil, fmt.Errorf("dev mode: starting the fake ZTS: %w", err)
	}
	d := &devZTS{zts: zts, keyPEM: keyPEM}
	if cfg.IdentityDir == "" {
		// The identity's certificate and key are written somewhere; not to
		// /var/run/athenz on a developer's machine.
		if d.tmpDir, err = os.MkdirTemp("", "athenz-sidecar-dev"); err != nil {
			zts.Close()
			return nil, fmt.Errorf("dev mode: identity directory: %w", err)
		}
		cfg.IdentityDir = d.tmpDir
	}
	cfg.IdentityMode = IdentityKeyFile
	cfg.ZTSURL = zts.URL()
	cfg.KeyVersion = devKeyVersion
	log.Info("DEV MODE: serving with an in-process fake ZTS that grants every role; its tokens are signed by a throwaway test key and are worthless anywhere else",
		"zts", zts.URL(), "domain", cfg.Domain, "service", cfg.Service, "identitydir", cfg.IdentityDir)
	return d, nil
}
