// Command admission measures the injector's admission latency on a real
// kube-apiserver: it creates Pods 100 at a time, concurrently, opted in
// (through the Pod webhook) and not opted in (the webhook's
// matchConditions skip them: the baseline, in the same run), and reads the
// injector's and the API server's own histograms of the webhook's
// duration. `make bench` runs it and writes the figures into
// docs/performance.md.
//
// It measures two placements of the processes on this machine's CPUs,
// each with its own control plane and injector:
//
//   - own CPU: the injector on one CPU, the API server, etcd and this
//     client on the others. In a cluster the injector runs in its own Pod,
//     on a node the control plane does not share, so this is the figure
//     the target is judged on.
//   - shared: everything on every CPU, so each admission also waits for
//     the CPU that the API server, etcd and the 100 clients use.
//
// It needs KUBEBUILDER_ASSETS (hack/build-control-plane.sh). Traffic stays
// on 127.0.0.1; every loop is bounded.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/athenz-injector/athenz-injector/api/v1alpha1"
	"github.com/athenz-injector/athenz-injector/pkg/webhook"
	"github.com/athenz-injector/athenz-injector/pkg/webhook/app"
	"github.com/athenz-injector/athenz-injector/pkg/webhook/webhooktest"
	"github.com/athenz-injector/athenz-injector/test/load/proc"
	"github.com/athenz-injector/athenz-injector/test/load/report"
)

const (
	injectorNamespace = "athenz-injector"
	benchNamespace    = "bench"
	// targetP99 is issue 6's target for the time inside the injector.
	targetP99 = 5 * time.Millisecond
)

func main() {
	concurrency := flag.Int("c", 100, "Pods created at once")
	rounds := flag.Int("rounds", 5, "rounds of each kind, alternating")
	reportFile := flag.String("report", "docs/performance.md", "file whose admission section is rewritten (empty: print only)")
	var bare bareFlags
	flag.StringVar(&bare.addr, "serve-bare", "", "serve the bare webhook on this address instead (the harness starts itself so)")
	flag.StringVar(&bare.health, "bare-health", "", "the bare webhook's health address")
	flag.StringVar(&bare.certDir, "bare-cert-dir", "", "the bare webhook's serving certificate directory")
	flag.StringVar(&bare.patchFile, "bare-patch", "", "the bare webhook's JSON patch")
	flag.Parse()
	if bare.addr != "" {
		if err := serveBare(bare); err != nil {
			fmt.Fprintln(os.Stderr, "bare webhook:", err)
			os.Exit(1)
		}
		return
	}
	ctrl.SetLogger(logr.Discard())
	if err := run(*concurrency, *rounds, *reportFile); err != nil {
		fmt.Fprintln(os.Stderr, "admission:", err)
		os.Exit(1)
	}
}

// placement says which CPUs the webhook server and the rest run on; nil
// means every CPU this harness may use.
type placement struct {
	name             string
	injector, others []int
}

// server is the webhook server a measurement runs: the injector, or the
// bare webhook (bare.go), its baseline.
type server string

const (
	serverInjector server = "injector"
	serverBare     server = "bare webhook"
)

// result is what one measurement found.
type result struct {
	placement
	server server
	// where is the placement as the kernel reported it during the run.
	where              string
	injected, baseline []time.Duration
	// inside is the injector's histogram of its own time per admission
	// (none for the bare webhook); call is the API server's of the whole
	// webhook call.
	inside, call histogram
}

func run(concurrency, rounds int, reportFile string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	placements := []placement{{name: "shared"}}
	cpus, err := proc.AllowedCPUs()
	switch {
	case err != nil:
		fmt.Fprintln(os.Stderr, "admission: measuring the shared placement only:", err)
	case len(cpus) < 2:
		fmt.Fprintln(os.Stderr, "admission: measuring the shared placement only: one CPU")
	default:
		last := len(cpus) - 1
		placements = append([]placement{{name: "own CPU", injector: cpus[last:], others: cpus[:last]}}, placements...)
	}
	var results []result
	for _, p := range placements {
		for _, s := range []server{serverBare, serverInjector} {
			fmt.Fprintf(os.Stderr, "== %s, placement %q\n", s, p.name)
			r, err := measure(ctx, p, s, concurrency, rounds)
			if err != nil {
				return fmt.Errorf("%s, placement %q: %w", s, p.name, err)
			}
			results = append(results, r)
		}
	}
	md := markdown(concurrency, rounds, results)
	fmt.Println(md)
	if reportFile != "" {
		return report.WriteSection(reportFile, "admission", md)
	}
	return nil
}

