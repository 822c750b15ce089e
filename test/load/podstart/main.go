// Command podstart measures what the injection costs a Pod's start on the
// test node (test/framework): the time from `kubectl create` of a Pod to
// its Ready condition, for Pods that opt in and Pods that do not, created
// one at a time and alternating, in one run; and for injected Pods the
// part of it spent before the sidecar's startup probe passed (when the
// app container may start). It writes the figures into a section of
// docs/performance.md. `make bench` runs it; by hand (root, Linux):
//
//	KUBEBUILDER_ASSETS=$(hack/build-control-plane.sh) ATHENZ_NODE_ASSETS=$(hack/build-node.sh) \
//	  go run ./test/load/podstart -pods 20 -report docs/performance.md
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/athenz-injector/athenz-injector/test/framework"
	"github.com/athenz-injector/athenz-injector/test/load/report"
)

const namespace = "podstart"

// trace prints each status change (-trace).
var trace bool

func main() {
	pods := flag.Int("pods", 20, "Pods of each kind")
	reportPath := flag.String("report", "", "Markdown file whose podstart section gets the figures (empty: print only)")
	flag.BoolVar(&trace, "trace", false, "print every status change of every Pod, with its time since the create call")
	flag.Parse()
	ctrl.SetLogger(logr.Discard())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *pods, *reportPath); err != nil {
		fmt.Fprintln(os.Stderr, "podstart:", err)
		os.Exit(1)
	}
}

// sample is one Pod's start.
type sample struct {
	injected bool
	ready    time.Duration // create to Ready
	started  time.Duration // create to the sidecar's startup probe passing (injected)
}

func run(ctx context.Context, n int, reportPath string) (err error) {
	start := time.Now()
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "podstart %6.1fs: %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	s, err := framework.NewScenario(framework.ScenarioOptions{Logf: logf})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := s.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	if err := s.Up(ctx); err != nil {
		return err
	}
	cs := s.CP.Clientset
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	if _, err := cs.CoreV1().ServiceAccounts(namespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: framework.AppName}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	s.ZTS.Grant(framework.Domain, framework.Role, namespace+"."+framework.Service)

	// One of each first, not counted: images' first use, caches.
	var samples []sample
	for i := -1; i < n; i++ {
		for _, injected := range []bool{false, true} {
			smp, err := startOne(ctx, s, fmt.Sprintf("p%d-%v", i+1, injected), injected)
			if err != nil {
				return err
			}
			if i >= 0 {
				samples = append(samples, smp)
			}
		}
	}
	return report.Emit(reportPath, "podstart", format(samples, n))
}

// startOne creates one Pod and watches it until it is Ready, then deletes
// it and waits until it is gone.
func startOne(ctx context.Context, s *framework.Scenario, name string, injected bool) (sample, error) {
	pods := s.CP.Clientset.CoreV1().Pods(namespace)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec:       framework.AppPodSpec(framework.AppName),
	}
	pod.Spec.TerminationGracePeriodSeconds = new(int64)
	if injected {
		pod.Annotations = map[string]string{framework.AnnotationInject: "true"}
	}
	w, err := pods.Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + name})
	if err != nil {
		return sample{}, err
	}
	defer w.Stop()
	smp := sample{injected: injected}
	created := time.Now()
	if _, err := pods.Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		return smp, fmt.Errorf("creating pod %s: %w", name, err)
	}
	timeout := time.After(2 * time.Minute)
	for smp.ready == 0 {
		select {
		case <-ctx.Done():
			return smp, ctx.Err()
		case <-timeout:
			return smp, fmt.Errorf("pod %s not Ready within 2 minutes\n%s", name, s.DiagnoseNamespace(ctx, namespace))
		case ev, ok := <-w.ResultChan():
			if !ok {
				return smp, fmt.Errorf("the watch of pod %s ended", name)
			}
			p, ok := ev.Object.(*corev1.Pod)
			if !ok || ev.Type == watch.Deleted {
				continue
			}
			now := time.Since(created)
			if trace {
				var parts []string
				for _, st := range append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
					parts = append(parts, fmt.Sprintf("%s run=%v started=%v ready=%v", st.Name, st.State.Running != nil, st.Started != nil && *st.Started, st.Ready))
				}
				r, _ := framework.PodReady(p)
				fmt.Fprintf(os.Stderr, "  %s %5d ms: ip=%q podReady=%v %s\n", name, now.Milliseconds(), p.Status.PodIP, r, strings.Join(parts, "; "))
			}
			for _, st := range p.Status.InitContainerStatuses {
				if st.Name == framework.SidecarContainer && st.Started != nil && *st.Started && smp.started == 0 {
					smp.started = now
				}
			}
			if ready, _ := framework.PodReady(p); ready {
				smp.ready = now
			}
		}
	}
	if err := pods.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		return smp, err
	}
	for ev := range w.ResultChan() {
		if ev.Type == watch.Deleted {
			break
		}
	}
	return smp, nil
}

func format(samples []sample, n int) string {
	var plain, inj, started, share []time.Duration
	for _, s := range samples {
		if !s.injected {
			plain = append(plain, s.ready)
			continue
		}
		inj = append(inj, s.ready)
		started = append(started, s.started)
		share = append(share, time.Duration(float64(s.started)/float64(s.ready)*1000))
	}
	q := func(d []time.Duration, p float64) time.Duration {
		d = slices.Clone(d)
		slices.Sort(d)
		return d[int(p*float64(len(d)-1)+0.5)]
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }
	var b strings.Builder
	fmt.Fprintf(&b, "Run of %s on the test node (one node, 2 cores; ZTS and the injector local), `make bench` (`go run ./test/load/podstart -pods %d`):\n", time.Now().UTC().Format("2006-01-02"), n)
	fmt.Fprintf(&b, "%d Pods of each kind, created one at a time and alternating; time from the create call to the Pod's Ready condition as a watch sees it.\n\n", n)
	b.WriteString("| Pod | p50 | p90 | max |\n|---|---|---|---|\n")
	fmt.Fprintf(&b, "| not injected | %s | %s | %s |\n", ms(q(plain, .5)), ms(q(plain, .9)), ms(q(plain, 1)))
	fmt.Fprintf(&b, "| injected | %s | %s | %s |\n", ms(q(inj, .5)), ms(q(inj, .9)), ms(q(inj, 1)))
	fmt.Fprintf(&b, "| injected, until the sidecar's startup probe passed | %s | %s | %s |\n\n", ms(q(started, .5)), ms(q(started, .9)), ms(q(started, 1)))
	fmt.Fprintf(&b, "Injection adds **%s** at the median (target: at most 1000 ms). Of an injected Pod's start, %.0f %% (median) passes before the sidecar's startup probe passes.\n",
		ms(q(inj, .5)-q(plain, .5)), float64(q(share, .5))/10)
	return b.String()
}
