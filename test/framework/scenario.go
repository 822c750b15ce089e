package framework

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/athenz-injector/athenz-injector/api/v1alpha1"
	"github.com/athenz-injector/athenz-injector/pkg/inspect"
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
	// AppUID is the app container's user and group: not the sidecar's
	// (65532), not root.
	AppUID = 1000

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
	// ZTSCAConfigMap holds the fake ZTS's CA under ZTSCAKey in
	// ReleaseNamespace: the chart's profile names it, and the injector
	// copies it into the namespaces it injects into.
	ZTSCAConfigMap = "athenz-zts-ca"
	ZTSCAKey       = "ca.pem"
	// ProviderCertSecret is the provider callback's serving certificate,
	// whose common name is Provider (ZTS checks it).
	ProviderCertSecret = "athenz-provider-tls"

	SidecarContainer = "athenz-sidecar"

	AnnotationInject = "athenz.io/inject"
	AnnotationStatus = "athenz.io/status"
)

// ScenarioOptions configure NewScenario.
type ScenarioOptions struct {
	// Dir receives every file of the run (logs, kubeconfigs, the node's
	// state). Default: a new temporary directory, removed by Close.
	Dir string
	// Root is the repository. Default: webhooktest.RepoRoot().
	Root string
	// Assets is the control plane's directory. Default: $KUBEBUILDER_ASSETS.
	Assets string
	// Logf reports progress details. Default: none.
	Logf func(format string, args ...any)
	// PlayKubelet runs no node: the control plane and the injector run on
	// 127.0.0.1 as local processes, and RunSidecar plays the kubelet for
	// the sidecar container (the demo, where the machine cannot run a
	// node). Default false: a real node (containerd, kubelet, kube-proxy,
	// kube-scheduler), the injector in the cluster as the chart installs it.
	PlayKubelet bool
	// Binaries are the injector and sidecar to run when PlayKubelet is
	// set. Default: Start builds them.
	Binaries Binaries
	// PreferPodPorts (PlayKubelet) runs the sidecar on its Pod ports (8081,
	// 8082) when they are free here, so that commands look as in a Pod.
	PreferPodPorts bool
	// CertLifetime is the fake ZTS's certificate lifetime (default and
	// maximum). Default ztsfake's.
	CertLifetime time.Duration
}

