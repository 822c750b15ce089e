package framework

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/athenz-injector/athenz-injector/api/v1alpha1"
	"github.com/athenz-injector/athenz-injector/pkg/tokens/ztsfake"

	"github.com/athenz-injector/athenz-injector/pkg/webhook/webhooktest"
)

// The names of the scenario: DESIGN.md's user's day, in namespace sports.
const (
	ReleaseName      = "athenz-injector"
	ReleaseNamespace = "athenz-system"
	ChartPath        = "charts/athenz-injector"
	// ProfileName is the chart's SidecarProfile, in ReleaseNamespace: the
	// profile of every namespace without one of its own.
	ProfileName = "default"

	AppNamespace = "sports"
	// AppName names the Deployment, its ServiceAccount and its container's
	// label app=<AppName>.
	AppName      = "web"
	AppContainer = "app"
	AppImage     = "registry.example.com/sports/web:1.0"

	// The Athenz identity of the app: namespace sports is domain sports,
	// service account web is service web (pkg/tokens naming).
	Domain  = "sports"
	Service = "web"
	// Role is granted to sports.web in the fake ZTS and prefetched.
	Role     = "reader"
	Prefetch = Domain + ":role." + Role

	Provider      = "sys.auth.k8s"
	DNSSuffix     = "athenz.example.com"
	TokenAudience = "athenz"
	// ZTSCAConfigMap holds the fake ZTS's CA under ZTSCAKey in AppNamespace.
	ZTSCAConfigMap = "athenz-zts-ca"
	ZTSCAKey       = "ca.pem"

	// SidecarImage is the injector's --sidecar-image; the Kubelet runs the
	// locally built sidecar for it.
	SidecarImage     = "ghcr.io/athenz-injector/athenz-sidecar:dev"
	SidecarContainer = "athenz-sidecar"

	AnnotationInject = "athenz.io/inject"
	AnnotationStatus = "athenz.io/status"
)

// ScenarioOptions configure NewScenario.
type ScenarioOptions struct {
	// Dir receives every file of the run (logs, kubeconfigs, volumes).
	// Default: a new temporary directory, removed by Close.
	Dir string
	// Root is the repository. Default: webhooktest.RepoRoot().
	Root string
	// Assets is the control plane's directory. Default: $KUBEBUILDER_ASSETS.
	Assets string
	// Logf reports progress details. Default: none.
	Logf func(format string, args ...any)
	// Binaries are the injector and sidecar to run. Default: Start builds
	// them with Build.
	Binaries Binaries
	// PreferPodPorts runs the sidecar on its Pod ports (8081, 8082) when
	// they are free here, so that commands look as in a Pod; else on free
	// ports. Default: always free ports.
	PreferPodPorts bool
}

// Scenario is the whole product on one machine. Its steps, in order:
// Start, StartZTS, InstallChart, StartInjector, WaitProfileReady,
// DeployApp, Annotate, WaitInjectedPod, RunSidecar. Close stops
// everything. A Scenario is not safe for concurrent use.
type Scenario struct {
	Root, Dir string

	CP     *ControlPlane
	Client client.Client // admin, with the athenz.io types
	Bin    Binaries
	Helm   *Helm
	ZTS    *ztsfake.Server
	// CA signs the serving certificates of the webhooks (WebhookCertDir)
	// and of the provider callback (ProviderCertDir).
	CA              *TestCA
	WebhookCertDir  string
	ProviderCertDir string
	// ProviderURL is the injector's identity provider callback, which the
	// fake ZTS asks to confirm each instance.
	ProviderURL string
	Injector    *Injector
	Kubelet     *Kubelet
	Sidecar     *Container
	// SidecarURL is the sidecar's token API, as the app container's
	// ATHENZ_SIDECAR_URL names it, with the local port.
	SidecarURL string
	// HealthURL is the sidecar's health listener.
	HealthURL string

	// HelmCommand and ValuesFile are the helm install that InstallChart ran.
	HelmCommand []string
	ValuesFile  string

	opts         ScenarioOptions
	removeDir    bool
	webhookPort  int
	providerAddr string
	confirmed    atomic.Int64
	cleanups     []func() error
}

