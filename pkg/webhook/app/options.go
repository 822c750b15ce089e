// Package app runs the injector: the controller-runtime manager with the
// Pod and workload webhooks, the SidecarProfile reconciler, hot-reloaded
// serving certificates, health, readiness and metrics. cmd/injector only
// parses flags and calls Run.
package app

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"strconv"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/rest"

	"github.com/athenz-injector/athenz-injector/pkg/webhook"
)

// Defaults of Options.
const (
	DefaultWebhookPort            = 9443
	DefaultCertDir                = "/tmp/k8s-webhook-server/serving-certs"
	DefaultMetricsBindAddress     = ":8080"
	DefaultHealthProbeBindAddress = ":8081"
	DefaultNamespace              = "athenz-injector"
)

// Options configure the injector. Every field but Config has a working
// zero value.
type Options struct {
	// WebhookPort is the HTTPS port of the webhooks. Default: 9443.
	WebhookPort int
	// WebhookHost is the address the webhooks listen on. Default: all.
	WebhookHost string
	// CertDir holds the serving certificate (tls.crt) and key (tls.key);
	// they are reloaded when they change and may appear after start.
	// Default: DefaultCertDir.
	CertDir string
	// MetricsBindAddress serves /metrics; "0" turns it off.
	// Default: ":8080".
	MetricsBindAddress string
	// HealthProbeBindAddress serves /healthz and /readyz; "0" turns it
	// off. Default: ":8081".
	HealthProbeBindAddress string
	// Namespace is the injector's own namespace: its Pods are never
	// injected, and its profiles apply where a namespace has none.
	// Default: DefaultNamespace.
	Namespace string
	// SidecarImage is the sidecar image for profiles that name none.
	// Default: webhook.DefaultImage.
	SidecarImage string
	// LeaderElect makes one replica at a time update profile status.
	// Webhooks are served by every replica regardless. Default: off.
	LeaderElect bool
	// Version is recorded in each injected Pod's athenz.io/status.
	// Default: "dev".
	Version string

	// Config reaches the API server. Required.
	Config *rest.Config
	// Logger is the root logger. Default: discard.
	Logger logr.Logger
	// Registry takes the injector's metrics. Default: controller-runtime's
	// registry, which /metrics serves.
	Registry prometheus.Registerer
}

// BindFlags registers the injector's flags on fs, with the values in o as
// defaults.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	o.setDefaults()
	fs.IntVar(&o.WebhookPort, "webhook-port", o.WebhookPort, "HTTPS port of the admission webhooks.")
	fs.StringVar(&o.CertDir, "cert-dir", o.CertDir, "Directory with the webhook serving certificate tls.crt and key tls.key (hot-reloaded; may appear after start).")
	fs.StringVar(&o.MetricsBindAddress, "metrics-bind-address", o.MetricsBindAddress, `Address of /metrics; "0" turns it off.`)
	fs.StringVar(&o.HealthProbeBindAddress, "health-probe-bind-address", o.HealthProbeBindAddress, `Address of /healthz and /readyz; "0" turns it off.`)
	fs.StringVar(&o.Namespace, "namespace", o.Namespace, "The injector's own namespace (default from $POD_NAMESPACE): never injected; its SidecarProfiles apply where a namespace has none.")
	fs.StringVar(&o.SidecarImage, "sidecar-image", o.SidecarImage, "Sidecar image for SidecarProfiles that name none.")
	fs.BoolVar(&o.LeaderElect, "leader-elect", o.LeaderElect, "Elect one replica to update SidecarProfile status (webhooks are served by all).")
}

func (o *Options) setDefaults() {
	if o.WebhookPort == 0 {
		o.WebhookPort = DefaultWebhookPort
	}
	if o.CertDir == "" {
		o.CertDir = DefaultCertDir
	}
	if o.MetricsBindAddress == "" {
		o.MetricsBindAddress = DefaultMetricsBindAddress
	}
	if o.HealthProbeBindAddress == "" {
		o.HealthProbeBindAddress = DefaultHealthProbeBindAddress
	}
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if o.SidecarImage == "" {
		o.SidecarImage = webhook.DefaultImage
	}
	if o.Version == "" {
		o.Version = "dev"
	}
}

// Validate reports the first bad option, naming its flag.
func (o *Options) Validate() error {
	if o.WebhookPort < 1 || o.WebhookPort > 65535 {
		return fmt.Errorf("--webhook-port: %d is not a port (1-65535)", o.WebhookPort)
	}
	for flagName, addr := range map[string]string{
		"--metrics-bind-address":      o.MetricsBindAddress,
		"--health-probe-bind-address": o.HealthProbeBindAddress,
	} {
		if err := validateBindAddress(addr); err != nil {
			return fmt.Errorf("%s: %w", flagName, err)
		}
	}
	if errs := validation.IsDNS1123Label(o.Namespace); len(errs) > 0 {
		return fmt.Errorf("--namespace: %q is not a namespace name: %s", o.Namespace, errs[0])
	}
	return nil
}

func validateBindAddress(addr string) error {
	if addr == "0" || addr == "" {
		return nil
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: want host:port, :port or 0: %w", addr, err)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("%q: bad port %q", addr, port)
	}
	return nil
}

var errNoConfig = errors.New("no API server configuration (Options.Config)")
