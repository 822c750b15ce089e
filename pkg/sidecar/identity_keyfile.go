package sidecar

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/http"
	"time"

	"github.com/athenz-injector/athenz-injector/pkg/tokens"
)

type keyFileOptions struct {
	domain, service, keyVersion string
	keyPEM                      []byte
	roots                       *x509.CertPool
	clock                       tokens.Clock
	dialTimeout                 time.Duration
}

// keyFileIdentity signs N-tokens with the service's own key and
// authenticates to ZTS with them.
type keyFileIdentity struct {
	signer    *tokens.NTokenSigner
	transport http.RoundTripper
}

func newKeyFileIdentity(opts keyFileOptions) (*keyFileIdentity, error) {
	signer, err := tokens.NewNTokenSigner(tokens.NTokenOptions{
		Domain: opts.domain, Service: opts.service, KeyVersion: opts.keyVersion,
		KeyPEM: opts.keyPEM, Clock: opts.clock,
	})
	if err != nil {
		return nil, fmt.Errorf("ATHENZ_KEY_FILE with ATHENZ_DOMAIN, ATHENZ_SERVICE, ATHENZ_KEY_VERSION: %w", err)
	}
	// Sign once now, so a key that cannot sign stops the sidecar at start.
	if _, _, err := signer.Token(); err != nil {
		return nil, fmt.Errorf("ATHENZ_KEY_FILE: %w", err)
	}
	return &keyFileIdentity{
		signer:    signer,
		transport: ntokenTransport{base: ztsTransport(opts.roots, nil, opts.dialTimeout), src: signer},
	}, nil
}

func (id *keyFileIdentity) Transport() http.RoundTripper { return id.transport }

func (id *keyFileIdentity) NTokenSource() NTokenSource { return id.signer }

func (id *keyFileIdentity) Ready() error { return nil }

func (id *keyFileIdentity) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}
