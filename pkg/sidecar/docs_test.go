package sidecar

import (
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/athenz-injector/athenz-injector/pkg/sidecar/identity"
	"github.com/athenz-injector/athenz-injector/pkg/tokens"
)

// TestDocsInSync: every setting is documented in docs/sidecar-api.md,
// every endpoint of the token API is in both docs/sidecar-api.md and
// docs/openapi.yaml, /metrics is in docs/sidecar-api.md, and every metric
// is in docs/operations.md.
func TestDocsInSync(t *testing.T) {
	md, err := os.ReadFile("../../docs/sidecar-api.md")
	if err != nil {
		t.Fatal(err)
	}
	api, err := os.ReadFile("../../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range envVars {
		if !strings.Contains(string(md), "`"+ev.name+"`") {
			t.Errorf("docs/sidecar-api.md does not document %s", ev.name)
		}
	}
	for _, p := range []string{"/ntoken", "/svccert", "/roletoken", "/accesstoken", "/access-token", "/healthz", "/readyz", "/proxy/ntoken", "/proxy/roletoken"} {
		if !strings.Contains(string(md), p) {
			t.Errorf("docs/sidecar-api.md does not mention %s", p)
		}
		if !strings.Contains(string(api), "\n  "+p+":\n") {
			t.Errorf("docs/openapi.yaml has no path %s", p)
		}
	}
	if !strings.Contains(string(md), "/metrics") {
		t.Errorf("docs/sidecar-api.md does not mention /metrics")
	}
	ops, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range metricNames {
		if !strings.Contains(string(ops), "`"+name+"`") {
			t.Errorf("docs/operations.md does not list the metric %s", name)
		}
	}
	for _, v := range append(append(tokenTypeNames[:], ztsEndpointNames[:]...), "hit", "stale", "miss", "error", "rejected", "timeout", "tls", "connection", "canceled") {
		if !strings.Contains(string(ops), "`"+v+"`") {
			t.Errorf("docs/operations.md does not list the label value %s", v)
		}
	}
}

// TestDocsDefaults: every default that a table of docs/*.md gives for a
// setting is what the sidecar runs with (setting the variable to the
// documented default changes nothing), and every figure of the Timing
// table in docs/sidecar-api.md is the code's. The docs said ATHENZ_NTOKEN
// defaulted to false in one place and true in another, and the files-mode
// poll interval was 10 s in one and 5 s in the code.
func TestDocsDefaults(t *testing.T) {
	files, err := filepath.Glob("../../docs/*.md")
	if err != nil || len(files) == 0 {
		t.Fatalf("no docs: %v", err)
	}
	checked := map[string]bool{}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, tbl := range markdownTables(string(b)) {
			if col := tbl.column("default"); col >= 0 && tbl.column("variable") >= 0 {
				for _, row := range tbl.rows {
					for _, name := range backticked(row[tbl.column("variable")]) {
						if !strings.HasPrefix(name, "ATHENZ_") {
							continue
						}
						checked[name] = true
						checkDocumentedDefault(t, filepath.Base(file), name, row[col])
					}
				}
			}
			if col := tbl.column("default"); col >= 0 && tbl.column("timing") >= 0 {
				for _, row := range tbl.rows {
					checkTiming(t, filepath.Base(file), stripTicks(row[tbl.column("timing")]), stripTicks(row[col]))
					checked["timing: "+stripTicks(row[tbl.column("timing")])] = true
				}
			}
		}
	}
	for _, ev := range envVars {
		if !checked[ev.name] {
			t.Errorf("%s is in no table of docs/*.md with a default column", ev.name)
		}
	}
	for name := range builtInTimings() {
		if !checked["timing: "+name] {
			t.Errorf("the timing %q is not in docs/sidecar-api.md's Timing table", name)
		}
	}
}

// descriptiveDefaults are documented defaults that are not values of the
// setting: it is unset, and what that means is in the row.
var descriptiveDefaults = map[string]bool{
	"": true, "required": true, "none": true, "off": true, "system roots": true, "every host": true, "zts's": true,
}

// checkDocumentedDefault checks that setting name to the documented
// default leaves the configuration the sidecar runs with unchanged.
func checkDocumentedDefault(t *testing.T, file, name, cell string) {
	t.Helper()
	value := stripTicks(cell)
	if descriptiveDefaults[strings.ToLower(value)] {
		return
	}
	if a, b, ok := strings.Cut(value, "/"); ok { // "2/3"
		num, err1 := strconv.ParseFloat(a, 64)
		den, err2 := strconv.ParseFloat(b, 64)
		if err1 == nil && err2 == nil && den != 0 {
			value = strconv.FormatFloat(num/den, 'g', -1, 64)
		}
	}
	base := []string{"ATHENZ_ZTS_URL=https://zts.example:4443/zts/v1"}
	if name == "ATHENZ_KEY_FILE_CERT" {
		base = append(base, "ATHENZ_IDENTITY_MODE=key-file")
	}
	want := effectiveSettings(t, base)
	got := effectiveSettings(t, append([]string{name + "=" + value}, base...))
	if got == nil {
		t.Errorf("%s says %s defaults to %q, which the sidecar does not accept", file, name, cell)
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s says %s defaults to %q, but setting it to that changes what the sidecar runs with:\n%+v\nwant\n%+v", file, name, cell, got, want)
	}
}

// settings is what the sidecar runs with: its Config and its identity's
// options, each with their defaults.
type settings struct {
	cfg Config
	id  identity.Options
}

