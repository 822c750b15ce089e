package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/athenz-injector/athenz-injector/internal/promlite"
	"github.com/athenz-injector/athenz-injector/test/framework"
)

// dashboardScrape is how long TestDashboardMetrics scrapes, while the
// other tests run.
const dashboardScrape = 3 * time.Minute

// TestDashboardMetrics scrapes, as Prometheus would, the injector's
// /metrics (its Pods' metrics port) and every injected Pod's sidecar
// (its athenz-health port) every 5 s while the suite runs, with a little
// traffic of its own (admissions injected and denied, tokens asked for,
// hits, misses and refusals), and checks that every metric the chart's
// Grafana dashboard reads is exported. With ATHENZ_E2E_METRICS_OUT set,
// the scrapes are written there as JSON: test/dashboard draws the
// dashboard's picture in docs/operations.md from them.
func TestDashboardMetrics(t *testing.T) {
	t.Parallel()
	ns := "dashboard"
	newNamespace(t, ns, nil)
	exprs := dashboardQueries(t)
	want := map[string]bool{}
	for _, e := range exprs {
		for _, m := range e.Metrics() {
			want[m] = true
		}
	}

	ctx := t.Context()
	pod := waitReady(t, createPod(t, injectedPod(ns, "web", nil)), 2*time.Minute)
	app := inApp(pod)
	hc := &http.Client{Timeout: 3 * time.Second}
	var scrapes []promlite.Scrape
	end := time.Now().Add(dashboardScrape)
	for i := 0; time.Now().Before(end); i++ {
		// Traffic: tokens (a miss, then hits), a refused role, a bad
		// request; every 30 s an admission injected and one denied.
		switch i % 6 {
		case 0:
			p := injectedPod(ns, fmt.Sprintf("burst-%02d", i/6), nil)
			p.Spec.NodeSelector = map[string]string{"athenz.io/e2e": "no-such-node"}
			_ = cluster.Client.Create(ctx, p)
			bad := injectedPod(ns, fmt.Sprintf("bad-%02d", i/6), map[string]string{"athenz.io/sidecar-health-port": "0"})
			_ = cluster.Client.Create(ctx, bad)
		case 1, 3, 5:
			app.do(t, "http://127.0.0.1:8081/accesstoken?domain="+framework.Domain+"&role="+framework.Role)
			app.do(t, "http://127.0.0.1:8081/roletoken?domain="+framework.Domain+"&role="+framework.Role)
		case 2:
			app.do(t, "http://127.0.0.1:8081/roletoken?domain="+framework.Domain+"&role=writer")
			app.do(t, "http://127.0.0.1:8081/roletoken?domain=no..domain&role=x")
		}
		s := promlite.Scrape{Time: time.Now()}
		for _, target := range scrapeTargets(t) {
			samples, err := scrape(ctx, hc, target)
			if err != nil {
				continue // a Pod that went away between the list and the scrape
			}
			s.Samples = append(s.Samples, samples...)
		}
		scrapes = append(scrapes, s)
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(5 * time.Second):
		}
	}
	seen := map[string]bool{}
	for _, s := range scrapes {
		for _, x := range s.Samples {
			seen[x.Name] = true
		}
	}
	var missing []string
	for m := range want {
		if !seen[m] {
			missing = append(missing, m)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("the dashboard reads metrics no scrape exported: %v", missing)
	}
	t.Logf("%d scrapes over %v; the dashboard's %d metrics all seen", len(scrapes), dashboardScrape, len(want))
	if out := os.Getenv("ATHENZ_E2E_METRICS_OUT"); out != "" {
		b, err := json.Marshal(scrapes)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(out, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_ = cluster.Client.DeleteAllOf(context.Background(), &corev1.Pod{}, client.InNamespace(ns))
}

// dashboardQueries parses the chart dashboard's queries.
func dashboardQueries(t *testing.T) []promlite.Expr {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(cluster.Root, framework.ChartPath, "dashboards", "athenz-injector.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	var out []promlite.Expr
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			e, err := promlite.Parse(tg.Expr, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, e)
		}
	}
	return out
}

// target is one /metrics to scrape, with the labels a PodMonitor adds.
type target struct {
	url    string
	labels map[string]string
}

// scrapeTargets are the injector's Pods and every running injected Pod
// with a health port.
func scrapeTargets(t *testing.T) []target {
	t.Helper()
	var pods corev1.PodList
	if err := cluster.Client.List(t.Context(), &pods); err != nil {
		t.Fatal(err)
	}
	var out []target
	for _, p := range pods.Items {
		if p.Status.PodIP == "" || p.Status.Phase != corev1.PodRunning {
			continue
		}
		labels := map[string]string{"namespace": p.Namespace, "pod": p.Name}
		if p.Namespace == framework.ReleaseNamespace && p.Labels["app.kubernetes.io/component"] == "injector" {
			out = append(out, target{"http://" + net.JoinHostPort(p.Status.PodIP, "8080") + "/metrics", labels})
			continue
		}
		if _, ok := p.Annotations[framework.AnnotationStatus]; !ok {
			continue
		}
		for _, c := range append(append([]corev1.Container{}, p.Spec.InitContainers...), p.Spec.Containers...) {
			for _, port := range c.Ports {
				if c.Name == framework.SidecarContainer && port.Name == "athenz-health" {
					out = append(out, target{"http://" + net.JoinHostPort(p.Status.PodIP, strconv.Itoa(int(port.ContainerPort))) + "/metrics", labels})
				}
			}
		}
	}
	return out
}

func scrape(ctx context.Context, hc *http.Client, tg target) ([]promlite.Sample, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, tg.url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("%s: %d", tg.url, resp.StatusCode)
	}
	return promlite.ParseText(resp.Body, tg.labels)
}
