// Command dashboard draws the chart's Grafana dashboard
// (charts/athenz-injector/dashboards/athenz-injector.json) as an SVG, each
// panel's queries evaluated over the metrics that test/e2e's
// TestDashboardMetrics scraped from a real run (internal/promlite). No
// Grafana can run here; this draws the same panels, queries and legends
// from real data, in Grafana's dark colours:
//
//	ATHENZ_E2E_METRICS_OUT=/tmp/scrapes.json go test ./test/e2e -run 'TestDashboardMetrics' -v
//	go run ./test/dashboard -scrapes /tmp/scrapes.json -out docs/images/dashboard.svg
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/athenz-injector/athenz-injector/internal/promlite"
)

func main() {
	dashboard := flag.String("dashboard", "charts/athenz-injector/dashboards/athenz-injector.json", "the dashboard JSON")
	scrapes := flag.String("scrapes", "", "the scrapes (JSON) of TestDashboardMetrics")
	out := flag.String("out", "dashboard.svg", "the SVG to write")
	rate := flag.Duration("rate-interval", time.Minute, "what $__rate_interval stands for")
	flag.Parse()
	if err := run(*dashboard, *scrapes, *out, *rate); err != nil {
		fmt.Fprintln(os.Stderr, "dashboard:", err)
		os.Exit(1)
	}
}

func run(dashboardFile, scrapesFile, out string, rate time.Duration) error {
	var d dashboard
	if err := readJSON(dashboardFile, &d); err != nil {
		return err
	}
	var scrapes []promlite.Scrape
	if err := readJSON(scrapesFile, &scrapes); err != nil {
		return err
	}
	if len(scrapes) < 2 {
		return fmt.Errorf("%s: %d scrapes, want at least 2", scrapesFile, len(scrapes))
	}
	svg, err := render(d, scrapes, rate)
	if err != nil {
		return err
	}
	return os.WriteFile(out, svg, 0o644)
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
