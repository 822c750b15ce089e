package sidecar

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/athenz-injector/athenz-injector/pkg/tokens"
	"github.com/athenz-injector/athenz-injector/pkg/tokens/ztsfake"
)

// scrape GETs /metrics from the health listener and parses it with
// Prometheus' own text parser.
func scrape(t *testing.T, f *fixture) (map[string]*dto.MetricFamily, []byte) {
	t.Helper()
	r := do(t, nil, "GET", f.health+"/metrics", "", "", nil)
	if r.status != http.StatusOK {
		t.Fatalf("GET /metrics = %d %s, want 200", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != promContentType {
		t.Errorf("GET /metrics Content-Type %q, want %q", ct, promContentType)
	}
	return parseMetrics(t, r.body), r.body
}

func parseMetrics(t *testing.T, body []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v\n%s", err, body)
	}
	return fams
}

// metricValue returns the value of the sample of family name whose labels
// include labels (name, value pairs); ok is false when there is none.
func metricValue(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	mf := fams[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// TestMetrics: after a mix of requests, /metrics on the health listener
// parses as Prometheus text, counts each request once by type and
// outcome, counts ZTS calls by endpoint and status with their latency, and
// carries no label a client chose.
func TestMetrics(t *testing.T) {
	clock := tokens.NewFakeClock(time.Now())
	zts := ztsfake.NewTest(t, ztsfake.Options{KeyType: "ec", Now: clock.Now})
	zts.Grant("prov", "reader", testDomain+"."+testService)
	zts.AddDomain("secret")
	upstream, _ := countingEcho(t)
	f := startSidecar(t, zts, nil, func(c *Config) { c.Clock = clock })
	api := strings.TrimPrefix(f.api, "http://")

	requests := []struct {
		method, path, body string
		proxy              bool
		header             http.Header
		want               int
	}{
		{method: "GET", path: "/ntoken", want: 200},
		{method: "GET", path: "/roletoken?domain=prov&role=reader", want: 200},                                                                        // miss
		{method: "POST", path: "/roletoken", body: `{"domain":"prov","role":"reader"}`, want: 200},                                                    // hit
		{method: "POST", path: "/roletoken", body: `{"domain":"secret","role":"reader"}`, want: 403},                                                  // ZTS 403: error
		{method: "POST", path: "/roletoken", body: `{"domain":"bad domain"}`, want: 400},                                                              // rejected
		{method: "POST", path: "/accesstoken", body: `{"domain":"prov","role":"reader"}`, want: 200},                                                  // miss
		{method: "POST", path: "/access-token", body: `{"domain":"prov","role":"reader"}`, want: 200},                                                 // hit
		{method: "PUT", path: "/accesstoken", want: 405},                                                                                              // rejected
		{method: "GET", path: upstream.URL + "/x", proxy: true, want: 200},                                                                            // n-token: hit
		{method: "GET", path: upstream.URL + "/x", proxy: true, header: http.Header{"Athenz-Domain": {"prov"}, "Athenz-Role": {"reader"}}, want: 200}, // role token: hit
		{method: "GET", path: upstream.URL + "/x", proxy: true, header: http.Header{"Athenz-Role": {"reader"}}, want: 400},                            // rejected
	}
	for _, rq := range requests {
		var client *http.Client
		url := f.api + rq.path
		if rq.proxy {
			client, url = proxyClient(t, api, ""), rq.path
		}
		ct := ""
		if rq.body != "" {
			ct = "application/json"
		}
		if r := do(t, client, rq.method, url, ct, rq.body, rq.header); r.status != rq.want {
			t.Fatalf("%s %s = %d %s, want %d", rq.method, rq.path, r.status, r.body, rq.want)
		}
	}

	fams, body := scrape(t, f)
	for _, name := range metricNames {
		if name == metricZTSDuration || name == metricZTSRequests {
			continue // checked below
		}
		if fams[name] == nil {
			t.Errorf("/metrics has no %s", name)
		}
	}
	wantTypes := map[string]dto.MetricType{
		metricTokenRequests: dto.MetricType_COUNTER, metricTokenRefreshes: dto.MetricType_COUNTER,
		metricTokenRefreshFailures: dto.MetricType_COUNTER, metricCacheEntries: dto.MetricType_GAUGE,
		metricZTSRequests: dto.MetricType_COUNTER, metricZTSDuration: dto.MetricType_HISTOGRAM,
		metricCertExpiresIn: dto.MetricType_GAUGE, metricIdentityRenewals: dto.MetricType_COUNTER,
		metricIdentityFailures: dto.MetricType_COUNTER,
	}
	for name, typ := range wantTypes {
		if mf := fams[name]; mf != nil && mf.GetType() != typ {
			t.Errorf("%s has type %v, want %v", name, mf.GetType(), typ)
		}
	}

	wantCounts := []struct {
		name   string
		labels []string
		want   float64
	}{
		{metricTokenRequests, []string{"type", "ntoken", "outcome", "hit"}, 1},
		{metricTokenRequests, []string{"type", "roletoken", "outcome", "miss"}, 1},
		{metricTokenRequests, []string{"type", "roletoken", "outcome", "hit"}, 1},
		{metricTokenRequests, []string{"type", "roletoken", "outcome", "error"}, 1},
		{metricTokenRequests, []string{"type", "roletoken", "outcome", "rejected"}, 1},
		{metricTokenRequests, []string{"type", "roletoken", "outcome", "stale"}, 0},
		{metricTokenRequests, []string{"type", "accesstoken", "outcome", "miss"}, 1},
		{metricTokenRequests, []string{"type", "accesstoken", "outcome", "hit"}, 1},
		{metricTokenRequests, []string{"type", "accesstoken", "outcome", "rejected"}, 1},
		{metricTokenRequests, []string{"type", "proxy", "outcome", "hit"}, 2},
		{metricTokenRequests, []string{"type", "proxy", "outcome", "rejected"}, 1},
		{metricZTSRequests, []string{"endpoint", "roletoken", "code", "200"}, 1},
		{metricZTSRequests, []string{"endpoint", "roletoken", "code", "403"}, 1},
		{metricZTSRequests, []string{"endpoint", "accesstoken", "code", "200"}, 1},
		{metricZTSRequests, []string{"endpoint", "key_refresh", "code", "200"}, 1},
		{metricZTSDuration, []string{"endpoint", "roletoken"}, 2},
		{metricZTSDuration, []string{"endpoint", "accesstoken"}, 1},
		{metricCacheEntries, nil, 3}, // the refused key stays for the negative-cache TTL
		{metricIdentityRenewals, nil, 1},
		{metricIdentityFailures, nil, 0},
		{metricTokenRefreshes, nil, 0},
	}
	for _, w := range wantCounts {
		got, ok := metricValue(fams, w.name, w.labels...)
		if !ok || got != w.want {
			t.Errorf("%s%v = %v (present: %v), want %v", w.name, w.labels, got, ok, w.want)
		}
	}
	// The fake's 1 h certificate, on the fake clock (NotAfter has whole
	// seconds).
	if got, _ := metricValue(fams, metricCertExpiresIn); got <= 3599 || got > 3600 {
		t.Errorf("%s = %v, want about 3600", metricCertExpiresIn, got)
	}

	// Labels take values from fixed sets only: no domain, role, token.
	allowed := map[string]*regexp.Regexp{
		"type":     regexp.MustCompile(`^(ntoken|roletoken|accesstoken|proxy)$`),
		"outcome":  regexp.MustCompile(`^(hit|stale|miss|error|rejected)$`),
		"endpoint": regexp.MustCompile(`^(roletoken|accesstoken|instance_register|instance_refresh|key_refresh|rolecert|other)$`),
		"code":     regexp.MustCompile(`^([1-5][0-9][0-9]|timeout|tls|connection|canceled|other)$`),
		"le":       regexp.MustCompile(`^([0-9.]+|\+Inf)$`),
		"check":    regexp.MustCompile(`^(running|identity|prefetch|tokenfiles)$`),
	}
	for name, mf := range fams {
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				re := allowed[lp.GetName()]
				if re == nil || !re.MatchString(lp.GetValue()) {
					t.Errorf("%s has label %s=%q, not one of a fixed set", name, lp.GetName(), lp.GetValue())
				}
			}
		}
	}
	for _, s := range []string{"prov", "secret", "reader", "v=S1", "v=Z1", "eyJ", testDomain + "." + testService} {
		if bytes.Contains(body, []byte(s)) {
			t.Errorf("/metrics contains %q", s)
		}
	}

	// Stable: with nothing happening in between (fake clock), two scrapes
	// are the same bytes.
	if _, again := scrape(t, f); !bytes.Equal(again, body) {
		t.Errorf("two scrapes differ:\n%s\n---\n%s", body, again)
	}
	if r := do(t, nil, "HEAD", f.health+"/metrics", "", "", nil); r.status != 200 || len(r.body) != 0 {
		t.Errorf("HEAD /metrics = %d with %d bytes, want 200 and no body", r.status, len(r.body))
	}
	if r := do(t, nil, "POST", f.health+"/metrics", "", "", nil); r.status != http.StatusMethodNotAllowed {
		t.Errorf("POST /metrics = %d, want 405", r.status)
	}
	if r := do(t, nil, "GET", f.api+"/metrics", "", "", nil); r.status != http.StatusNotFound {
		t.Errorf("GET /metrics on the token API listener = %d, want 404 (metrics are on the health listener)", r.status)
	}
}

// TestMetricsCopperArgos: the identity's own calls (register, refresh,
// role certificates) are counted, and the certificate's remaining
// lifetime follows the clock.
func TestMetricsCopperArgos(t *testing.T) {
	clock := tokens.NewFakeClock(time.Now())
	zts := ztsfake.NewTest(t, ztsfake.Options{KeyType: "ec", Now: clock.Now, CertLifetime: 10 * time.Minute})
	zts.Grant("prov", "reader", testDomain+"."+testService)
	env, _ := copperArgosEnv(t, zts)
	f := startWithEnv(t, zts, append([]string{"ATHENZ_ROLE_CERTS=prov:role.reader"}, env...), nil, func(c *Config) { c.Clock = clock })
	waitReady(t, f)
	fams, _ := scrape(t, f)
	for _, w := range []struct {
		labels []string
		want   float64
	}{
		{[]string{"endpoint", "instance_register", "code", "201"}, 1},
		{[]string{"endpoint", "rolecert", "code", "200"}, 1},
	} {
		if got, _ := metricValue(fams, metricZTSRequests, w.labels...); got != w.want {
			t.Errorf("%s%v = %v, want %v", metricZTSRequests, w.labels, got, w.want)
		}
	}
	first, _ := metricValue(fams, metricCertExpiresIn)
	if first <= 599 || first > 600 {
		t.Errorf("%s = %v, want about 600 (a 10 min certificate, fake clock)", metricCertExpiresIn, first)
	}
	clock.Advance(2 * time.Minute)
	fams, _ = scrape(t, f)
	if got, _ := metricValue(fams, metricCertExpiresIn); math.Abs(got-(first-120)) > 1e-6 {
		t.Errorf("%s after 2 min = %v, want %v", metricCertExpiresIn, got, first-120)
	}
}

func TestPromWriter(t *testing.T) {
	var w promWriter
	w.family("x_total", "counter", "Help with a \\ and a\nnewline.")
	w.sampleUint("x_total", 18446744073709551615, "a", `quote " backslash \ newline`+"\n", "b", "plain")
	w.family("y", "gauge", "A gauge.")
	w.sample("y", -1.5)
	w.sample("y", 1e21, "k", "big")
	fams := parseMetrics(t, w.b)
	x := fams["x_total"]
	if x == nil || len(x.GetMetric()) != 1 {
		t.Fatalf("parsed %v, want x_total with one sample\n%s", fams, w.b)
	}
	if got := x.GetHelp(); got != "Help with a \\ and a\nnewline." {
		t.Errorf("HELP round trip = %q", got)
	}
	if got := x.GetMetric()[0].GetLabel()[0].GetValue(); got != `quote " backslash \ newline`+"\n" {
		t.Errorf("label value round trip = %q", got)
	}
	if got := x.GetMetric()[0].GetCounter().GetValue(); got != 18446744073709551615 {
		t.Errorf("counter = %v", got)
	}
	if got, _ := metricValue(fams, "y", "k", "big"); got != 1e21 {
		t.Errorf("y{k=big} = %v, want 1e21", got)
	}
}

func TestClassifyZTS(t *testing.T) {
	tests := []struct {
		method, path string
		want         ztsEndpoint
	}{
		{"GET", "/domain/prov/token", ztsRoleToken},
		{"POST", "/oauth2/token", ztsAccessToken},
		{"POST", "/instance", ztsInstanceRegister},
		{"POST", "/instance/sys.auth.k8s/client/api/0f1e2d3c", ztsInstanceRefresh},
		{"POST", "/instance/client/api/refresh", ztsKeyRefresh},
		{"POST", "/rolecert", ztsRoleCert},
		{"GET", "/oauth2/keys", ztsOther},
		{"GET", "/instance", ztsOther},
		{"DELETE", "/instance/p/d/s/id", ztsOther},
		{"GET", "/domain/prov/token/extra", ztsOther},
	}
	for _, tt := range tests {
		if got := classifyZTS(tt.method, tt.path); got != tt.want {
			t.Errorf("classifyZTS(%s, %s) = %s, want %s", tt.method, tt.path, ztsEndpointNames[got], ztsEndpointNames[tt.want])
		}
	}
}

func TestZTSCode(t *testing.T) {
	timeout := &net.OpError{Op: "dial", Err: timeoutError{}}
	tests := []struct {
		name string
		res  *http.Response
		err  error
		want string
	}{
		{"answer", &http.Response{StatusCode: 503}, nil, "503"},
		{"odd status", &http.Response{StatusCode: 999}, nil, "other"},
		{"deadline", nil, fmt.Errorf("get: %w", context.DeadlineExceeded), "timeout"},
		{"net timeout", nil, timeout, "timeout"},
		{"canceled", nil, context.Canceled, "canceled"},
		{"unknown CA", nil, &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}, "tls"},
		{"alert", nil, tls.AlertError(42), "tls"},
		{"refused", nil, &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, "connection"},
		{"reset", nil, fmt.Errorf("read: %w", syscall.ECONNRESET), "connection"},
		{"other", nil, errors.New("signing n-token: no key"), "connection"},
	}
	for _, tt := range tests {
		if got := ztsCode(tt.res, tt.err); got != tt.want {
			t.Errorf("%s: ztsCode = %q, want %q", tt.name, got, tt.want)
		}
	}
	if !slices.IsSorted(ztsBuckets[:]) {
		t.Errorf("ztsBuckets %v are not sorted", ztsBuckets)
	}
}

