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
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/rest"

	"github.com/athenz-injector/athenz-injector/pkg/webhook"
	"github.com/athenz-injector/athenz-injector/pkg/webhook/certs"
)

// Defaults of Options.
const (
	DefaultWebhookPort            = 9443
	DefaultCertDir                = "/tmp/k8s-webhook-server/serving-certs"
	DefaultMetricsBindAddress     = ":8080"
	DefaultHealthProbeBindAddress = ":8081"
	DefaultNamespace              = "athenz-injector"
)

// Certificate modes (--cert-mode).
const (
	// CertModeExternal serves the certificate something else writes to
	// --cert-dir (cert-manager, a Secret the user provides).
	CertModeExternal = "external"
	// CertModeAuto makes the injector keep a CA and serving certificate in
	// a Secret, patch the webhook configuration's caBundle, and write the
	// certificate to --cert-dir (pkg/webhook/certs).
	CertModeAuto = "auto"
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
	// CertMode is CertModeExternal (default) or CertModeAuto.
	CertMode string
	// CertSecret, WebhookConfigName and ServiceName are what auto mode
	// manages: the Secret holding CA and certificate, the
	// MutatingWebhookConfiguration whose caBundle it patches, and the
	// Service the certificate is for. Defaults: those of pkg/webhook/certs.
	CertSecret, WebhookConfigName, ServiceName string
	// CertDNSNames are extra DNS names or IPs for the auto-mode certificate
	// (an injector running outside the cluster behind webhook.url needs
	// 127.0.0.1 or its host name).
	CertDNSNames []string
	// ProviderBindAddress serves the identity provider callback that ZTS
	// calls to confirm a Pod's attestation (pkg/webhook/provider). Empty:
	// off.
	ProviderBindAddress string
	// ProviderAudience is the audience service account tokens must carry
	// to be accepted by the callback. Required with ProviderBindAddress.
	ProviderAudience string
	// ProviderName, when set, is the only provider service name accepted
	// in confirmations (e.g. sys.auth.k8s).
	ProviderName string
	// ProviderClientCAFile, when set, makes the callback require a client
	// certificate from ZTS verified against this CA bundle.
	ProviderClientCAFile string
	// ProviderCertDir holds the callback's certificate (tls.crt, tls.key).
	// ZTS checks that its common name is the provider service name, so it
	// is usually not the webhook's certificate. Default: CertDir.
	ProviderCertDir string
	// Version is recorded in each injected Pod's athenz.io/status.
	// Default: "dev".
	Version string
	// ShutdownDrain is how long the injector keeps serving once told to
	// stop, answering every request with "Connection: close", before its
	// servers shut down: the API server then closes its keep-alive
	// connections to this replica after an answer, instead of this replica
	// closing one under a request (an admission failure). Default: 0, no
	// drain; the command's --shutdown-drain defaults to
	// DefaultShutdownDrain.
	ShutdownDrain time.Duration

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
	fs.StringVar(&o.CertMode, "cert-mode", o.CertMode, `Serving certificate: "external" (files in --cert-dir written by cert-manager or a Secret) or "auto" (the injector keeps a CA and certificate in --cert-secret and patches the webhook configuration's caBundle).`)
	fs.StringVar(&o.CertSecret, "cert-secret", o.CertSecret, "auto mode: the Secret in --namespace holding the CA and serving certificate.")
	fs.StringVar(&o.WebhookConfigName, "webhook-config-name", o.WebhookConfigName, "auto mode: the MutatingWebhookConfiguration whose caBundle is kept.")
	fs.StringVar(&o.ServiceName, "service-name", o.ServiceName, "auto mode: the webhook Service the certificate names (<svc>, <svc>.<ns>, <svc>.<ns>.svc...).")
	fs.StringVar(&o.ProviderBindAddress, "provider-bind-address", o.ProviderBindAddress, "Address of the Athenz identity provider callback (POST /instance, /refresh) that ZTS calls; empty turns it off.")
	fs.StringVar(&o.ProviderAudience, "provider-audience", o.ProviderAudience, "Audience the service account tokens in attestation data must carry (required with --provider-bind-address).")
	fs.StringVar(&o.ProviderName, "provider-name", o.ProviderName, "Only accept confirmations for this provider service (e.g. sys.auth.k8s); empty accepts the one each Pod's profile names.")
	fs.StringVar(&o.ProviderClientCAFile, "provider-client-ca-file", o.ProviderClientCAFile, "Require a client certificate from ZTS verified against this CA bundle.")
	fs.DurationVar(&o.ShutdownDrain, "shutdown-drain", o.ShutdownDrain, `How long to keep serving after SIGTERM, asking clients to close their connections ("Connection: close"), before shutting down; "0s" turns it off.`)
	fs.StringVar(&o.ProviderCertDir, "provider-cert-dir", o.ProviderCertDir, "Directory with the callback's tls.crt and tls.key (common name: the provider service); default --cert-dir.")
	fs.Func("cert-dns-names", "auto mode: extra comma-separated DNS names or IPs for the certificate (e.g. 127.0.0.1 for an injector outside the cluster).", func(v string) error {
		o.CertDNSNames = nil
		for n := range strings.SplitSeq(v, ",") {
			if n = strings.TrimSpace(n); n != "" {
				o.CertDNSNames = append(o.CertDNSNames, n)
			}
		}
		return nil
	})
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
	if o.CertMode == "" {
		o.CertMode = CertModeExternal
	}
	if o.CertSecret == "" {
		o.CertSecret = certs.DefaultSecretName
	}
	if o.WebhookConfigName == "" {
		o.WebhookConfigName = certs.DefaultWebhookConfigName
	}
	if o.ServiceName == "" {
		o.ServiceName = certs.DefaultServiceName
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
	if o.ProviderBindAddress != "" {
		if err := validateBindAddress(o.ProviderBindAddress); err != nil {
			return fmt.Errorf("--provider-bind-address: %w", err)
		}
		if o.ProviderAudience == "" {
			return errors.New("--provider-audience is required with --provider-bind-address")
		}
	}
	if o.ShutdownDrain < 0 {
		return fmt.Errorf("--shutdown-drain: %v is negative", o.ShutdownDrain)
	}
	switch o.CertMode {
	case CertModeExternal, CertModeAuto:
	default:
		return fmt.Errorf("--cert-mode: %q: want %s or %s", o.CertMode, CertModeExternal, CertModeAuto)
	}
	for flagName, name := range map[string]string{"--cert-secret": o.CertSecret, "--webhook-config-name": o.WebhookConfigName, "--service-name": o.ServiceName} {
		if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
			return fmt.Errorf("%s: %q: %s", flagName, name, errs[0])
		}
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
