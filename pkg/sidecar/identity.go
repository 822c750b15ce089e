package sidecar

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"

	"github.com/go-logr/logr"

	"github.com/athenz-injector/athenz-injector/pkg/sidecar/identity"
	"github.com/athenz-injector/athenz-injector/pkg/tokens"
)

// Identity is the sidecar's Athenz identity as the token API needs it.
// *identity.Manager implements it for every identity mode (copper-argos,
// key-file, files); tests use stubs.
type Identity interface {
	// Transport carries calls to ZTS authenticated as this identity (a TLS
	// client certificate, or an N-token in Athenz-Principal-Auth). It is
	// asked for once; it picks up rotated credentials by itself.
	Transport() http.RoundTripper
	// NTokenSource returns the source of the identity's N-tokens, or nil
	// when the identity has none: GET /ntoken and the N-token proxy then
	// answer 501.
	NTokenSource() NTokenSource
	// CertificateChainPEM returns the current certificate chain (leaf
	// first) for GET /svccert, or nil before the first certificate.
	CertificateChainPEM() []byte
	// ClientCertificate returns the identity certificate and its key,
	// valid now, for the proxy to present to upstreams, or why there is
	// none. The pointer changes with every new certificate. It must be
	// cheap.
	ClientCertificate() (*tls.Certificate, error)
	// RoleCertificate is ClientCertificate for a role certificate of
	// ATHENZ_ROLE_CERTS.
	RoleCertificate(t tokens.Target) (*tls.Certificate, error)
	// CertificateError returns nil when an identity certificate valid now
	// is in place, else why not (GET /svccert tells the client). It must
	// be cheap.
	CertificateError() error
	// Ready returns nil when every credential the identity was configured
	// for is valid now, else why not. It is called by /readyz and must be
	// cheap.
	Ready() error
	// Run keeps the identity fresh (reloads files, rotates the
	// certificate) until ctx ends. It returns nil when ctx ends, or an
	// error when the identity cannot be kept at all.
	Run(ctx context.Context) error
}

// NTokenSource gives out N-tokens: *tokens.NTokenSigner (key-file mode) or
// the N-token ZTS issued with the certificate (copper-argos).
type NTokenSource = identity.NTokenSource

// IdentityOptions are what NewIdentity needs besides the Config.
type IdentityOptions struct {
	// Logger for the identity's own events. Default: discard.
	Logger logr.Logger
	// Clock default: tokens.RealClock.
	Clock tokens.Clock
	// RootCAs overrides Config.ZTSCAFile (dev mode passes its fake CA).
	RootCAs *x509.CertPool
	// KeyPEM overrides Config.KeyFile (dev mode passes a generated key).
	KeyPEM []byte
	// WrapTransport wraps the transport of the identity's own calls to
	// ZTS (the sidecar counts and times them). Default: none.
	WrapTransport func(http.RoundTripper) http.RoundTripper
	// Skew is the measurement of ZTS's clock shared with the token client.
	// Default: the identity's own.
	Skew *tokens.ClockSkew
}

// NewIdentity builds the identity of cfg.EffectiveIdentityMode(). It reads
// the CA bundle, keys, certificate and token files, so a missing or broken
// file stops the sidecar at start with the variable named.
func NewIdentity(cfg Config, opts IdentityOptions) (*identity.Manager, error) {
	m, err := identity.New(identityOptions(cfg, opts))
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	return m, nil
}

// identityOptions maps the sidecar's settings to the identity package's.
func identityOptions(cfg Config, opts IdentityOptions) identity.Options {
	ca := cfg.CopperArgos
	mode := identity.Mode(cfg.EffectiveIdentityMode())
	o := identity.Options{
		Mode:              mode,
		ZTSURL:            cfg.ZTSURL,
		RootCAs:           opts.RootCAs,
		Timeout:           cfg.ZTSTimeout,
		Domain:            cfg.Domain,
		Service:           cfg.Service,
		Provider:          ca.Provider,
		DNSSuffix:         ca.DNSSuffix,
		SATokenFile:       ca.SATokenFile,
		TrustDomain:       ca.TrustDomain,
		AttestationFormat: identity.AttestationFormat(ca.AttestationFormat),
		Renewal:           identity.Renewal(ca.CertRenewal),
		Cloud:             ca.Cloud,
		// ZTS's N-token is asked for unless turned off, so /ntoken works in
		// copper-argos mode too.
		NToken:          mode == identity.ModeCopperArgos && (ca.NToken == nil || *ca.NToken),
		KeyType:         identity.KeyType(ca.KeyType),
		RotateKey:       ca.RotateKey,
		RefreshFraction: cfg.Certificate.RefreshFraction,
		CertExpiry:      cfg.Certificate.Expiry,
		KeyFileMode:     cfg.Certificate.KeyFileMode,
		RoleCerts:       cfg.Certificate.RoleCerts,
		KeyFileCert:     cfg.Certificate.KeyFileCert,
		Skew:            opts.Skew,
		IdentityDir:     cfg.IdentityDir,
		KeyFile:         cfg.KeyFile,
		KeyPEM:          opts.KeyPEM,
		KeyVersion:      cfg.KeyVersion,
		CertFile:        cfg.CertFile,
		CAFile:          cfg.CAFile,
		PodUID:          cfg.Pod.UID,
		PodIP:           cfg.Pod.IP,
		PodNamespace:    cfg.Pod.Namespace,
		Clock:           opts.Clock,
		Logger:          opts.Logger,
		WrapTransport:   opts.WrapTransport,
	}
	if opts.RootCAs == nil {
		o.ZTSCAFile = cfg.ZTSCAFile
	}
	return o
}
