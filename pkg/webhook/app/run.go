package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/athenz-injector/athenz-injector/api/v1alpha1"
	"github.com/athenz-injector/athenz-injector/pkg/webhook"
	webhookcerts "github.com/athenz-injector/athenz-injector/pkg/webhook/certs"
	"github.com/athenz-injector/athenz-injector/pkg/webhook/provider"
)

// NewScheme returns the injector's scheme: the built-in types and
// athenz.io/v1alpha1. Nothing is registered in a global scheme.
func NewScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		return nil, err
	}
	return s, nil
}

// RBAC of --leader-elect: client-go's lease lock reads, creates and renews
// (updates) one Lease, and the manager records the "became leader" Event
// (created; a repeat of the same Event would be a patch, which is left out:
// the Event is then dropped with a log line).
//
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=athenz-injector,resources=leases,verbs=get;create;update
// +kubebuilder:rbac:groups="",namespace=athenz-injector,resources=events,verbs=create

// Run serves the injector until ctx is done. It is ready (/readyz) once the
// serving certificate is loaded, the webhook server answers TLS, and the
// caches of Namespaces and SidecarProfiles have synced.
func Run(ctx context.Context, o Options) error {
	o.setDefaults()
	if err := o.Validate(); err != nil {
		return err
	}
	if o.Config == nil {
		return errNoConfig
	}
	log := o.Logger
	if log.GetSink() == nil {
		log = logr.Discard()
	}
	// The manager and the servers stop ShutdownDrain after ctx is done.
	drain := &drainer{}
	ctx, stop := drain.stopAfterDrain(ctx, o.ShutdownDrain, log)
	defer stop()
	scheme, err := NewScheme()
	if err != nil {
		return fmt.Errorf("building scheme: %w", err)
	}
	reg := o.Registry
	if reg == nil {
		reg = ctrlmetrics.Registry
	}
	metrics, err := webhook.NewMetrics(reg)
	if err != nil {
		return fmt.Errorf("registering metrics: %w", err)
	}

	certs := newCertLoader(filepath.Join(o.CertDir, "tls.crt"), filepath.Join(o.CertDir, "tls.key"), log.WithName("certs"))
	mgr, err := ctrl.NewManager(o.Config, ctrl.Options{
		Scheme: scheme,
		Logger: log,
		Metrics: metricsserver.Options{
			BindAddress: o.MetricsBindAddress,
		},
		HealthProbeBindAddress: o.HealthProbeBindAddress,
		WebhookServer: ctrlwebhook.NewServer(ctrlwebhook.Options{
			Host: o.WebhookHost,
			Port: o.WebhookPort,
			TLSOpts: []func(*tls.Config){func(c *tls.Config) {
				c.GetCertificate = certs.GetCertificate
				c.MinVersion = tls.VersionTLS12
				// HTTP/2 is off, as in kubebuilder's scaffold: its
				// rapid-reset and stream attacks are not worth the gain for
				// a webhook.
				c.NextProtos = []string{"http/1.1"}
			}},
		}),
		LeaderElection:                o.LeaderElect,
		LeaderElectionID:              "athenz-injector.athenz.io",
		LeaderElectionNamespace:       o.Namespace,
		LeaderElectionReleaseOnCancel: true,
		Cache: cache.Options{
			DefaultTransform: cache.TransformStripManagedFields(),
			ByObject: map[client.Object]cache.ByObject{
				// ConfigMaps: the sources of ZTS CA bundles in the
				// injector's namespace, and elsewhere only the copies.
				&corev1.ConfigMap{}: {Namespaces: map[string]cache.Config{
					o.Namespace:         {},
					cache.AllNamespaces: {LabelSelector: labels.SelectorFromSet(labels.Set{webhook.LabelZTSCA: "true"})},
				}},
			},
			// Admission reads only what is cached: never a live call.
			ReaderFailOnMissingInformer: true,
		},
	})
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}
	if err := mgr.Add(certs); err != nil {
		return err
	}
	readyChecks := map[string]healthz.Checker{}
	if o.CertMode == CertModeAuto {
		rotator, err := webhookcerts.New(webhookcerts.Options{
			Client: mgr.GetClient(),
			// Reads go to the API server: the manager's cache refuses
			// kinds it has no informer for, and Secrets should not be
			// cached cluster-wide for one object.
			Reader:            mgr.GetAPIReader(),
			Namespace:         o.Namespace,
			SecretName:        o.CertSecret,
			ServiceName:       o.ServiceName,
			WebhookConfigName: o.WebhookConfigName,
			ExtraNames:        o.CertDNSNames,
			CertDir:           o.CertDir,
			Logger:            log.WithName("certs-auto"),
		})
		if err != nil {
			return fmt.Errorf("--cert-mode=auto: %w", err)
		}
		if err := mgr.Add(rotator); err != nil {
			return err
		}
		readyChecks["certificate-rotation"] = rotator.Ready
	}
	for _, obj := range []client.Object{&corev1.Namespace{}, &v1alpha1.SidecarProfile{}} {
		if _, err := mgr.GetCache().GetInformer(ctx, obj); err != nil {
			return fmt.Errorf("setting up the cache of %T: %w", obj, err)
		}
	}

	hooks := webhook.Options{
		Settings: webhook.Settings{Version: o.Version, Image: o.SidecarImage, Namespace: o.Namespace},
		Reader:   mgr.GetCache(),
		Metrics:  metrics,
		Logger:   log.WithName("webhook"),
	}
	srv := mgr.GetWebhookServer()
	srv.Register(webhook.PathPods, drain.wrap(&ctrlwebhook.Admission{Handler: webhook.NewPodHandler(hooks)}))
	srv.Register(webhook.PathWorkloads, drain.wrap(&ctrlwebhook.Admission{Handler: webhook.NewWorkloadHandler(hooks)}))

	if o.ProviderBindAddress != "" {
		check, err := addProvider(ctx, mgr, o, certs, drain, log.WithName("provider"))
		if err != nil {
			return err
		}
		readyChecks["provider"] = check
	}

	if err := (&webhook.ProfileReconciler{Client: mgr.GetClient(), Version: o.Version}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the SidecarProfile reconciler: %w", err)
	}
	if err := (&webhook.ZTSCAReconciler{Client: mgr.GetClient(), Secrets: mgr.GetAPIReader(), Namespace: o.Namespace}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the ZTS CA copies: %w", err)
	}

	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	readyChecks["certificate"] = certs.Loaded
	readyChecks["webhook"] = srv.StartedChecker()
	readyChecks["cache"] = cacheSynced(mgr.GetCache())
	for name, check := range readyChecks {
		if err := mgr.AddReadyzCheck(name, check); err != nil {
			return err
		}
	}
	log.Info("starting injector", "version", o.Version, "namespace", o.Namespace, "webhookPort", o.WebhookPort, "certMode", o.CertMode)
	return mgr.Start(ctx)
}

