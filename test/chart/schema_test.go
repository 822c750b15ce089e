package chart_test

import (
	"encoding/base64"
	"strings"
	"testing"
)

// TestSchemaRejectsBadValues: values.schema.json refuses bad values before
// anything is rendered, and the error names the value.
func TestSchemaRejectsBadValues(t *testing.T) {
	t.Parallel()
	h := newHelm(t)
	for _, tc := range []struct {
		name   string
		values map[string]any
		want   string // in the error, besides Helm's schema preamble
	}{
		{name: "unknown certificate mode", values: map[string]any{"certs": map[string]any{"mode": "bogus"}},
			want: "at '/certs/mode': value must be one of 'auto', 'cert-manager', 'manual'"},
		{name: "manual without secretName", values: map[string]any{"certs": map[string]any{"mode": "manual", "manual": map[string]any{"caBundle": testCA}}},
			want: "at '/certs/manual/secretName'"},
		{name: "manual without caBundle", values: map[string]any{"certs": map[string]any{"mode": "manual", "manual": map[string]any{"secretName": "tls"}}},
			want: "at '/certs/manual/caBundle'"},
		{name: "manual with a caBundle that is not PEM", values: map[string]any{"certs": map[string]any{"mode": "manual", "manual": map[string]any{"secretName": "tls", "caBundle": base64.StdEncoding.EncodeToString([]byte(testCA))}}},
			want: "at '/certs/manual/caBundle'"},
		{name: "injector disabled without webhook.url", values: map[string]any{"injector": map[string]any{"enabled": false}},
			want: "at '/webhook/url'"},
		{name: "plain http webhook.url", values: map[string]any{"webhook": map[string]any{"url": "http://127.0.0.1:9443"}},
			want: "at '/webhook/url'"},
		{name: "bad failure policy", values: map[string]any{"webhook": map[string]any{"failurePolicy": "Maybe"}},
			want: "at '/webhook/failurePolicy': value must be one of 'Fail', 'Ignore'"},
		{name: "timeout above the API server's limit", values: map[string]any{"webhook": map[string]any{"timeoutSeconds": 60}},
			want: "at '/webhook/timeoutSeconds'"},
		{name: "misspelt key", values: map[string]any{"replicas": 3},
			want: "additional properties 'replicas' not allowed"},
		{name: "ServiceMonitor without metrics", values: map[string]any{"metrics": map[string]any{"enabled": false, "serviceMonitor": map[string]any{"enabled": true}}},
			want: "at '/metrics/enabled'"},
		{name: "profile without ZTS URL", values: map[string]any{"profile": map[string]any{"create": true, "identity": map[string]any{"provider": "p", "dnsSuffix": "d"}}},
			want: "at '/profile/zts/url'"},
		{name: "copper-argos profile without provider", values: map[string]any{"profile": map[string]any{"create": true, "zts": map[string]any{"url": "https://zts"}, "identity": map[string]any{"dnsSuffix": "d"}}},
			want: "at '/profile/identity/provider'"},
		{name: "unknown identity mode", values: map[string]any{"profile": map[string]any{"identity": map[string]any{"mode": "magic"}}},
			want: "at '/profile/identity/mode'"},
		{name: "bad image digest", values: map[string]any{"image": map[string]any{"digest": "latest"}},
			want: "at '/image/digest'"},
		{name: "provider callback without ZTS's client CA", values: map[string]any{"provider": map[string]any{"enabled": true}},
			want: "at '/provider/clientCA': minProperties"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, err := h.run("template", "athenz-injector", h.chart, "-f", valuesFile(t, tc.values))
			if err == nil {
				t.Fatalf("helm template accepted %v; output:\n%s", tc.values, out)
			}
			msg := err.Error()
			if !strings.Contains(msg, "values don't meet the specifications of the schema") || !strings.Contains(msg, tc.want) {
				t.Errorf("helm template with %v:\n%v\nwant a schema error containing %q", tc.values, msg, tc.want)
			}
		})
	}
}

// TestProviderNeedsClientCAWithoutSchema: with the schema skipped, the
// chart itself still refuses a callback that would answer anyone.
func TestProviderNeedsClientCAWithoutSchema(t *testing.T) {
	t.Parallel()
	h := newHelm(t)
	out, err := h.run("template", "athenz-injector", h.chart, "--skip-schema-validation", "-f",
		valuesFile(t, map[string]any{"provider": map[string]any{"enabled": true}}))
	if err == nil || !strings.Contains(err.Error(), "provider.enabled needs provider.clientCA") ||
		!strings.Contains(err.Error(), "provider.insecureAllowAnyClient=true turns this off, for development only") {
		t.Errorf("helm template --skip-schema-validation with provider.enabled and no clientCA: %v\n%s", err, out)
	}
}
