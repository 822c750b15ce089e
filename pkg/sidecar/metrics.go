package sidecar

import (
	"net/http"
	"sync/atomic"

	"github.com/athenz-injector/athenz-injector/pkg/sidecar/identity"
	"github.com/athenz-injector/athenz-injector/pkg/tokens"
)

// tokenType is the "type" label of athenz_sidecar_token_requests_total:
// which endpoint asked for a token.
type tokenType uint8

const (
	tokenNToken tokenType = iota
	tokenRoleToken
	tokenAccessToken
	tokenProxy
	numTokenTypes
)

var tokenTypeNames = [numTokenTypes]string{"ntoken", "roletoken", "accesstoken", "proxy"}

// outcomeRejected is the "outcome" of a token request refused before any
// token was looked up: bad input, a wrong method, an upstream the proxy
// may not send tokens to. The other outcomes are tokens.Outcome's.
const outcomeRejected tokens.Outcome = 0

// numOutcomes bounds the tokens.Outcome values (OutcomeError is the last).
const numOutcomes = int(tokens.OutcomeError) + 1

// outcomeOrder is the order of the outcome label in the exposition.
var outcomeOrder = [numOutcomes]tokens.Outcome{tokens.OutcomeHit, tokens.OutcomeStale, tokens.OutcomeMiss, tokens.OutcomeError, outcomeRejected}

func outcomeName(o tokens.Outcome) string {
	if o == outcomeRejected {
		return "rejected"
	}
	return o.String()
}

// metrics are the sidecar's Prometheus metrics, served at /metrics on the
// health listener. No label carries a token, a key, a domain, a role or
// any other value a client chooses: every label has a fixed set of values.
type metrics struct {
	// requests counts token requests by type and outcome; it is on the hot
	// path, so it is a fixed array of atomics.
	requests [numTokenTypes][numOutcomes]atomic.Uint64
	zts      ztsMetrics

	// Read at scrape time; set once by Start before serving. Nil: the
	// family has no sample.
	clock     tokens.Clock
	cacheLen  func() int
	refreshes func() (ok, failed uint64)
	identity  func() identity.Status
	ready     *readiness
	skew      *tokens.ClockSkew
}

func newMetrics(clock tokens.Clock) *metrics {
	return &metrics{clock: clock, zts: newZTSMetrics()}
}

// countToken counts one token request.
func (m *metrics) countToken(t tokenType, o tokens.Outcome) {
	if int(o) >= numOutcomes {
		o = tokens.OutcomeError
	}
	m.requests[t][o].Add(1)
}

// Metric family names; docs/operations.md lists them (docs_test.go checks).
const (
	metricTokenRequests        = "athenz_sidecar_token_requests_total"
	metricTokenRefreshes       = "athenz_sidecar_token_refreshes_total"
	metricTokenRefreshFailures = "athenz_sidecar_token_refresh_failures_total"
	metricCacheEntries         = "athenz_sidecar_cache_entries"
	metricZTSRequests          = "athenz_sidecar_zts_requests_total"
	metricZTSDuration          = "athenz_sidecar_zts_request_duration_seconds"
	metricCertExpiresIn        = "athenz_sidecar_identity_certificate_expires_in_seconds"
	metricIdentityRenewals     = "athenz_sidecar_identity_renewals_total"
	metricIdentityFailures     = "athenz_sidecar_identity_renewal_failures_total"
	metricReady                = "athenz_sidecar_ready"
	metricZTSClockSkew         = "athenz_sidecar_zts_clock_skew_seconds"
)

// metricNames lists every family in the order of the exposition.
var metricNames = []string{
	metricTokenRequests, metricTokenRefreshes, metricTokenRefreshFailures, metricCacheEntries,
	metricZTSRequests, metricZTSDuration, metricCertExpiresIn, metricIdentityRenewals, metricIdentityFailures,
	metricReady, metricZTSClockSkew,
}

// appendTo appends the exposition of every metric, in a stable order.
func (m *metrics) appendTo(b []byte) []byte {
	w := promWriter{b: b}
	w.family(metricTokenRequests, "counter", "Token requests answered, by type (ntoken, roletoken, accesstoken, proxy) and outcome (hit, stale, miss, error, rejected).")
	for t := range numTokenTypes {
		for _, o := range outcomeOrder {
			w.sampleUint(metricTokenRequests, m.requests[t][o].Load(), "type", tokenTypeNames[t], "outcome", outcomeName(o))
		}
	}
	var ok, failed uint64
	if m.refreshes != nil {
		ok, failed = m.refreshes()
	}
	w.family(metricTokenRefreshes, "counter", "Background refreshes of cached tokens that succeeded.")
	w.sampleUint(metricTokenRefreshes, ok)
	w.family(metricTokenRefreshFailures, "counter", "Background refreshes of cached tokens that failed (the cached token is served while valid; the refresh is retried with backoff).")
	w.sampleUint(metricTokenRefreshFailures, failed)
	w.family(metricCacheEntries, "gauge", "Tokens in the cache.")
	if m.cacheLen != nil {
		w.sampleUint(metricCacheEntries, uint64(m.cacheLen()))
	}

	m.zts.appendTo(&w)

	var st identity.Status
	if m.identity != nil {
		st = m.identity()
	}
	w.family(metricCertExpiresIn, "gauge", "Seconds until the identity certificate expires; negative once expired, no sample before the first certificate.")
	if !st.ExpiresAt.IsZero() {
		w.sample(metricCertExpiresIn, st.ExpiresAt.Sub(m.clock.Now()).Seconds())
	}
	w.family(metricIdentityRenewals, "counter", "Identity certificates obtained (files mode: loaded) since the sidecar started.")
	w.sampleUint(metricIdentityRenewals, uint64(st.Renewals))
	w.family(metricIdentityFailures, "counter", "Failed attempts to obtain or renew the identity certificate since the sidecar started.")
	w.sampleUint(metricIdentityFailures, uint64(st.FailuresTotal))

	w.family(metricReady, "gauge", "1 when the readiness check passes, by check: running (not shutting down), identity (every credential of the identity is valid now), prefetch (every prefetched token is cached and valid now), tokenfiles (every token file holds a token valid now); /readyz is 200 when all are 1.")
	if m.ready != nil {
		for _, c := range readinessChecks {
			v := uint64(1)
			if m.ready.checkOne(c) != nil {
				v = 0
			}
			w.sampleUint(metricReady, v, "check", c)
		}
	}
	w.family(metricZTSClockSkew, "gauge", "ZTS's clock minus this node's, in seconds, measured from the issue times of what ZTS issues; no sample before the first measurement.")
	if off, ok := m.skew.Offset(); ok {
		w.sample(metricZTSClockSkew, off.Seconds())
	}
	return w.b
}

// serveMetrics answers GET /metrics.
func (h *handler) serveMetrics(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return methodNotAllowed(r.Method, "GET, HEAD")
	}
	body := h.metrics.appendTo(make([]byte, 0, 8<<10))
	w.Header().Set("Content-Type", promContentType)
	w.Header().Set("Cache-Control", "no-store")
	if r.Method == http.MethodHead {
		return nil
	}
	_, _ = w.Write(body)
	return nil
}
