package chart_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/athenz-injector/athenz-injector/internal/promlite"
)

// TestGrafanaDashboard: the dashboard is off by default; on, it is a
// ConfigMap with Grafana's sidecar label holding the dashboard JSON, whose
// panels cover admissions by outcome, admission latency, tokens by
// outcome, ZTS latency and errors and certificate expiry, each with
// queries that parse. (test/e2e's TestDashboardMetrics checks that every
// metric they read is exported in a real run.)
func TestGrafanaDashboard(t *testing.T) {
	t.Parallel()
	h := newHelm(t)
	if m := h.template(t, nil); m.find("ConfigMap", name+"-dashboard") != nil {
		t.Errorf("the dashboard ConfigMap is rendered by default")
	}
	m := h.template(t, map[string]any{"grafana": map[string]any{"dashboard": map[string]any{"enabled": true, "namespace": "monitoring"}}})
	var cm corev1.ConfigMap
	m.get(t, "ConfigMap", name+"-dashboard", &cm)
	if cm.Labels["grafana_dashboard"] != "1" || cm.Namespace != "monitoring" {
		t.Errorf("dashboard ConfigMap %s/%s labels %v, want grafana_dashboard=1 in monitoring", cm.Namespace, cm.Name, cm.Labels)
	}
	var d struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal([]byte(cm.Data["athenz-injector.json"]), &d); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	var titles []string
	for _, p := range d.Panels {
		titles = append(titles, p.Title)
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if _, err := promlite.Parse(tg.Expr, time.Minute); err != nil {
				t.Errorf("panel %q: %v", p.Title, err)
			}
		}
	}
	all := strings.ToLower(strings.Join(titles, "|"))
	for _, topic := range []string{"admissions by outcome", "admission latency", "token requests by outcome", "zts latency", "zts errors", "certificate expiry"} {
		if !strings.Contains(all, topic) {
			t.Errorf("no panel on %q; panels: %v", topic, titles)
		}
	}
}