// effectiveSettings parses env as the sidecar does; nil when it does not
// parse.
func effectiveSettings(t *testing.T, env []string) *settings {
	t.Helper()
	cfg, err := ConfigFromEnv(env)
	if err != nil {
		return nil
	}
	cfg = cfg.withDefaults()
	id := identityOptions(cfg, IdentityOptions{}).WithDefaults()
	// What reaches the identity is compared there, with its defaults.
	cfg.IdentityMode = cfg.EffectiveIdentityMode()
	cfg.CopperArgos, cfg.Certificate, cfg.IdentityDir = CopperArgosConfig{}, CertificateConfig{}, ""
	return &settings{cfg: cfg, id: id}
}

// builtInTimings are the figures of the Timing table: what the sidecar
// does on its own.
func builtInTimings() map[string]any {
	return map[string]any{
		"token safety margin":          tokens.DefaultMarginFraction,
		"smallest margin":              tokens.DefaultMinMargin,
		"least lifetime left to serve": tokens.MinServeRemaining,
		"fetch floor":                  tokens.DefaultMinFetchInterval,
		"least refresh delay":          tokens.DefaultMinRefreshDelay,
		"negative-cache TTL":           tokens.DefaultNegativeTTL,
		"refresh retry, first":         tokens.DefaultRetryMin,
		"refresh retry, longest":       tokens.DefaultRetryMax,
		"refresh retries, quick":       tokens.QuickRetries,
		"refresh retry, patient":       tokens.DefaultRetryFraction,
		"token fetch bound":            tokens.DefaultFetchTimeout,
		"idle token drop":              tokens.DefaultIdleTTL,
		"cache size":                   tokens.DefaultMaxEntries,
		"clock skew logged from":       tokens.SkewLogThreshold,
		"identity retry, first":        identity.DefaultRetryMin,
		"identity retry, longest":      identity.DefaultRetryMax,
		"identity retries, quick":      identity.QuickRetries,
		"identity retry, patient":      identity.RetryFraction,
		"identity retry, most patient": identity.RetryPatience,
		"files mode poll":              identity.DefaultPollInterval,
		"prefetch retry, first":        prefetchRetryMin,
		"prefetch retry, longest":      prefetchRetryMax,
		"token files poll":             tokenFilesPoll,
		"`--mode=init` bound":          DefaultInitTimeout,
	}
}

func checkTiming(t *testing.T, file, name, value string) {
	t.Helper()
	want, ok := builtInTimings()[name]
	if !ok {
		t.Errorf("%s: Timing table row %q is not a figure the test knows; add it to builtInTimings", file, name)
		return
	}
	var got any
	var err error
	switch want.(type) {
	case time.Duration:
		got, err = time.ParseDuration(value)
	case int:
		got, err = strconv.Atoi(value)
	case float64:
		a, b, _ := strings.Cut(value, "/")
		var num, den float64
		if num, err = strconv.ParseFloat(a, 64); err == nil {
			if den, err = strconv.ParseFloat(b, 64); err == nil {
				got = num / den
			}
		}
	}
	if err != nil || got != want {
		t.Errorf("%s says %s is %q, the code has %v", file, name, value, want)
	}
}

// markdownTable is a table of a markdown file: its header cells
// (lower case) and rows.
type markdownTable struct {
	header []string
	rows   [][]string
}

func (tb markdownTable) column(name string) int {
	for i, h := range tb.header {
		if h == name {
			return i
		}
	}
	return -1
}

// markdownTables finds the pipe tables of a markdown text.
func markdownTables(text string) []markdownTable {
	var out []markdownTable
	var cur *markdownTable
	for line := range strings.SplitSeq(text, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "|") {
			cur = nil
			continue
		}
		cells := splitRow(line)
		switch {
		case cur == nil:
			out = append(out, markdownTable{})
			cur = &out[len(out)-1]
			for _, c := range cells {
				cur.header = append(cur.header, strings.ToLower(stripTicks(c)))
			}
		case strings.Trim(line, "|-: ") == "":
			// the separator row
		default:
			for len(cells) < len(cur.header) {
				cells = append(cells, "")
			}
			cur.rows = append(cur.rows, cells)
		}
	}
	return out
}

// splitRow splits "| a | b |" into its cells, trimmed; a "|" inside
// backticks does not split.
func splitRow(line string) []string {
	line = strings.TrimSuffix(strings.TrimPrefix(line, "|"), "|")
	var cells []string
	var b strings.Builder
	inTicks := false
	for _, r := range line {
		switch {
		case r == '`':
			inTicks = !inTicks
			b.WriteRune(r)
		case r == '|' && !inTicks:
			cells = append(cells, strings.TrimSpace(b.String()))
			b.Reset()
		default:
			b.WriteRune(r)
		}
	}
	return append(cells, strings.TrimSpace(b.String()))
}

// backticked returns the `quoted` words of a cell.
func backticked(cell string) []string {
	var out []string
	parts := strings.Split(cell, "`")
	for i := 1; i < len(parts); i += 2 {
		out = append(out, parts[i])
	}
	return out
}

// stripTicks returns a cell without the backticks around all of it.
func stripTicks(cell string) string {
	cell = strings.TrimSpace(cell)
	if len(cell) >= 2 && strings.HasPrefix(cell, "`") && strings.HasSuffix(cell, "`") && strings.Count(cell, "`") == 2 {
		return cell[1 : len(cell)-1]
	}
	return cell
}