// cacheSynced is a readiness check that passes once every informer of the
// cache has synced.
func cacheSynced(c cache.Cache) healthz.Checker {
	return func(req *http.Request) error {
		ctx, cancel := context.WithTimeout(req.Context(), 500*time.Millisecond)
		defer cancel()
		if !c.WaitForCacheSync(ctx) {
			return fmt.Errorf("informer cache not synced yet")
		}
		return nil
	}
}

// addProvider serves the identity provider callback on its own listener,
// with Namespaces and SidecarProfiles read from the manager's cache and
// Pods from a provider.PodCache that keeps only what the checks read (live,
// with a list by name, only on a miss). It serves webhookCerts unless
// --provider-cert-dir names another directory. The check it returns passes
// once the callback serves and the Pods are cached.
func addProvider(_ context.Context, mgr ctrl.Manager, o Options, webhookCerts *certLoader, drain *drainer, log logr.Logger) (healthz.Checker, error) {
	cs, err := kubernetes.NewForConfig(mgr.GetConfig())
	if err != nil {
		return nil, fmt.Errorf("provider: %w", err)
	}
	// The Pods are listed and watched as protobuf: decoding the first list
	// of a large cluster as JSON costs several times its size in garbage.
	pcfg := rest.CopyConfig(mgr.GetConfig())
	pcfg.ContentType = runtime.ContentTypeProtobuf
	pcfg.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	podClient, err := kubernetes.NewForConfig(pcfg)
	if err != nil {
		return nil, fmt.Errorf("provider: %w", err)
	}
	pods := provider.NewPodCache(podClient)
	if err := mgr.Add(pods); err != nil {
		return nil, err
	}
	h, err := provider.NewHandler(provider.Options{
		Reader:            mgr.GetCache(),
		Pods:              pods,
		LiveReader:        mgr.GetAPIReader(),
		TokenReviews:      cs.AuthenticationV1().TokenReviews(),
		Audience:          o.ProviderAudience,
		InjectorNamespace: o.Namespace,
		Provider:          o.ProviderName,
		Logger:            log,
	})
	if err != nil {
		return nil, err
	}
	certs := webhookCerts
	if o.ProviderCertDir != "" && o.ProviderCertDir != o.CertDir {
		certs = newCertLoader(filepath.Join(o.ProviderCertDir, "tls.crt"), filepath.Join(o.ProviderCertDir, "tls.key"), log.WithName("certs"))
		if err := mgr.Add(certs); err != nil {
			return nil, err
		}
	}
	if o.ProviderClientCAFile == "" {
		log.Info("the provider callback asks for no client certificate: anyone who reaches its port is answered; set --provider-client-ca-file to ZTS's CA outside development")
	}
	srv, err := provider.NewServer(provider.ServerOptions{
		Addr: o.ProviderBindAddress, Handler: drain.wrap(h), GetCertificate: certs.GetCertificate,
		ClientCAFile: o.ProviderClientCAFile, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	if err := mgr.Add(srv); err != nil {
		return nil, err
	}
	return func(req *http.Request) error {
		if !pods.HasSynced() {
			return errors.New("the cache of Pods has not synced yet")
		}
		return srv.Started(req)
	}, nil
}
