// Command admission measures the injector's admission latency on a real
// kube-apiserver: it creates Pods 100 at a time, concurrently, opted in
// (through the Pod webhook) and not opted in (the webhook's
// matchConditions skip them: the baseline, in the same run), and reads the
// API server's own histogram of the webhook's duration. `make bench` runs
// it and writes the figures into docs/performance.md.
//
// It needs KUBEBUILDER_ASSETS (hack/build-control-plane.sh). Traffic stays
// on 127.0.0.1; every loop is bounded.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/athenz-injector/athenz-injector/api/v1alpha1"
	"github.com/athenz-injector/athenz-injector/pkg/webhook"
	"github.com/athenz-injector/athenz-injector/pkg/webhook/app"
	"github.com/athenz-injector/athenz-injector/pkg/webhook/webhooktest"
	"github.com/athenz-injector/athenz-injector/test/load/report"
)

const (
	injectorNamespace = "athenz-injector"
	benchNamespace    = "bench"
)

func main() {
	concurrency := flag.Int("c", 100, "Pods created at once")
	rounds := flag.Int("rounds", 3, "rounds of each kind, alternating")
	reportFile := flag.String("report", "docs/performance.md", "file whose admission section is rewritten (empty: print only)")
	flag.Parse()
	ctrl.SetLogger(logr.Discard())
	if err := run(*concurrency, *rounds, *reportFile); err != nil {
		fmt.Fprintln(os.Stderr, "admission:", err)
		os.Exit(1)
	}
}

func run(concurrency, rounds int, reportFile string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	scheme, err := app.NewScheme()
	if err != nil {
		return err
	}
	cp, err := webhooktest.Start(webhooktest.Options{Scheme: scheme, Webhooks: true})
	if err != nil {
		return err
	}
	defer cp.Stop()
	// The default client-side rate limit (20 QPS) would measure itself.
	cfg := *cp.Config
	cfg.QPS, cfg.Burst = 10000, 10000
	k8s, err := client.New(&cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	for _, ns := range []string{injectorNamespace, benchNamespace} {
		if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return err
		}
	}
	profile := &v1alpha1.SidecarProfile{
		ObjectMeta: metav1.ObjectMeta{Namespace: benchNamespace, Name: "default"},
		Spec: v1alpha1.SidecarProfileSpec{
			ZTS:      v1alpha1.ZTS{URL: "https://zts.example.com:4443/zts/v1"},
			Identity: v1alpha1.Identity{Provider: "sys.auth.k8s", DNSSuffix: "athenz.example.com"},
			Prefetch: []string{"sports:role.reader"},
		},
	}
	if err := k8s.Create(ctx, profile); err != nil {
		return err
	}

	// The injector runs as its own process, as in a cluster: sharing this
	// process's garbage collector and scheduler with 100 client goroutines
	// would charge their cost to the injector.
	metricsURL, stopInjector, err := startInjector(ctx, cp)
	if err != nil {
		return err
	}
	defer stopInjector()

	// Warm up both paths (TLS connections, caches) before measuring.
	if _, err := createPods(ctx, k8s, "warm-in", 10, true); err != nil {
		return err
	}
	if _, err := createPods(ctx, k8s, "warm-out", 10, false); err != nil {
		return err
	}
	var injected, baseline []time.Duration
	for r := range rounds {
		fmt.Fprintf(os.Stderr, "round %d/%d\n", r+1, rounds)
		d, err := createPods(ctx, k8s, fmt.Sprintf("out-%d", r), concurrency, false)
		if err != nil {
			return err
		}
		baseline = append(baseline, d...)
		d, err = createPods(ctx, k8s, fmt.Sprintf("in-%d", r), concurrency, true)
		if err != nil {
			return err
		}
		injected = append(injected, d...)
	}
	hist, err := webhookHistogram(ctx, &cfg)
	if err != nil {
		return err
	}
	served, err := servedHistogram(ctx, metricsURL)
	if err != nil {
		return err
	}
	md := markdown(concurrency, rounds, injected, baseline, hist, served)
	fmt.Println(md)
	if reportFile != "" {
		return report.WriteSection(reportFile, "admission", md)
	}
	return nil
}

// createPods creates n Pods at once and returns each create's latency as
// the client saw it. Opted-in Pods must come back injected.
func createPods(ctx context.Context, k8s client.Client, prefix string, n int, optIn bool) ([]time.Duration, error) {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		out   = make([]time.Duration, 0, n)
		errs  []error
		start = make(chan struct{})
	)
	for i := range n {
		wg.Go(func() {
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Namespace: benchNamespace, Name: fmt.Sprintf("%s-%d", prefix, i)},
				Spec: corev1.PodSpec{
					ServiceAccountName: "default",
					Containers:         []corev1.Container{{Name: "app", Image: "registry.example.com/web:1.0"}},
				},
			}
			if optIn {
				pod.Annotations = map[string]string{webhook.AnnotationInject: "true"}
			}
			<-start
			t0 := time.Now()
			err := k8s.Create(ctx, pod)
			d := time.Since(t0)
			if err == nil && optIn {
				if _, ok := pod.Annotations[webhook.AnnotationStatus]; !ok {
					err = fmt.Errorf("pod %s was not injected", pod.Name)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			out = append(out, d)
		})
	}
	close(start)
	wg.Wait()
	return out, errors.Join(errs...)
}

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