// Scenario is the whole product on one machine. Its steps, in order:
// Start, StartZTS, InstallChart, StartInjector, WaitProfileReady, then the
// app's: DeployApp, Annotate, WaitInjectedPod (and RunSidecar with
// PlayKubelet). Close stops everything. A Scenario is not safe for
// concurrent use, but for the methods that say so.
type Scenario struct {
	Root, Dir string

	Host   *Host // nil with PlayKubelet
	CP     *ControlPlane
	Node   *Node         // nil with PlayKubelet
	Client client.Client // admin, with the athenz.io types
	Images Images
	Bin    Binaries
	Helm   *Helm
	ZTS    *ztsfake.Server
	// CA is the control plane's: it signs the provider callback's
	// certificate and the test servers' the Pods call.
	CA *TestCA
	// ProviderURL is the injector's identity provider callback, which the
	// fake ZTS asks to confirm each instance.
	ProviderURL string
	// Injector is the injector process (PlayKubelet).
	Injector *Injector
	// PlayedKubelet and Sidecar (PlayKubelet) run the sidecar container.
	PlayedKubelet *PlayedKubelet
	Sidecar       *Container
	// SidecarURL (PlayKubelet) is the sidecar's token API, as the app
	// container's ATHENZ_SIDECAR_URL names it, with the local port.
	SidecarURL string
	// HealthURL (PlayKubelet) is the sidecar's health listener.
	HealthURL string

	// HelmCommand and ValuesFile are the helm install that InstallChart ran.
	HelmCommand []string
	ValuesFile  string

	opts         ScenarioOptions
	removeDir    bool
	webhookPort  int
	providerAddr string
	providerURL  atomic.Value // string: set once the provider's Service exists
	// ztsClient is the certificate the fake ZTS presents to the provider
	// callback, which answers only clients with one from ZTS's CA.
	ztsClient atomic.Pointer[tls.Certificate]
	// confirmed counts confirmations by domain: *atomic.Int64.
	confirmed sync.Map
	refused   sync.Map // domain -> true: the provider is asked nothing, ZTS refuses
	cleanups  []func() error
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
		dir, err := os.MkdirTemp("", "athenz-injector-")
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

// RealNode reports whether the scenario runs a node.
func (s *Scenario) RealNode() bool { return !s.opts.PlayKubelet }

func (s *Scenario) logf(format string, args ...any) { s.opts.Logf(format, args...) }

func (s *Scenario) onClose(f func() error) { s.cleanups = append(s.cleanups, f) }

// Close stops everything that was started, the last first, and removes the
// directory NewScenario created. With a node, its last step checks that
// the host is as it was (Host.Close).
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

// Start starts the control plane while it builds the binaries (and, with
// a node, the images) and finds Helm, then starts the node.
func (s *Scenario) Start(ctx context.Context) error {
	cpOpts := ControlPlaneOptions{Dir: filepath.Join(s.Dir, "cluster"), Assets: s.opts.Assets}
	if err := os.MkdirAll(cpOpts.Dir, 0o755); err != nil {
		return err
	}
	if s.RealNode() {
		host, err := AcquireHost(ctx, s.Dir, 15*time.Minute, s.logf)
		if err != nil {
			return err
		}
		s.Host = host
		s.onClose(func() error { return host.Close(context.Background()) })
		cpOpts.Address, cpOpts.ServiceCIDR = HostIP, ServiceCIDR.String()
	}
	var wg sync.WaitGroup
	var buildErr, helmErr error
	var helmBin string
	s.Bin = s.opts.Binaries
	wg.Go(func() {
		bctx, cancel := WithTimeout(ctx, 10*time.Minute, "go build of the injector, the sidecar and the test images")
		defer cancel()
		binDir := filepath.Join(s.Dir, "bin")
		switch {
		case s.RealNode():
			s.Images, buildErr = BuildImages(bctx, s.Root, binDir)
			s.Bin = s.Images.Binaries
		case s.Bin.Injector == "" || s.Bin.Sidecar == "":
			s.Bin, buildErr = Build(bctx, s.Root, binDir)
		}
	})
	wg.Go(func() {
		hctx, cancel := WithTimeout(ctx, 10*time.Minute, "hack/build-helm.sh")
		defer cancel()
		helmBin, helmErr = HelmBinary(hctx, s.Root)
	})
	cp, cpErr := StartControlPlane(ctx, cpOpts)
	wg.Wait()
	if cp != nil {
		s.CP = cp
		s.onClose(cp.Stop)
	}
	if err := errors.Join(cpErr, buildErr, helmErr); err != nil {
		return err
	}
	s.CA = cp.CA
	s.logf("kube-apiserver %s, kube-controller-manager pid %d", cp.APIServerURL(), cp.ControllerManager.Pid())
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

	if s.RealNode() {
		node, err := StartNode(ctx, NodeOptions{
			Dir: filepath.Join(s.Dir, "node"), Root: s.Root, CP: cp,
			Images: []string{s.Images.Tarball}, SandboxImage: s.Images.Sandbox, Logf: s.logf,
		})
		if err != nil {
			return err
		}
		s.Node = node
		s.onClose(func() error { return node.Stop(context.Background()) })
		s.logf("node %s Ready: containerd pid %d, kubelet pid %d", node.Name, node.Containerd.Pid(), node.Kubelet.Pid())
		return nil
	}

	s.PlayedKubelet = &PlayedKubelet{Clientset: cp.Clientset, Dir: filepath.Join(s.Dir, "pods"), Images: map[string]string{SidecarImage: s.Bin.Sidecar}}
	if s.webhookPort, err = FreePort(); err != nil {
		return err
	}
	if s.providerAddr, err = FreeAddr(); err != nil {
		return err
	}
	s.ProviderURL = "https://" + s.providerAddr
	s.providerURL.Store(s.ProviderURL)
	return nil
}

// StartZTS starts the fake ZTS (on HostIP with a node, where Pods reach
// it; else on 127.0.0.1) with role Role of Domain granted to
// Domain.Service. Before it signs a certificate it asks the injector's
// provider callback (as ZTS asks an HTTP provider: ztsfake.HTTPProvider,
// checking that the callback's certificate names Provider), unless
// RefuseDomain refused the domain.
func (s *Scenario) StartZTS() error {
	addr := ztsfake.DefaultAddr
	if s.RealNode() {
		addr = net.JoinHostPort(HostIP.String(), "0")
	}
	zts, err := ztsfake.Start(ztsfake.Options{
		Addr:         addr,
		CertLifetime: s.opts.CertLifetime,
		Attest: func(ctx context.Context, c ztsfake.InstanceConfirmation) (map[string]string, error) {
			if _, refused := s.refused.Load(c.Domain); refused {
				return nil, fmt.Errorf("instance of domain %s refused: the domain does not authorize provider %s", c.Domain, Provider)
			}
			url, _ := s.providerURL.Load().(string)
			if url == "" {
				return nil, errors.New("the provider service is not installed yet")
			}
			pair, err := s.ztsClientCertificate()
			if err != nil {
				return nil, err
			}
			attrs, err := ztsfake.HTTPProvider(url, ztsfake.HTTPProviderClient(Provider, s.CA.Pool(), pair))(ctx, c)
			if err == nil {
				n, _ := s.confirmed.LoadOrStore(c.Domain, new(atomic.Int64))
				n.(*atomic.Int64).Add(1)
			}
			return attrs, err
		},
	})
	if err != nil {
		return err
	}
	s.ZTS = zts
	s.onClose(func() error { zts.Close(); return nil })
	if _, err := s.ztsClientCertificate(); err != nil {
		return err
	}
	zts.Grant(Domain, Role, Domain+"."+Service)
	return nil
}

// ztsClientCertificate is the client certificate the fake ZTS presents to
// the provider callback, issued by the fake ZTS as real ZTS's is by its
// CA. It lives as long as the fake's certificates (minutes in the
// end-to-end suite), so it is issued again when less than a third of its
// life is left, as ZTS renews its own.
func (s *Scenario) ztsClientCertificate() (tls.Certificate, error) {
	if c := s.ztsClient.Load(); c != nil && time.Until(c.Leaf.NotAfter) > c.Leaf.NotAfter.Sub(c.Leaf.NotBefore)/3 {
		return *c, nil
	}
	certPEM, keyPEM, err := s.ZTS.IssueIdentity("sys.auth", "zts")
	if err != nil {
		return tls.Certificate{}, err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, err
	}
	s.ztsClient.Store(&pair)
	return pair, nil
}

// RefuseDomain makes the fake ZTS refuse every certificate for domain, as
// a real ZTS refuses a domain that does not authorize the provider. Safe
// for concurrent use.
func (s *Scenario) RefuseDomain(domain string) { s.refused.Store(domain, true) }

// Confirmed counts the instances (register or refresh) that the provider
// callback confirmed to the fake ZTS.
func (s *Scenario) Confirmed() int64 {
	var sum int64
	s.confirmed.Range(func(_, n any) bool {
		sum += n.(*atomic.Int64).Load()
		return true
	})
	return sum
}

// ConfirmedFor counts the instances of domain that the provider callback
// confirmed: the fake ZTS signs no certificate for an instance it did not
// confirm, so 0 means no certificate of domain was issued through the
// callback.
func (s *Scenario) ConfirmedFor(domain string) int64 {
	if n, ok := s.confirmed.Load(domain); ok {
		return n.(*atomic.Int64).Load()
	}
	return 0
}

// InstallChart writes the chart values and runs helm install. With a node:
// the injector runs in the cluster as the chart's Deployment (two
// replicas, certificates in auto mode), the provider callback on with its
// own certificate (ProviderCertSecret, created here), and the chart's
// SidecarProfile points at the fake ZTS and at its CA in ZTSCAConfigMap
// (created here). With PlayKubelet the webhooks call the injector process
// on 127.0.0.1 (injector.enabled=false, manual certificates). It returns
// helm's output.
func (s *Scenario) InstallChart(ctx context.Context) (string, error) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ReleaseNamespace}}
	ca := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: ReleaseNamespace, Name: ZTSCAConfigMap},
		Data:       map[string]string{ZTSCAKey: string(s.ZTS.CACertPEM())},
	}
	objs := []client.Object{ns, ca}
	var values string
	if s.RealNode() {
		kp, err := s.CA.Issue(CertRequest{CommonName: Provider, Server: true})
		if err != nil {
			return "", err
		}
		objs = append(objs, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ReleaseNamespace, Name: ProviderCertSecret},
			Type:       corev1.SecretTypeTLS,
			Data:       map[string][]byte{corev1.TLSCertKey: kp.CertPEM, corev1.TLSPrivateKeyKey: kp.KeyPEM},
		})
		values = fmt.Sprintf(`# The injector runs in the cluster, from the image imported into the node.
image:
  tag: dev
  pullPolicy: Never
sidecar:
  image:
    tag: dev
injector:
  replicaCount: 2
  logLevel: debug
certs:
  mode: auto
# The identity provider callback: ZTS asks it to confirm each Pod.
provider:
  enabled: true
  audience: %s
  name: %s
  certSecret: %s
  # Only ZTS: a client certificate from the fake ZTS's CA.
  clientCA:
    configMap: {name: %s, key: %s}
`, TokenAudience, Provider, ProviderCertSecret, ZTSCAConfigMap, ZTSCAKey)
	} else {
		values = fmt.Sprintf(`# The injector runs outside the cluster, as a local process.
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
`, s.webhookPort, TokenAudience)
	}
	values += fmt.Sprintf(`# The SidecarProfile "default" in the release namespace: every namespace's.
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
  sidecar:
    imagePullPolicy: IfNotPresent
  prefetch: [%q]
`, s.ZTS.URL(), ZTSCAConfigMap, ZTSCAKey, Provider, DNSSuffix, TokenAudience, Prefetch)
	for _, o := range objs {
		if err := s.Client.Create(ctx, o); err != nil {
			return "", fmt.Errorf("creating %T %s: %w", o, client.ObjectKeyFromObject(o), err)
		}
	}
	s.ValuesFile = filepath.Join(s.Dir, "values.yaml")
	if err := os.WriteFile(s.ValuesFile, []byte(values), 0o644); err != nil {
		return "", err
	}
	s.HelmCommand = []string{"install", ReleaseName, ChartPath, "--namespace", ReleaseNamespace, "-f", s.ValuesFile}
	if !s.RealNode() {
		s.HelmCommand = append(s.HelmCommand, "--set-file", "certs.manual.caBundle="+s.CA.File)
	}
	ctx, cancel := WithTimeout(ctx, 90*time.Second, "helm install")
	defer cancel()
	return s.Helm.Run(ctx, s.HelmCommand...)
}