// NewScenario prepares a scenario; nothing runs yet.
func NewScenario(o ScenarioOptions) (*Scenario, error) {
	s := &Scenario{opts: o, Root: o.Root, Dir: o.Dir}
	if s.Root == "" {
		root, err := webhooktest.RepoRoot()
		if err != nil {
			return nil, err
		}
		s.Root = root
	}
	if s.Dir == "" {
		dir, err := os.MkdirTemp("", "athenz-injector-demo-")
		if err != nil {
			return nil, err
		}
		s.Dir, s.removeDir = dir, true
	}
	if s.opts.Logf == nil {
		s.opts.Logf = func(string, ...any) {}
	}
	return s, nil
}

func (s *Scenario) logf(format string, args ...any) { s.opts.Logf(format, args...) }

func (s *Scenario) onClose(f func() error) { s.cleanups = append(s.cleanups, f) }

// Close stops everything that was started, the last first, and removes the
// directory NewScenario created.
func (s *Scenario) Close() error {
	var errs []error
	for i := len(s.cleanups) - 1; i >= 0; i-- {
		if err := s.cleanups[i](); err != nil {
			errs = append(errs, err)
		}
	}
	s.cleanups = nil
	if s.removeDir {
		if err := os.RemoveAll(s.Dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Start starts the control plane while it builds the injector and sidecar
// (unless ScenarioOptions.Binaries names them) and finds Helm
// (hack/build-helm.sh), all at once.
func (s *Scenario) Start(ctx context.Context) error {
	var wg sync.WaitGroup
	var buildErr, helmErr error
	var helmBin string
	s.Bin = s.opts.Binaries
	if s.Bin.Injector == "" || s.Bin.Sidecar == "" {
		wg.Go(func() {
			bctx, cancel := WithTimeout(ctx, 10*time.Minute, "go build of the injector and sidecar")
			defer cancel()
			s.Bin, buildErr = Build(bctx, s.Root, filepath.Join(s.Dir, "bin"))
		})
	}
	wg.Go(func() {
		hctx, cancel := WithTimeout(ctx, 10*time.Minute, "hack/build-helm.sh")
		defer cancel()
		helmBin, helmErr = HelmBinary(hctx, s.Root)
	})
	cp, cpErr := StartControlPlane(ctx, ControlPlaneOptions{Dir: s.Dir, Assets: s.opts.Assets})
	wg.Wait()
	if cp != nil {
		s.CP = cp
		s.onClose(cp.Stop)
	}
	if err := errors.Join(cpErr, buildErr, helmErr); err != nil {
		return err
	}
	s.logf("kube-apiserver %s, kube-controller-manager pid %d (controllers %v)", cp.APIServerURL(), cp.ControllerManager.Pid(), ControllerManagerControllers)
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return err
	}
	c, err := client.New(cp.Config, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	s.Client = c
	s.Helm = NewHelm(helmBin, s.Root, filepath.Join(s.Dir, "helm"), cp.Kubeconfig)
	s.Kubelet = &Kubelet{Clientset: cp.Clientset, Dir: filepath.Join(s.Dir, "pods"), Images: map[string]string{SidecarImage: s.Bin.Sidecar}}

	// The injector's addresses and certificates: the webhooks' for
	// 127.0.0.1; the provider callback's also for 127.0.0.1, with the
	// provider service's name as common name, which ZTS checks.
	loopback := net.IPv4(127, 0, 0, 1)
	if s.CA, err = NewTestCA(filepath.Join(s.Dir, "certs")); err != nil {
		return err
	}
	s.WebhookCertDir = filepath.Join(s.Dir, "certs", "webhook")
	s.ProviderCertDir = filepath.Join(s.Dir, "certs", "provider")
	if err := s.CA.IssueServing(s.WebhookCertDir, "127.0.0.1", loopback); err != nil {
		return err
	}
	if err := s.CA.IssueServing(s.ProviderCertDir, Provider, loopback); err != nil {
		return err
	}
	if s.webhookPort, err = FreePort(); err != nil {
		return err
	}
	if s.providerAddr, err = FreeAddr(); err != nil {
		return err
	}
	s.ProviderURL = "https://" + s.providerAddr
	return nil
}

// StartZTS starts the fake ZTS on 127.0.0.1 with role Role of Domain
// granted to Domain.Service. Before it signs a certificate it asks the
// injector's provider callback (ProviderURL, as ZTS asks an HTTP provider:
// ztsfake.HTTPProvider, checking that the callback's certificate names
// Provider).
func (s *Scenario) StartZTS() error {
	attest := ztsfake.HTTPProvider(s.ProviderURL, ztsfake.HTTPProviderClient(Provider, s.CA.Pool()))
	zts, err := ztsfake.Start(ztsfake.Options{
		Attest: func(ctx context.Context, c ztsfake.InstanceConfirmation) (map[string]string, error) {
			attrs, err := attest(ctx, c)
			if err == nil {
				s.confirmed.Add(1)
			}
			return attrs, err
		},
	})
	if err != nil {
		return err
	}
	s.ZTS = zts
	s.onClose(func() error { zts.Close(); return nil })
	zts.Grant(Domain, Role, Domain+"."+Service)
	return nil
}

// Confirmed counts the instances (register or refresh) that the provider
// callback confirmed to the fake ZTS.
func (s *Scenario) Confirmed() int64 { return s.confirmed.Load() }

// InstallChart writes the chart values and runs helm install: the
// injector runs outside the cluster (injector.enabled=false, webhook.url on
// 127.0.0.1), certificates are manual, the provider callback is on (its
// RBAC), and the chart creates the SidecarProfile pointing at the fake ZTS.
// It returns helm's output.
func (s *Scenario) InstallChart(ctx context.Context) (string, error) {
	values := fmt.Sprintf(`# The injector runs outside the cluster, as a local process.
injector:
  enabled: false
webhook:
  url: https://127.0.0.1:%d
certs:
  mode: manual   # the CA comes with --set-file certs.manual.caBundle
# The identity provider callback: ZTS asks it to confirm each Pod.
provider:
  enabled: true
  audience: %s
# The SidecarProfile "default" in the release namespace: every namespace's.
profile:
  create: true
  zts:
    url: %s
    ca:
      configMap: {name: %s, key: %s}
  identity:
    mode: copper-argos
    provider: %s
    dnsSuffix: %s
    tokenAudience: %s
  prefetch: [%q]
`, s.webhookPort, TokenAudience, s.ZTS.URL(), ZTSCAConfigMap, ZTSCAKey, Provider, DNSSuffix, TokenAudience, Prefetch)
	s.ValuesFile = filepath.Join(s.Dir, "values.yaml")
	if err := os.WriteFile(s.ValuesFile, []byte(values), 0o644); err != nil {
		return "", err
	}
	s.HelmCommand = []string{"install", ReleaseName, ChartPath, "--namespace", ReleaseNamespace, "--create-namespace",
		"-f", s.ValuesFile, "--set-file", "certs.manual.caBundle=" + s.CA.File}
	ctx, cancel := WithTimeout(ctx, 90*time.Second, "helm install")
	defer cancel()
	out, err := s.Helm.Run(ctx, s.HelmCommand...)
	if err != nil {
		return out, err
	}
	return out, nil
}

// StartInjector starts the injector as the chart's ServiceAccount (so the
// chart's RBAC is what it gets) and waits until it is ready.
func (s *Scenario) StartInjector(ctx context.Context) error {
	user := "system:serviceaccount:" + ReleaseNamespace + ":" + ReleaseName
	kubeconfig, _, err := s.CP.AddUser("injector", envtest.User{Name: user,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ReleaseNamespace}})
	if err != nil {
		return err
	}
	inj, err := StartInjector(ctx, InjectorOptions{
		Binary:      s.Bin.Injector,
		Kubeconfig:  kubeconfig,
		Namespace:   ReleaseNamespace,
		CertDir:     s.WebhookCertDir,
		WebhookPort: s.webhookPort,
		Dir:         s.Dir,
		Args: []string{
			"--sidecar-image=" + SidecarImage,
			"--provider-bind-address=" + s.providerAddr,
			"--provider-audience=" + TokenAudience,
			"--provider-name=" + Provider,
			"--provider-cert-dir=" + s.ProviderCertDir,
		},
	})
	if err != nil {
		return err
	}
	s.Injector = inj
	s.onClose(func() error { return inj.Stop(0) })
	s.logf("injector pid %d, webhooks on %s, provider callback on %s, acting as %s", inj.Pid(), inj.WebhookURL, s.ProviderURL, user)
	return nil
}

// portFor returns the local address for a container port: the same port
// when PreferPodPorts is set and it is free, else a free port.
func (s *Scenario) portFor(port int32) (string, error) {
	if s.opts.PreferPodPorts {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port)))
		if l, err := net.Listen("tcp", addr); err == nil {
			l.Close()
			return addr, nil
		}
	}
	return FreeAddr()
}