// startInjector builds cmd/injector and runs it against the control
// plane, serving the webhooks where config/webhook expects them. It returns
// the URL of its /metrics and a function that stops it.
func startInjector(ctx context.Context, cp *webhooktest.ControlPlane) (string, func(), error) {
	root, err := webhooktest.RepoRoot()
	if err != nil {
		return "", nil, err
	}
	dir, err := os.MkdirTemp("", "admission-bench")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	bin := filepath.Join(dir, "injector")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/injector")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("go build ./cmd/injector: %v\n%s", err, out)
	}
	kubeconfig, err := cp.KubeConfig()
	if err != nil {
		cleanup()
		return "", nil, err
	}
	kubeconfigFile := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfigFile, kubeconfig, 0o600); err != nil {
		cleanup()
		return "", nil, err
	}
	health, err := freeAddr()
	if err != nil {
		cleanup()
		return "", nil, err
	}
	metrics, err := freeAddr()
	if err != nil {
		cleanup()
		return "", nil, err
	}
	cmd := exec.Command(bin, "--kubeconfig="+kubeconfigFile, "--namespace="+injectorNamespace,
		fmt.Sprintf("--webhook-port=%d", cp.WebhookPort), "--cert-dir="+cp.CertDir,
		"--metrics-bind-address="+metrics, "--health-probe-bind-address="+health, "--zap-log-level=error")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		cleanup()
		return "", nil, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		cleanup()
	}
	if err := waitReady(ctx, "http://"+health+"/readyz", done); err != nil {
		stop()
		return "", nil, err
	}
	return "http://" + metrics + "/metrics", stop, nil
}

func quantile(d []time.Duration, q float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

func waitReady(ctx context.Context, url string, done <-chan error) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			return fmt.Errorf("injector stopped: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return errors.New("injector not ready after 60 s")
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func markdown(concurrency, rounds int, injected, baseline []time.Duration, apiserver, served histogram) string {
	var b strings.Builder
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/1e6) }
	pct := func(h histogram, le string) string { return fmt.Sprintf("%.1f%%", 100*h.buckets[le]/h.count) }
	fmt.Fprintf(&b, "Run of %s on %d CPUs, %s: %d rounds of %d Pods created at once per kind, alternating, against kube-apiserver v1.37.2 (self-built, etcd 3.6.16); the injector, the API server, etcd and the client share the machine.\n\n",
		time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), runtime.Version(), rounds, concurrency)
	fmt.Fprintf(&b, "| Pod create, as the client sees it | samples | p50 | p99 |\n|---|---|---|---|\n")
	fmt.Fprintf(&b, "| not opted in (the webhook's matchConditions skip it; baseline) | %d | %s | %s |\n", len(baseline), ms(quantile(baseline, 0.5)), ms(quantile(baseline, 0.99)))
	fmt.Fprintf(&b, "| opted in (the Pod webhook injects it) | %d | %s | %s |\n", len(injected), ms(quantile(injected, 0.5)), ms(quantile(injected, 0.99)))
	fmt.Fprintf(&b, "| **opted in / baseline** | | %.2f× | %.2f× |\n\n",
		float64(quantile(injected, 0.5))/float64(quantile(baseline, 0.5)), float64(quantile(injected, 0.99))/float64(quantile(baseline, 0.99)))
	p50, _ := served.quantile(0.5)
	p99, ok := served.quantile(0.99)
	if !ok {
		return b.String() + "The injector's latency metric has no native histogram: no p99."
	}
	fmt.Fprintf(&b, "Time inside the injector per admission of webhook `%s` (`controller_runtime_webhook_latency_seconds`, read from its native histogram, about 10%% resolution; from reading the request to writing the answer):\n\n", webhookName)
	fmt.Fprintf(&b, "| calls | p50 | p99 | target |\n|---|---|---|---|\n")
	verdict := "met"
	if p99 > 0.005 {
		verdict = "NOT met"
	}
	fmt.Fprintf(&b, "| %d | ≤ %.2f ms | **≤ %.2f ms** | p99 under 5 ms: %s |\n\n", int(served.count), p50*1000, p99*1000, verdict)
	fmt.Fprintf(&b, "The API server's measure of the whole webhook call (`apiserver_admission_webhook_admission_duration_seconds`, whose finest buckets are 5, 25 and 100 ms): %s within 5 ms, %s within 25 ms, %s within 100 ms. ",
		pct(apiserver, "0.005"), pct(apiserver, "0.025"), pct(apiserver, "0.1"))
	fmt.Fprintf(&b, "On this machine the API server, etcd, the %d concurrent clients and the injector share %d CPUs, so that figure is mostly the call waiting for CPU (the baseline creates above, which never call the webhook, already take %s at p50). ",
		concurrency, runtime.NumCPU(), ms(quantile(baseline, 0.5)))
	fmt.Fprintf(&b, "Inside the injector too, the creates arrive as a burst: each admission's time includes waiting for the CPU the others use, so the p99 is closer to the burst's total work divided by the CPUs (an estimate: %d × %.2f ms / %d ≈ %.1f ms) than to one admission's p50.",
		concurrency, p50*1000, runtime.NumCPU(), float64(concurrency)*p50*1000/float64(runtime.NumCPU()))
	return b.String()
}

func parseFloat(s string) float64 {
	f, _ := strconv.ParseFloat(s, 64)
	return f
}
