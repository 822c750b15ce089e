package sidecar

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ztsEndpoint is the "endpoint" label of the ZTS metrics.
type ztsEndpoint uint8

const (
	ztsRoleToken ztsEndpoint = iota
	ztsAccessToken
	ztsInstanceRegister
	ztsInstanceRefresh
	ztsKeyRefresh
	ztsRoleCert
	ztsOther
	numZTSEndpoints
)

var ztsEndpointNames = [numZTSEndpoints]string{
	"roletoken", "accesstoken", "instance_register", "instance_refresh", "key_refresh", "rolecert", "other",
}

// ztsBuckets are the upper bounds, in seconds, of the ZTS latency
// histogram: from a fast answer on the same network to ATHENZ_ZTS_TIMEOUT's
// default (10 s) and beyond.
var ztsBuckets = [...]float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// ztsMetrics counts calls to ZTS by endpoint and result, with their
// latency. ZTS calls are rare (misses, refreshes, renewals), so a mutex is
// cheap enough.
type ztsMetrics struct {
	mu    sync.Mutex // guards the fields below
	calls map[ztsCallKey]uint64
	hist  [numZTSEndpoints]ztsHistogram
}

type ztsCallKey struct {
	ep   ztsEndpoint
	code string
}

type ztsHistogram struct {
	counts [len(ztsBuckets) + 1]uint64 // per bucket, not cumulative; the last is +Inf
	sum    time.Duration
}

func newZTSMetrics() ztsMetrics { return ztsMetrics{calls: map[ztsCallKey]uint64{}} }

func (z *ztsMetrics) observe(ep ztsEndpoint, code string, d time.Duration) {
	secs := d.Seconds()
	i, _ := slices.BinarySearch(ztsBuckets[:], secs) // le: the first bound >= secs
	z.mu.Lock()
	defer z.mu.Unlock()
	z.calls[ztsCallKey{ep, code}]++
	z.hist[ep].counts[i]++
	z.hist[ep].sum += d
}

func (z *ztsMetrics) appendTo(w *promWriter) {
	z.mu.Lock()
	defer z.mu.Unlock()
	keys := make([]ztsCallKey, 0, len(z.calls))
	for k := range z.calls {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b ztsCallKey) int {
		if a.ep != b.ep {
			return int(a.ep) - int(b.ep)
		}
		return strings.Compare(a.code, b.code)
	})
	w.family(metricZTSRequests, "counter", "Calls to ZTS by endpoint and code: the HTTP status, or timeout, tls, connection or canceled when there was no answer.")
	for _, k := range keys {
		w.sampleUint(metricZTSRequests, z.calls[k], "endpoint", ztsEndpointNames[k.ep], "code", k.code)
	}
	w.family(metricZTSDuration, "histogram", "Latency of calls to ZTS until the answer's headers (or the failure), by endpoint.")
	for ep := range numZTSEndpoints {
		h := &z.hist[ep]
		var total uint64
		for _, c := range h.counts {
			total += c
		}
		if total == 0 {
			continue
		}
		name := ztsEndpointNames[ep]
		var cum uint64
		for i, bound := range ztsBuckets {
			cum += h.counts[i]
			w.sampleUint(metricZTSDuration+"_bucket", cum, "endpoint", name, "le", strconv.FormatFloat(bound, 'g', -1, 64))
		}
		w.sampleUint(metricZTSDuration+"_bucket", total, "endpoint", name, "le", "+Inf")
		w.sample(metricZTSDuration+"_sum", h.sum.Seconds(), "endpoint", name)
		w.sampleUint(metricZTSDuration+"_count", total, "endpoint", name)
	}
}

// observeTransport returns a function that wraps a transport to ZTS so
// that each call is counted and timed. basePath is the path of the ZTS
// base URL (/zts/v1), which is stripped before the endpoint is named.
func (z *ztsMetrics) observeTransport(basePath string) func(http.RoundTripper) http.RoundTripper {
	basePath = strings.TrimSuffix(basePath, "/")
	return func(base http.RoundTripper) http.RoundTripper {
		return observedTransport{base: base, zts: z, basePath: basePath}
	}
}

// observedTransport counts and times the calls it carries. The latency
// runs until the answer's headers: ZTS answers are small.
type observedTransport struct {
	base     http.RoundTripper
	zts      *ztsMetrics
	basePath string
}

func (t observedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	res, err := t.base.RoundTrip(req)
	d := time.Since(start)
	ep := classifyZTS(req.Method, strings.TrimPrefix(req.URL.Path, t.basePath))
	t.zts.observe(ep, ztsCode(res, err), d)
	return res, err
}

// classifyZTS names the ZTS operation of a request by method and path (the
// part after the base URL's path).
func classifyZTS(method, path string) ztsEndpoint {
	seg := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case method == http.MethodGet && len(seg) == 3 && seg[0] == "domain" && seg[2] == "token":
		return ztsRoleToken
	case method == http.MethodPost && len(seg) == 2 && seg[0] == "oauth2" && seg[1] == "token":
		return ztsAccessToken
	case method == http.MethodPost && len(seg) == 1 && seg[0] == "instance":
		return ztsInstanceRegister
	case method == http.MethodPost && len(seg) == 4 && seg[0] == "instance" && seg[3] == "refresh":
		return ztsKeyRefresh
	case method == http.MethodPost && len(seg) == 5 && seg[0] == "instance":
		return ztsInstanceRefresh
	case method == http.MethodPost && len(seg) == 1 && seg[0] == "rolecert":
		return ztsRoleCert
	}
	return ztsOther
}

// ztsCode is the "code" label: the HTTP status of an answer, or what kept
// the call from getting one.
func ztsCode(res *http.Response, err error) string {
	if err == nil {
		if res.StatusCode < 100 || res.StatusCode > 599 {
			return "other"
		}
		return strconv.Itoa(res.StatusCode)
	}
	var (
		ne        net.Error
		unknownCA x509.UnknownAuthorityError
		invalid   x509.CertificateInvalidError
		hostname  x509.HostnameError
		verify    *tls.CertificateVerificationError
		record    tls.RecordHeaderError
		alert     tls.AlertError
	)
	switch {
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.As(err, &verify), errors.As(err, &unknownCA), errors.As(err, &invalid), errors.As(err, &hostname),
		errors.As(err, &record), errors.As(err, &alert):
		return "tls"
	}
	return "connection"
}
