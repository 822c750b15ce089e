package sidecar

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/athenz-injector/athenz-injector/pkg/tokens"
)

// stubIdentity is an Identity with a fixed N-token and no ZTS.
type stubIdentity struct{}

func (stubIdentity) Transport() http.RoundTripper  { return http.DefaultTransport }
func (stubIdentity) NTokenSource() NTokenSource    { return stubNToken{} }
func (stubIdentity) Ready() error                  { return nil }
func (stubIdentity) CertificateError() error       { return nil }
func (stubIdentity) CertificateChainPEM() []byte   { return nil }
func (stubIdentity) Run(ctx context.Context) error { <-ctx.Done(); return nil }
func (stubIdentity) ClientCertificate() (*tls.Certificate, error) {
	return nil, errors.New("stub identity: no certificate")
}
func (stubIdentity) RoleCertificate(tokens.Target) (*tls.Certificate, error) {
	return nil, errors.New("stub identity: no role certificate")
}

type stubNToken struct{}

func (stubNToken) Token() (string, time.Time, error) {
	return "v=S1;d=client;n=api;k=0;a=00;t=1;e=2;s=sig", time.Now().Add(time.Hour), nil
}

// stubHandler is the token API over a cache whose fetch makes up tokens
// without a network: for fuzzing and for measuring the handler alone.
func stubHandler(tb testing.TB) *handler {
	tb.Helper()
	cache := tokens.NewCache(func(_ context.Context, key tokens.Key) (tokens.Token, error) {
		now := time.Now()
		return tokens.Token{
			Value:  "v=Z1;d=" + key.Domain + ";r=" + key.Roles + ";p=client.api;a=0123456789abcdef;t=1;e=2;k=0;s=" + sigFiller,
			Expiry: now.Add(2 * time.Hour), Obtained: now,
		}, nil
	}, tokens.CacheOptions{})
	tb.Cleanup(cache.Close)
	id := stubIdentity{}
	return newHandler(logr.Discard(), cache, id, tokens.RealClock{}, upstreamOptions{},
		newReadiness(id, &identityGate{id: id}, nil, cache, tokens.RealClock{}, logr.Discard()), newMetrics(tokens.RealClock{}), timeoutsOf(Config{}))
}

// sigFiller makes stub role tokens as long as real ones (an ECDSA
// signature in YBase64).
const sigFiller = "MEUCIQDyYyKK.VyxCR51Xz6f3wky8N4LvCo8OEHQ65UFgPhtPwIgGcpr76.rkAkaWNG6BoYk0OVVWvCpc6dqbEQ76HHOwEU-"
