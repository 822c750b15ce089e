//go:build dev

package main

import (
	"time"

	"github.com/athenz-injector/athenz-injector/pkg/sidecar"
	"github.com/athenz-injector/athenz-injector/pkg/tokens/ztsfake"
)

// A build with the "dev" tag (make build-sidecar-dev) has dev mode: --dev
// runs the fake ZTS in process. The production build does not link it.
func init() {
	sidecar.StartDevZTS = func(domain, service, keyVersion string, now func() time.Time) (sidecar.DevZTS, []byte, error) {
		return ztsfake.StartDev(domain, service, keyVersion, now)
	}
}
