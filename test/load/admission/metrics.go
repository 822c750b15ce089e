package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/athenz-injector/athenz-injector/pkg/webhook"
)

// webhookName is the Pod webhook entry of config/webhook that opted-in
// Pods go through.
const webhookName = "pods.injector.athenz.io"

// histogram is the API server's own
// apiserver_admission_webhook_admission_duration_seconds for webhookName:
// cumulative counts by upper bound ("le"), all operations together.
type histogram struct {
	buckets map[string]float64
	count   float64
	// native holds the native-histogram buckets (upper bound in seconds,
	// count), when the metric has them: much finer than the classic ones.
	native []nativeBucket
}

type nativeBucket struct{ upper, count float64 }

// quantile returns the upper bound of the native bucket holding quantile q.
func (h histogram) quantile(q float64) (float64, bool) {
	if len(h.native) == 0 {
		return 0, false
	}
	var total float64
	for _, b := range h.native {
		total += b.count
	}
	var seen float64
	for _, b := range h.native {
		seen += b.count
		if seen >= q*total {
			return b.upper, true
		}
	}
	return h.native[len(h.native)-1].upper, true
}

// webhookHistogram reads the API server's /metrics.
func webhookHistogram(ctx context.Context, cfg *rest.Config) (histogram, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return histogram{}, err
	}
	raw, err := cs.RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return histogram{}, fmt.Errorf("reading the API server's /metrics: %w", err)
	}
	h := histogram{buckets: map[string]float64{}}
	const metric = "apiserver_admission_webhook_admission_duration_seconds"
	for line := range strings.SplitSeq(string(raw), "\n") {
		if !strings.Contains(line, `name="`+webhookName+`"`) || !strings.Contains(line, `type="admit"`) {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 2 {
			continue
		}
		v, err := strconv.ParseFloat(fields[1], 64)
		if err != nil {
			continue
		}
		switch {
		case strings.HasPrefix(line, metric+"_bucket{"):
			le := label(line, "le")
			h.buckets[le] += v
		case strings.HasPrefix(line, metric+"_count{"):
			h.count += v
		}
	}
	if h.count == 0 {
		return h, fmt.Errorf("the API server's /metrics has no %s for %s", metric, webhookName)
	}
	return h, nil
}

// servedHistogram is controller-runtime's
// controller_runtime_webhook_latency_seconds for /mutate-pods, read from
// the injector's /metrics in the protobuf format, which carries the native
// histogram: the injector's own time from reading the request to writing
// the answer.
func servedHistogram(ctx context.Context, metricsURL string) (histogram, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, metricsURL, nil)
	req.Header.Set("Accept", string(expfmt.NewFormat(expfmt.TypeProtoDelim)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return histogram{}, fmt.Errorf("reading the injector's metrics: %w", err)
	}
	defer resp.Body.Close()
	dec := expfmt.NewDecoder(resp.Body, expfmt.ResponseFormat(resp.Header))
	var mfs []*dto.MetricFamily
	for {
		mf := &dto.MetricFamily{}
		if err := dec.Decode(mf); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return histogram{}, fmt.Errorf("decoding the injector's metrics: %w", err)
		}
		mfs = append(mfs, mf)
	}
	h := histogram{buckets: map[string]float64{}}
	for _, mf := range mfs {
		if mf.GetName() != "controller_runtime_webhook_latency_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var path string
			for _, l := range m.GetLabel() {
				if l.GetName() == "webhook" {
					path = l.GetValue()
				}
			}
			if path != webhook.PathPods {
				continue
			}
			hg := m.GetHistogram()
			h.count += float64(hg.GetSampleCount())
			// Native buckets: bucket i covers (base^(i-1), base^i] with
			// base = 2^(2^-schema); spans give the indexes, deltas the
			// counts (each the difference from the previous bucket's).
			base := math.Pow(2, math.Pow(2, -float64(hg.GetSchema())))
			idx, count, d := int32(0), int64(0), 0
			for si, span := range hg.GetPositiveSpan() {
				if si == 0 {
					idx = span.GetOffset()
				} else {
					idx += span.GetOffset()
				}
				for range span.GetLength() {
					count += hg.GetPositiveDelta()[d]
					d++
					h.native = append(h.native, nativeBucket{upper: math.Pow(base, float64(idx)), count: float64(count)})
					idx++
				}
			}
			for _, bk := range hg.GetBucket() {
				h.buckets[strconv.FormatFloat(bk.GetUpperBound(), 'g', -1, 64)] += float64(bk.GetCumulativeCount())
			}
		}
	}
	if h.count == 0 {
		return h, errors.New("no controller_runtime_webhook_latency_seconds for " + webhook.PathPods)
	}
	return h, nil
}

func label(line, name string) string {
	_, rest, ok := strings.Cut(line, name+`="`)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, `"`)
	return v
}