// measure starts a control plane and the webhook server s placed as p
// says, and runs the rounds.
func measure(ctx context.Context, p placement, s server, concurrency, rounds int) (res result, err error) {
	res.placement, res.server = p, s
	if p.others != nil {
		// Children inherit the mask: the control plane started below runs
		// on p.others, as does this harness's client.
		if err := proc.PinSelf(p.others); err != nil {
			return res, err
		}
		defer func() {
			if perr := proc.PinSelf(slices.Concat(p.others, p.injector)); perr != nil && err == nil {
				err = perr
			}
		}()
	}
	scheme, err := app.NewScheme()
	if err != nil {
		return res, err
	}
	cp, err := webhooktest.Start(webhooktest.Options{Scheme: scheme, Webhooks: true})
	if err != nil {
		return res, err
	}
	defer func() {
		if serr := cp.Stop(); serr != nil && err == nil {
			err = fmt.Errorf("stopping the control plane: %w", serr)
		}
	}()
	// The default client-side rate limit (20 QPS) would measure itself.
	cfg := *cp.Config
	cfg.QPS, cfg.Burst = 10000, 10000
	k8s, err := client.New(&cfg, client.Options{Scheme: scheme})
	if err != nil {
		return res, err
	}
	for _, ns := range []string{injectorNamespace, benchNamespace} {
		if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return res, err
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
		return res, err
	}

	// The server runs as its own process, as in a cluster: sharing this
	// process's garbage collector and scheduler with 100 client goroutines
	// would charge their cost to it.
	var metricsURL string
	switch s {
	case serverInjector:
		var stop func()
		metricsURL, stop, err = startInjector(ctx, cp, p.injector)
		if err != nil {
			return res, err
		}
		defer stop()
	case serverBare:
		patch, err := barePatch(ctx, k8s, profile)
		if err != nil {
			return res, err
		}
		stop, err := startBare(ctx, cp, patch, p.injector)
		if err != nil {
			return res, err
		}
		defer stop()
	}
	res.where = proc.Where("kube-apiserver", "etcd", "injector", filepath.Base(os.Args[0]))

	// Warm up both paths (TLS connections, caches) before measuring.
	if _, err := createPods(ctx, k8s, "warm-in", 10, true); err != nil {
		return res, err
	}
	if _, err := createPods(ctx, k8s, "warm-out", 10, false); err != nil {
		return res, err
	}
	for r := range rounds {
		fmt.Fprintf(os.Stderr, "round %d/%d\n", r+1, rounds)
		d, err := createPods(ctx, k8s, fmt.Sprintf("out-%d", r), concurrency, false)
		if err != nil {
			return res, err
		}
		res.baseline = append(res.baseline, d...)
		d, err = createPods(ctx, k8s, fmt.Sprintf("in-%d", r), concurrency, true)
		if err != nil {
			return res, err
		}
		res.injected = append(res.injected, d...)
	}
	if res.call, err = webhookHistogram(ctx, &cfg); err != nil {
		return res, err
	}
	if metricsURL != "" {
		if res.inside, err = servedHistogram(ctx, metricsURL); err != nil {
			return res, err
		}
	}
	return res, nil
}

// benchPod is a Pod the harness creates; opted in, the webhook injects it.
func benchPod(name string, optIn bool) *corev1.Pod {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: benchNamespace, Name: name},
		Spec: corev1.PodSpec{
			ServiceAccountName: "default",
			Containers:         []corev1.Container{{Name: "app", Image: "registry.example.com/web:1.0"}},
		},
	}
	if optIn {
		pod.Annotations = map[string]string{webhook.AnnotationInject: "true"}
	}
	return pod
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
			pod := benchPod(fmt.Sprintf("%s-%d", prefix, i), optIn)
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

// startInjector builds cmd/injector and runs it against the control
// plane, serving the webhooks where config/webhook expects them, on cpus
// (nil: any). It returns the URL of its /metrics and a function that stops
// it.
func startInjector(ctx context.Context, cp *webhooktest.ControlPlane, cpus []int) (string, func(), error) {
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
	health, err := proc.FreeAddr()
	if err != nil {
		cleanup()
		return "", nil, err
	}
	metrics, err := proc.FreeAddr()
	if err != nil {
		cleanup()
		return "", nil, err
	}
	cmd := exec.Command(bin, "--kubeconfig="+kubeconfigFile, "--namespace="+injectorNamespace,
		fmt.Sprintf("--webhook-port=%d", cp.WebhookPort), "--cert-dir="+cp.CertDir,
		"--metrics-bind-address="+metrics, "--health-probe-bind-address="+health, "--zap-log-level=error")
	stop, err := startProcess(ctx, cmd, cpus, "http://"+health+"/readyz")
	if err != nil {
		cleanup()
		return "", nil, err
	}
	return "http://" + metrics + "/metrics", func() { stop(); cleanup() }, nil
}

