// Command podcache measures the injector's memory with the provider
// callback on, which caches every Pod of the cluster (trimmed by
// provider.TrimPod to what its checks read), for a number of Pods in the
// API server: it starts kube-apiserver and etcd (envtest; the Pods need
// not run), creates the Pods, starts the injector binary with
// --provider-bind-address, waits until it is ready (its caches, Pods
// included, have synced) and reads its resident memory from
// /proc/<pid>/status. The Pods look like a real cluster's: a Deployment's
// labels and owner, kubectl's last-applied-configuration, two containers
// with environment, probes and resources. `make bench` runs it:
//
//	KUBEBUILDER_ASSETS=$(hack/build-control-plane.sh) go run ./test/load/podcache -pods 1000,10000
//
// -baseline names another injector binary (the code before a change) that
// is measured too, against the same Pods, for a comparison.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/athenz-injector/athenz-injector/pkg/webhook/app"
	"github.com/athenz-injector/athenz-injector/pkg/webhook/webhooktest"
	"github.com/athenz-injector/athenz-injector/test/framework"
	"github.com/athenz-injector/athenz-injector/test/load/report"
)

const injectorNamespace = "athenz-injector"

// targetMB is issue 14's target at 10,000 Pods.
const targetMB = 60

func main() {
	counts := flag.String("pods", "1000,10000", "Pod counts to measure, comma-separated, ascending")
	baseline := flag.String("baseline", "", "another injector binary to measure against the same Pods, for a comparison")
	label := flag.String("baseline-label", "the baseline", "what the -baseline binary is, for the report")
	reportFile := flag.String("report", "", "file whose podcache section is rewritten (empty: print only)")
	flag.Parse()
	ctrl.SetLogger(logr.Discard())
	if err := run(*counts, *baseline, *label, *reportFile); err != nil {
		fmt.Fprintln(os.Stderr, "podcache:", err)
		os.Exit(1)
	}
}

type row struct {
	pods      int
	rss, peak float64 // MB
	syncedIn  time.Duration
	createdIn time.Duration
	base      *row // the baseline's, with -baseline
}

func run(counts, baseline, baseLabel, reportFile string) error {
	var ns []int
	for f := range strings.SplitSeq(counts, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 {
			return fmt.Errorf("-pods: %q is not a count", f)
		}
		ns = append(ns, n)
	}
	dir, err := os.MkdirTemp("", "podcache-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	injector := filepath.Join(dir, "injector")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", injector, "./cmd/injector")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building the injector: %v\n%s", err, out)
	}
	scheme, err := app.NewScheme()
	if err != nil {
		return err
	}
	cp, err := webhooktest.Start(webhooktest.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	defer func() { _ = cp.Stop() }()
	kc, err := cp.KubeConfig()
	if err != nil {
		return err
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		return err
	}
	ca, err := framework.NewTestCA(filepath.Join(dir, "ca"))
	if err != nil {
		return err
	}
	certDir := filepath.Join(dir, "certs")
	if err := ca.IssueServing(certDir, "127.0.0.1", []byte{127, 0, 0, 1}); err != nil {
		return err
	}
	ctx := context.Background()
	for _, n := range []string{injectorNamespace, "apps"} {
		if err := cp.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}); err != nil {
			return err
		}
	}
	var rows []row
	have := 0
	for _, want := range ns {
		began := time.Now()
		if err := createPods(ctx, cp.Client, have, want); err != nil {
			return err
		}
		created := time.Since(began)
		have = max(have, want)
		r, err := measure(ctx, injector, kubeconfig, certDir, dir)
		if err != nil {
			return fmt.Errorf("%d Pods: %w", want, err)
		}
		r.pods, r.createdIn = want, created
		fmt.Fprintf(os.Stderr, "%d Pods: RSS %.1f MB, peak %.1f MB, ready %v after start\n", want, r.rss, r.peak, r.syncedIn.Round(time.Millisecond))
		if baseline != "" {
			b, err := measure(ctx, baseline, kubeconfig, certDir, dir)
			if err != nil {
				return fmt.Errorf("%d Pods, %s: %w", want, baseLabel, err)
			}
			fmt.Fprintf(os.Stderr, "%d Pods, %s: RSS %.1f MB, peak %.1f MB\n", want, baseLabel, b.rss, b.peak)
			r.base = &b
		}
		rows = append(rows, r)
	}
	return report.Emit(reportFile, "podcache", markdown(rows, baseLabel))
}

// measure starts the injector with the provider on, waits until it is
// ready and has settled, and reads its memory.
func measure(ctx context.Context, bin, kubeconfig, certDir, dir string) (row, error) {
	provider, err := framework.FreeAddr()
	if err != nil {
		return row{}, err
	}
	began := time.Now()
	inj, err := framework.StartInjector(ctx, framework.InjectorOptions{
		Binary: bin, Kubeconfig: kubeconfig, Namespace: injectorNamespace, CertDir: certDir, Dir: dir,
		Args:         []string{"--provider-bind-address=" + provider, "--provider-audience=athenz", "--zap-log-level=error"},
		ReadyTimeout: 5 * time.Minute,
	})
	if err != nil {
		return row{}, err
	}
	defer func() { _ = inj.Stop(10 * time.Second) }()
	r := row{syncedIn: time.Since(began)}
	// Let the Go runtime return what the initial list took.
	time.Sleep(30 * time.Second)
	rss, peak, err := memory(inj.Pid())
	if err != nil {
		return row{}, err
	}
	r.rss, r.peak = rss, peak
	return r, nil
}

