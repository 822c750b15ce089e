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
		{
			name: "auto certificates",
			args: []string{"--cert-mode=auto", "--cert-secret=tls", "--webhook-config-name=wh", "--service-name=svc", "--cert-dns-names=127.0.0.1, injector.local"},
			check: func(o app.Options) bool {
				return o.CertMode == app.CertModeAuto && o.CertSecret == "tls" && o.WebhookConfigName == "wh" && o.ServiceName == "svc" &&
					strings.Join(o.CertDNSNames, ",") == "127.0.0.1,injector.local"
			},
		},
		{name: "bad cert mode", args: []string{"--cert-mode=manual"}, wantErr: "--cert-mode"},
		{name: "bad cert secret", args: []string{"--cert-secret=Bad_Name"}, wantErr: "--cert-secret"},
		{
			name: "provider callback",
			args: []string{"--provider-bind-address=:8443", "--provider-audience=athenz", "--provider-name=sys.auth.k8s", "--provider-cert-dir=/provider"},
			check: func(o app.Options) bool {
				return o.ProviderBindAddress == ":8443" && o.ProviderAudience == "athenz" && o.ProviderName == "sys.auth.k8s" && o.ProviderCertDir == "/provider"
			},
		},
		{name: "provider without audience", args: []string{"--provider-bind-address=:8443"}, wantErr: "--provider-audience"},
		{name: "bad provider address", args: []string{"--provider-bind-address=8443", "--provider-audience=a"}, wantErr: "--provider-bind-address"},
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
