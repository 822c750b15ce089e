package app_test

import (
	"flag"
	"io"
	"strings"
	"testing"

	"github.com/athenz-injector/athenz-injector/pkg/webhook/app"
)

func TestFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		check   func(app.Options) bool
		wantErr string
	}{
		{
			name: "defaults",
			args: nil,
			check: func(o app.Options) bool {
				return o.WebhookPort == 9443 && o.Namespace == "athenz-injector" && o.MetricsBindAddress == ":8080"
			},
		},
		{
			name: "all flags",
			args: []string{"--webhook-port=8443", "--cert-dir=/certs", "--metrics-bind-address=0", "--health-probe-bind-address=127.0.0.1:9000", "--namespace=injector", "--sidecar-image=img:1", "--leader-elect"},
			check: func(o app.Options) bool {
				return o.WebhookPort == 8443 && o.CertDir == "/certs" && o.MetricsBindAddress == "0" &&
					o.HealthProbeBindAddress == "127.0.0.1:9000" && o.Namespace == "injector" && o.SidecarImage == "img:1" && o.LeaderElect
			},
		},
		{name: "bad port", args: []string{"--webhook-port=70000"}, wantErr: "--webhook-port"},
		{name: "bad metrics address", args: []string{"--metrics-bind-address=8080"}, wantErr: "--metrics-bind-address"},
		{name: "bad namespace", args: []string{"--namespace=Not_A_Namespace"}, wantErr: "--namespace"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var o app.Options
			fs := flag.NewFlagSet("injector", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			o.BindFlags(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatalf("parsing %q: %v", tt.args, err)
			}
			err := o.Validate()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Validate() after %q = %v, want an error naming %s", tt.args, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Validate() after %q = %v", tt.args, err)
			}
			if !tt.check(o) {
				t.Errorf("options after %q = %+v", tt.args, o)
			}
		})
	}
}
