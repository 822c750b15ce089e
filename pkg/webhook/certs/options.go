package certs

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Defaults of Options. The names match config/ and the Helm chart.
const (
	DefaultNamespace         = "athenz-injector"
	DefaultSecretName        = "athenz-injector-webhook-tls"
	DefaultServiceName       = "athenz-injector-webhook"
	DefaultWebhookConfigName = "athenz-injector"
	DefaultClusterDomain     = "cluster.local"
	// DefaultCertDir is controller-runtime's default webhook CertDir.
	DefaultCertDir = "/tmp/k8s-webhook-server/serving-certs"

	DefaultCALifetime   = 5 * 365 * 24 * time.Hour
	DefaultCertLifetime = 365 * 24 * time.Hour
	DefaultInterval     = 30 * time.Second
)

// Keys of the Secret. tls.crt and tls.key are corev1.TLSCertKey and
// corev1.TLSPrivateKeyKey.
const (
	// KeyCACert is the CA certificate that signed tls.crt (PEM).
	KeyCACert = "ca.crt"
	// KeyCAKey is the CA's private key (PEM). A Secret without it is used
	// as long as it is valid, and replaced, with a new CA, when the serving
	// certificate must be renewed.
	KeyCAKey = "ca.key"
	// KeyCABundle is what the webhooks' caBundle is set to (PEM): ca.crt
	// first, then earlier CAs that had not expired when ca.crt replaced
	// them. Absent, the bundle is ca.crt alone.
	KeyCABundle = "ca-bundle.crt"
)

// Options configure a Manager. Every field but Client has a working zero
// value.
type Options struct {
	// Client creates and updates the Secret and patches the
	// MutatingWebhookConfiguration; it also reads them unless Reader is
	// set. Its scheme must know core/v1 and admissionregistration/v1.
	// Required.
	Client client.Client
	// Reader reads the Secret and the MutatingWebhookConfiguration. Reads
	// must reach the API server, not an informer cache: with a
	// controller-runtime manager pass mgr.GetAPIReader() (mgr.GetClient()
	// would start cluster-wide informers on Secrets). Default: Client.
	Reader client.Reader

	// Namespace of the Secret and the Service. Default: DefaultNamespace.
	Namespace string
	// SecretName holds the CA and the serving certificate.
	// Default: DefaultSecretName.
	SecretName string
	// ServiceName is the webhook Service. The serving certificate covers
	// <svc>, <svc>.<ns>, <svc>.<ns>.svc and <svc>.<ns>.svc.<ClusterDomain>.
	// Default: DefaultServiceName.
	ServiceName string
	// ClusterDomain is the cluster's DNS domain. Default: "cluster.local".
	ClusterDomain string
	// ExtraNames are more DNS names or IP addresses for the serving
	// certificate, e.g. 127.0.0.1 when the webhook's URL points at an
	// injector running outside the cluster. Default: none.
	ExtraNames []string
	// WebhookConfigName is the MutatingWebhookConfiguration whose every
	// webhook gets the CA bundle as clientConfig.caBundle.
	// Default: DefaultWebhookConfigName.
	WebhookConfigName string
	// CertDir receives tls.crt and tls.key, for the webhook server's
	// certificate watcher. Default: DefaultCertDir.
	CertDir string

	// CALifetime is the validity of a new CA. Default: 5 years.
	CALifetime time.Duration
	// CARenewBefore: a CA is replaced when less than this, or less than a
	// third of its own lifetime, remains. Default: CALifetime/3 (20 months
	// with the default lifetime).
	CARenewBefore time.Duration
	// CertLifetime is the validity of a new serving certificate, cut to the
	// CA's expiry. Default: 1 year.
	CertLifetime time.Duration
	// RenewBefore: the serving certificate is renewed when less than this,
	// or less than a third of its own lifetime, remains. Default:
	// CertLifetime/3 (about 4 months with the default lifetime).
	RenewBefore time.Duration
	// Interval between two reconciliations, with ±10% jitter. A failed one
	// is retried sooner, backing off from 1s up to Interval.
	// Default: 30s.
	Interval time.Duration

	// Now is the clock for issuing and checking certificates.
	// Default: time.Now.
	Now func() time.Time
	// Logger receives what the Manager does. Key material is never
	// logged. Default: discard.
	Logger logr.Logger
}