type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// TestReadinessAndSkewMetrics: athenz_sidecar_ready says which readiness
// check fails (here the prefetch, refused by ZTS), and the clock skew
// appears once a token came from ZTS.
func TestReadinessAndSkewMetrics(t *testing.T) {
	zts := newZTS(t)
	f := startSidecar(t, zts, []string{"ATHENZ_PREFETCH=secret:role.reader"}, nil)
	fams, _ := scrape(t, f)
	for check, want := range map[string]float64{checkRunning: 1, checkIdentity: 1, checkPrefetch: 0, checkTokenFiles: 1} {
		if got, ok := metricValue(fams, metricReady, "check", check); !ok || got != want {
			t.Errorf("%s{check=%q} = %v (present: %v), want %v", metricReady, check, got, ok, want)
		}
	}
	if _, ok := metricValue(fams, metricZTSClockSkew); ok {
		t.Errorf("%s has a sample before any token came from ZTS", metricZTSClockSkew)
	}
	if r := do(t, nil, "GET", f.api+"/roletoken?domain=prov&role=reader", "", "", nil); r.status != http.StatusOK {
		t.Fatalf("role token: %d %s", r.status, r.body)
	}
	fams, _ = scrape(t, f)
	if got, ok := metricValue(fams, metricZTSClockSkew); !ok || got < -2 || got > 2 {
		t.Errorf("%s = %v (present: %v), want about 0 with the fake's clock", metricZTSClockSkew, got, ok)
	}
}