// memory reads VmRSS and VmHWM of pid, in MB (10^6 bytes).
func memory(pid int) (rss, peak float64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmRSS:":
			rss = kb * 1024 / 1e6
		case "VmHWM:":
			peak = kb * 1024 / 1e6
		}
	}
	return rss, peak, nil
}

// createPods creates the Pods from index from up to to, 16 at a time.
func createPods(ctx context.Context, c client.Client, from, to int) error {
	var next atomic.Int64
	next.Store(int64(from))
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= to {
					return
				}
				if err := c.Create(ctx, realisticPod(i)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// realisticPod is Pod i of a Deployment as a cluster holds it.
func realisticPod(i int) *corev1.Pod {
	app := fmt.Sprintf("service-%03d", i%200)
	hash := fmt.Sprintf("%09x", i%200*7919)
	lastApplied := fmt.Sprintf(`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"annotations":{},"labels":{"app":"%s","team":"payments"},"name":"%s","namespace":"apps"},"spec":{"replicas":50,"selector":{"matchLabels":{"app":"%s"}},"template":{"metadata":{"labels":{"app":"%s","team":"payments","version":"v1"}},"spec":{"containers":[{"name":"app","image":"registry.example.com/%s:1.4.2","ports":[{"containerPort":8080}],"env":[{"name":"LOG_LEVEL","value":"info"},{"name":"DB_HOST","value":"db.payments.svc"}],"resources":{"requests":{"cpu":"100m","memory":"128Mi"},"limits":{"memory":"256Mi"}}},{"name":"log-shipper","image":"registry.example.com/shipper:2.0"}]}}}}`,
		app, app, app, app, app)
	probe := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}}, PeriodSeconds: 10}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: "apps", Name: fmt.Sprintf("%s-%s-%05d", app, hash[:5], i),
			Labels: map[string]string{"app": app, "team": "payments", "version": "v1", "pod-template-hash": hash,
				"app.kubernetes.io/name": app, "app.kubernetes.io/part-of": "shop"},
			Annotations: map[string]string{
				"kubectl.kubernetes.io/last-applied-configuration": lastApplied,
				"prometheus.io/scrape":                             "true", "prometheus.io/port": "8080",
				"athenz.io/inject": "true",
			},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: app + "-" + hash[:5], UID: "6b5f2d8e-0000-4000-8000-000000000001"}},
		},
		Spec: corev1.PodSpec{
			ServiceAccountName: app,
			Containers: []corev1.Container{
				{
					Name: "app", Image: "registry.example.com/" + app + ":1.4.2",
					Ports: []corev1.ContainerPort{{ContainerPort: 8080}},
					Env:   []corev1.EnvVar{{Name: "LOG_LEVEL", Value: "info"}, {Name: "DB_HOST", Value: "db.payments.svc"}},
					Resources: corev1.ResourceRequirements{
						Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
						Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
					},
					ReadinessProbe: probe, LivenessProbe: probe,
				},
				{Name: "log-shipper", Image: "registry.example.com/shipper:2.0"},
			},
		},
	}
}

func markdown(rows []row, baseLabel string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Run of %s: the injector with `--provider-bind-address` on, against kube-apiserver and etcd (envtest) holding the Pods (each about 3 KB as stored: a Deployment's labels and owner, kubectl's last-applied-configuration, two containers). Resident memory 30 s after the injector is ready (its caches, every Pod included, have synced), and its peak:\n\n", time.Now().UTC().Format("2006-01-02"))
	b.WriteString("| Pods in the API server | injector RSS | peak RSS (VmHWM) | ready after start | target |")
	withBase := len(rows) > 0 && rows[0].base != nil
	if withBase {
		b.WriteString(" " + baseLabel + ": RSS | peak |")
	}
	b.WriteString("\n|---|---|---|---|---|")
	if withBase {
		b.WriteString("---|---|")
	}
	b.WriteString("\n")
	for _, r := range rows {
		target := ""
		if r.pods == 10000 {
			verdict := "met"
			if r.rss > targetMB {
				verdict = "NOT met"
			}
			target = fmt.Sprintf("≤ %d MB: %s", targetMB, verdict)
		}
		fmt.Fprintf(&b, "| %d | %.1f MB | %.1f MB | %v | %s |", r.pods, r.rss, r.peak, r.syncedIn.Round(100*time.Millisecond), target)
		if r.base != nil {
			fmt.Fprintf(&b, " %.1f MB | %.1f MB |", r.base.rss, r.base.peak)
		}
		b.WriteString("\n")
	}
	if n := len(rows); n >= 2 && rows[n-1].pods > rows[0].pods {
		per := (rows[n-1].rss - rows[0].rss) / float64(rows[n-1].pods-rows[0].pods) * 1000
		fmt.Fprintf(&b, "\nMemory per 1,000 Pods (the slope from %d to %d Pods): %.2f MB", rows[0].pods, rows[n-1].pods, per)
		if rows[0].base != nil {
			bper := (rows[n-1].base.rss - rows[0].base.rss) / float64(rows[n-1].pods-rows[0].pods) * 1000
			fmt.Fprintf(&b, "; %s: %.2f MB", baseLabel, bper)
		}
		b.WriteString(".\n")
	}
	return b.String()
}
