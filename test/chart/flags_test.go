package chart_test

import (
	"flag"
	"io"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/athenz-injector/athenz-injector/pkg/webhook/app"
)

// TestInjectorAcceptsArgs: the arguments the chart gives the injector are
// flags that cmd/injector defines (its own and zap's), with values its
// validation accepts, in every mode.
func TestInjectorAcceptsArgs(t *testing.T) {
	t.Parallel()
	h := newHelm(t)
	for _, tc := range []struct {
		name   string
		values map[string]any
	}{
		{name: "defaults"},
		{name: "auto with everything on", values: map[string]any{
			"certs": map[string]any{"extraDNSNames": []string{"provider.example.com", "10.0.0.1"}},
			"provider": map[string]any{
				"enabled": true, "name": "sys.auth.k8s", "certSecret": "provider-tls",
				"clientCA": map[string]any{"secret": map[string]any{"name": "zts-ca", "key": "ca.pem"}},
			},
			"injector": map[string]any{"logLevel": "debug"},
		}},
		{name: "cert-manager, metrics off, no leader election", values: map[string]any{
			"certs":    map[string]any{"mode": "cert-manager"},
			"metrics":  map[string]any{"enabled": false},
			"injector": map[string]any{"leaderElect": false},
		}},
		{name: "manual", values: map[string]any{
			"certs": map[string]any{"mode": "manual", "manual": map[string]any{"secretName": "tls", "caBundle": testCA}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := injectorArgs(t, h.template(t, tc.values))
			fs := flag.NewFlagSet("injector", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			var opts app.Options
			opts.BindFlags(fs)
			(&zap.Options{}).BindFlags(fs)
			if err := fs.Parse(args); err != nil {
				t.Fatalf("cmd/injector refuses the chart's args %q: %v", args, err)
			}
			if fs.NArg() != 0 {
				t.Errorf("args %q leave %q unparsed", args, fs.Args())
			}
			if err := opts.Validate(); err != nil {
				t.Errorf("cmd/injector's validation refuses the chart's args %q: %v", args, err)
			}
		})
	}
}