// StartInjector makes the injector ready. With a node it waits until the
// chart's Deployment has all its replicas ready and points the fake ZTS at
// the provider callback's Service. With PlayKubelet it starts the injector
// process as the chart's ServiceAccount (so the chart's RBAC is what it
// gets).
func (s *Scenario) StartInjector(ctx context.Context) error {
	if s.RealNode() {
		return s.waitInjectorDeployment(ctx)
	}
	if err := s.CA.IssueServing(filepath.Join(s.Dir, "certs", "webhook"), "127.0.0.1", net.IPv4(127, 0, 0, 1)); err != nil {
		return err
	}
	if err := s.CA.IssueServing(filepath.Join(s.Dir, "certs", "provider"), Provider, net.IPv4(127, 0, 0, 1)); err != nil {
		return err
	}
	user := "system:serviceaccount:" + ReleaseNamespace + ":" + ReleaseName
	kubeconfig, _, err := s.CP.AddUser("injector", user, "system:serviceaccounts", "system:serviceaccounts:"+ReleaseNamespace)
	if err != nil {
		return err
	}
	inj, err := StartInjector(ctx, InjectorOptions{
		Binary:      s.Bin.Injector,
		Kubeconfig:  kubeconfig,
		Namespace:   ReleaseNamespace,
		CertDir:     filepath.Join(s.Dir, "certs", "webhook"),
		WebhookPort: s.webhookPort,
		Dir:         s.Dir,
		Args: []string{
			"--sidecar-image=" + SidecarImage,
			"--provider-bind-address=" + s.providerAddr,
			"--provider-audience=" + TokenAudience,
			"--provider-name=" + Provider,
			"--provider-cert-dir=" + filepath.Join(s.Dir, "certs", "provider"),
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

// ProviderServiceName is the chart's Service of the provider callback.
const ProviderServiceName = ReleaseName + "-provider"

func (s *Scenario) waitInjectorDeployment(ctx context.Context) error {
	if err := s.WaitDeploymentReady(ctx, ReleaseNamespace, ReleaseName, 2*time.Minute); err != nil {
		return err
	}
	// Ready replicas are not yet a reachable webhook: kube-proxy programs
	// the Service's endpoints a moment later, and until then the API
	// server's calls are refused. Wait until an opted-in Pod (a dry run)
	// comes back injected.
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	err := Wait(wctx, "the webhook to inject a dry-run Pod", func(ctx context.Context) (bool, string, error) {
		if err := inspect.Check(ctx, s.Client, inspect.CheckOptions{Namespace: "default"}); err != nil {
			return false, err.Error(), nil
		}
		return true, "", nil
	})
	if err != nil {
		return err
	}
	var svc corev1.Service
	if err := s.Client.Get(ctx, client.ObjectKey{Namespace: ReleaseNamespace, Name: ProviderServiceName}, &svc); err != nil {
		return fmt.Errorf("the provider callback's Service: %w", err)
	}
	var port int32
	for _, p := range svc.Spec.Ports {
		port = p.Port
	}
	s.ProviderURL = "https://" + net.JoinHostPort(svc.Spec.ClusterIP, strconv.Itoa(int(port)))
	s.providerURL.Store(s.ProviderURL)
	s.logf("injector Deployment ready; provider callback at %s", s.ProviderURL)
	return nil
}

// Up runs the platform team's part of DESIGN.md's user's day, each step
// logged with its duration: Start, StartZTS, InstallChart, StartInjector
// and WaitProfileReady.
func (s *Scenario) Up(ctx context.Context) error {
	steps := []struct {
		name string
		f    func() error
	}{
		{"cluster, images and helm", func() error { return s.Start(ctx) }},
		{"fake ZTS", s.StartZTS},
		{"helm install", func() error {
			out, err := s.InstallChart(ctx)
			if err == nil && !strings.Contains(out, "STATUS: deployed") {
				err = fmt.Errorf("helm install printed no \"STATUS: deployed\":\n%s", out)
			}
			return err
		}},
		{"injector ready", func() error { return s.StartInjector(ctx) }},
		{"profile Ready", func() error { _, err := s.WaitProfileReady(ctx); return err }},
	}
	for _, st := range steps {
		began := time.Now()
		if err := st.f(); err != nil {
			return fmt.Errorf("%s: %w", st.name, err)
		}
		s.logf("%s: done in %v", st.name, time.Since(began).Round(time.Millisecond))
	}
	return nil
}
