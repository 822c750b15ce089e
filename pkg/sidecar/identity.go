package sidecar

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/go-logr/logr"

	"github.com/athenz-injector/athenz-injector/pkg/tokens"
)

// Identity is the sidecar's Athenz identity as the token API needs it. An
// identity mode (files, key-file, copper-argos) is one implementation;
// NewIdentity picks it from the Config.
type Identity interface {
	// Transport carries calls to ZTS authenticated as this identity (a TLS
	// client certificate, or an N-token in Athenz-Principal-Auth). It is
	// asked for once; it must pick up rotated credentials by itself.
	Transport() http.RoundTripper
	// NTokenSource returns the signer of the identity's N-tokens, or nil
	// when the identity has none (files mode): GET /ntoken and the N-token
	// proxy then answer 501.
	NTokenSource() NTokenSource
	// Ready returns nil when the identity can be used now, else why not.
	// It is called by /readyz and must be cheap.
	Ready() error
	// Run keeps the identity fresh (reloads files, rotates the
	// certificate) until ctx ends. It returns nil when ctx ends, or an
	// error when the identity cannot be kept at all.
	Run(ctx context.Context) error
}

// NTokenSource gives out N-tokens; *tokens.NTokenSigner is one.
type NTokenSource interface {
	// Token returns a valid N-token and its expiry.
	Token() (string, time.Time, error)
}

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
}

// ErrNotSupported is returned for settings this build accepts but does not
// implement yet.
var ErrNotSupported = errors.New("not supported yet")

// NewIdentity builds the identity cfg.EffectiveIdentityMode() names. It reads
// the CA bundle and the key and certificate files, so a missing or broken
// file stops the sidecar at start with the variable named.
func NewIdentity(cfg Config, opts IdentityOptions) (Identity, error) {
	if opts.Clock == nil {
		opts.Clock = tokens.RealClock{}
	}
	if opts.Logger.GetSink() == nil {
		opts.Logger = logr.Discard()
	}
	roots := opts.RootCAs
	if roots == nil && cfg.ZTSCAFile != "" {
		pem, err := os.ReadFile(cfg.ZTSCAFile)
		if err != nil {
			return nil, fmt.Errorf("ATHENZ_ZTS_CA_FILE: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ATHENZ_ZTS_CA_FILE=%s: no PEM certificate found", cfg.ZTSCAFile)
		}
	}
	timeout := cfg.ZTSTimeout
	if timeout <= 0 {
		timeout = DefaultZTSTimeout
	}
	switch mode := cfg.EffectiveIdentityMode(); mode {
	case IdentityFiles:
		return newFilesIdentity(filesOptions{
			certFile: cfg.CertFile, keyFile: cfg.KeyFile, roots: roots, clock: opts.Clock,
			log: opts.Logger, dialTimeout: timeout,
		})
	case IdentityKeyFile:
		keyPEM := opts.KeyPEM
		if keyPEM == nil {
			var err error
			if keyPEM, err = os.ReadFile(cfg.KeyFile); err != nil {
				return nil, fmt.Errorf("ATHENZ_KEY_FILE: %w", err)
			}
		}
		return newKeyFileIdentity(keyFileOptions{
			domain: cfg.Domain, service: cfg.Service, keyVersion: cfg.KeyVersion, keyPEM: keyPEM,
			roots: roots, clock: opts.Clock, dialTimeout: timeout,
		})
	case IdentityCopperArgos:
		return nil, fmt.Errorf("ATHENZ_IDENTITY_MODE=%s (the default) is %w; set ATHENZ_IDENTITY_MODE=files or key-file", mode, ErrNotSupported)
	default:
		return nil, fmt.Errorf("ATHENZ_IDENTITY_MODE=%q: want %s, %s or %s", mode, IdentityCopperArgos, IdentityKeyFile, IdentityFiles)
	}
}

// ztsTransport returns an HTTP transport for ZTS that trusts roots (nil:
// the system roots) and presents the client certificate getCert returns
// (nil: none).
func ztsTransport(roots *x509.CertPool, getCert func(*tls.CertificateRequestInfo) (*tls.Certificate, error), dialTimeout time.Duration) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{
		RootCAs:              roots,
		MinVersion:           tls.VersionTLS12,
		GetClientCertificate: getCert,
	}
	t.TLSHandshakeTimeout = dialTimeout
	t.MaxIdleConnsPerHost = 16
	return t
}

// ntokenTransport adds the identity's N-token to every call to ZTS.
type ntokenTransport struct {
	base http.RoundTripper
	src  NTokenSource
}

func (t ntokenTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	tok, _, err := t.src.Token()
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, fmt.Errorf("signing n-token: %w", err)
	}
	out := req.Clone(req.Context()) // a RoundTripper must not change the caller's request
	out.Header.Set(headerPrincipalAuth, tok)
	return t.base.RoundTrip(out)
}