// startProcess starts cmd on cpus (nil: any) and waits until readyURL
// answers 200. The returned function stops the process: SIGINT, then
// SIGKILL after 10 s.
func startProcess(ctx context.Context, cmd *exec.Cmd, cpus []int, readyURL string) (func(), error) {
	cmd.Stderr = os.Stderr
	var err error
	if cpus != nil {
		err = proc.StartPinned(cmd, cpus)
	} else {
		err = cmd.Start()
	}
	if err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Signal(os.Interrupt)
		var err error
		select {
		case err = <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			err = <-done
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "admission: %s exited: %v\n", filepath.Base(cmd.Path), err)
		}
	}
	if err := waitReady(ctx, readyURL, done); err != nil {
		stop()
		return nil, fmt.Errorf("%s: %w", filepath.Base(cmd.Path), err)
	}
	return stop, nil
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
			return fmt.Errorf("stopped before ready: %v", err)
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
	return errors.New("not ready after 60 s")
}

func markdown(concurrency, rounds int, results []result) string {
	var b strings.Builder
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/1e6) }
	fmt.Fprintf(&b, "Run of %s on %d CPUs, %s: %d rounds of %d Pods created at once per kind, alternating, against kube-apiserver v1.37.2 (self-built, etcd 3.6.16). Each row of the tables below is its own control plane and webhook server, the bare webhook placed where the injector is; the placements, as the kernel reported them during the injector's run:\n\n",
		time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), runtime.Version(), rounds, concurrency)
	for _, r := range results {
		if r.server != serverInjector {
			continue
		}
		fmt.Fprintf(&b, "- **%s**: %s.\n", r.name, r.where)
	}

	fmt.Fprintf(&b, "\nTime inside the injector per admission of webhook `%s` (`controller_runtime_webhook_latency_seconds`, read from its native histogram, about 10%% resolution; from reading the request to writing the answer). The target, p99 under %s, is judged on the own-CPU placement:\n\n", webhookName, ms(targetP99))
	fmt.Fprintf(&b, "| placement | calls | p50 | p99 | target |\n|---|---|---|---|---|\n")
	for _, r := range results {
		if r.server != serverInjector {
			continue
		}
		p50, _ := r.inside.quantile(0.5)
		p99, ok := r.inside.quantile(0.99)
		if !ok {
			fmt.Fprintf(&b, "| %s | %d | no native histogram | | |\n", r.name, int(r.inside.count))
			continue
		}
		verdict := "met"
		if p99 >= targetP99.Seconds() {
			verdict = "NOT met"
		}
		fmt.Fprintf(&b, "| %s | %d | ≤ %.2f ms | **≤ %.2f ms** | p99 under %s: %s |\n", r.name, int(r.inside.count), p50*1000, p99*1000, ms(targetP99), verdict)
	}

	fmt.Fprintf(&b, "\nPod create, as the client sees it. Not opted in: the webhook's matchConditions skip the Pod, no webhook call. Opted in: the webhook server answers, and the API server applies its patch; the bare webhook answers the injector's patch without any work (the baseline):\n\n")
	fmt.Fprintf(&b, "| placement | webhook server | not opted in, p50 | p99 | opted in, p50 | p99 |\n|---|---|---|---|---|---|\n")
	for _, r := range results {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", r.name, r.server,
			ms(quantile(r.baseline, 0.5)), ms(quantile(r.baseline, 0.99)), ms(quantile(r.injected, 0.5)), ms(quantile(r.injected, 0.99)))
		if bare, ok := find(results, r.name, serverBare); ok && r.server == serverInjector {
			fmt.Fprintf(&b, "| %s | **injector / bare webhook** | | | %.2f× | **%.2f×** |\n", r.name,
				ratio(quantile(r.injected, 0.5), quantile(bare.injected, 0.5)), ratio(quantile(r.injected, 0.99), quantile(bare.injected, 0.99)))
		}
	}

	pct := func(h histogram, le string) string { return fmt.Sprintf("%.1f%%", 100*h.buckets[le]/h.count) }
	fmt.Fprintf(&b, "\nThe API server's measure of the whole webhook call (`apiserver_admission_webhook_admission_duration_seconds`, whose finest buckets are 5, 25 and 100 ms). It includes the API server's own work and its wait for a CPU, the TLS handshakes of the connections a burst opens (it keeps 25 idle per webhook host) and applying the patch, which is why the bare webhook is there:\n\n")
	fmt.Fprintf(&b, "| placement | webhook server | within 5 ms | within 25 ms | within 100 ms |\n|---|---|---|---|---|\n")
	for _, r := range results {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", r.name, r.server, pct(r.call, "0.005"), pct(r.call, "0.025"), pct(r.call, "0.1"))
	}
	return b.String()
}

func find(results []result, placement string, s server) (result, bool) {
	for _, r := range results {
		if r.name == placement && r.server == s {
			return r, true
		}
	}
	return result{}, false
}

func ratio(a, b time.Duration) float64 { return float64(a) / float64(b) }