func (o *Options) setDefaults() {
	if o.Reader == nil && o.Client != nil {
		o.Reader = o.Client
	}
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if o.SecretName == "" {
		o.SecretName = DefaultSecretName
	}
	if o.ServiceName == "" {
		o.ServiceName = DefaultServiceName
	}
	if o.ClusterDomain == "" {
		o.ClusterDomain = DefaultClusterDomain
	}
	if o.WebhookConfigName == "" {
		o.WebhookConfigName = DefaultWebhookConfigName
	}
	if o.CertDir == "" {
		o.CertDir = DefaultCertDir
	}
	if o.CALifetime == 0 {
		o.CALifetime = DefaultCALifetime
	}
	if o.CARenewBefore == 0 {
		o.CARenewBefore = o.CALifetime / 3
	}
	if o.CertLifetime == 0 {
		o.CertLifetime = DefaultCertLifetime
	}
	if o.RenewBefore == 0 {
		o.RenewBefore = o.CertLifetime / 3
	}
	if o.Interval == 0 {
		o.Interval = DefaultInterval
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger.GetSink() == nil {
		o.Logger = logr.Discard()
	}
}

// validate reports the first bad option, naming its field.
func (o *Options) validate() error {
	if o.Client == nil {
		return errors.New("options: Client is required")
	}
	if errs := validation.IsDNS1123Label(o.Namespace); len(errs) > 0 {
		return fmt.Errorf("options: Namespace %q: %s", o.Namespace, errs[0])
	}
	if errs := validation.IsDNS1123Subdomain(o.SecretName); len(errs) > 0 {
		return fmt.Errorf("options: SecretName %q: %s", o.SecretName, errs[0])
	}
	if errs := validation.IsDNS1035Label(o.ServiceName); len(errs) > 0 {
		return fmt.Errorf("options: ServiceName %q: %s", o.ServiceName, errs[0])
	}
	if errs := validation.IsDNS1123Subdomain(o.ClusterDomain); len(errs) > 0 {
		return fmt.Errorf("options: ClusterDomain %q: %s", o.ClusterDomain, errs[0])
	}
	if errs := validation.IsDNS1123Subdomain(o.WebhookConfigName); len(errs) > 0 {
		return fmt.Errorf("options: WebhookConfigName %q: %s", o.WebhookConfigName, errs[0])
	}
	for _, n := range o.ExtraNames {
		if net.ParseIP(n) != nil {
			continue
		}
		if errs := validation.IsDNS1123Subdomain(n); len(errs) > 0 {
			return fmt.Errorf("options: ExtraNames: %q is neither a DNS name nor an IP address", n)
		}
	}
	for _, d := range []struct {
		name  string
		value time.Duration
	}{
		{"CALifetime", o.CALifetime}, {"CARenewBefore", o.CARenewBefore},
		{"CertLifetime", o.CertLifetime}, {"RenewBefore", o.RenewBefore},
		{"Interval", o.Interval},
	} {
		if d.value < 0 {
			return fmt.Errorf("options: %s %s is negative", d.name, d.value)
		}
	}
	if o.CARenewBefore >= o.CALifetime {
		return fmt.Errorf("options: CARenewBefore %s must be shorter than CALifetime %s", o.CARenewBefore, o.CALifetime)
	}
	if o.RenewBefore >= o.CertLifetime {
		return fmt.Errorf("options: RenewBefore %s must be shorter than CertLifetime %s", o.RenewBefore, o.CertLifetime)
	}
	if o.CertLifetime > o.CALifetime-o.CARenewBefore {
		return fmt.Errorf("options: CertLifetime %s must not exceed CALifetime - CARenewBefore (%s), or serving certificates would be cut short by their CA",
			o.CertLifetime, o.CALifetime-o.CARenewBefore)
	}
	return nil
}

// names returns the DNS names and IP addresses the serving certificate
// must cover.
func (o *Options) names() (dns []string, ips []net.IP) {
	svc, ns := o.ServiceName, o.Namespace
	dns = []string{svc, svc + "." + ns, svc + "." + ns + ".svc", svc + "." + ns + ".svc." + o.ClusterDomain}
	for _, n := range o.ExtraNames {
		if ip := net.ParseIP(n); ip != nil {
			ips = append(ips, ip)
		} else {
			dns = append(dns, n)
		}
	}
	return dns, ips
}
