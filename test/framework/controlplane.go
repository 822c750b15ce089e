package framework

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// AssetsEnv names the directory with kube-apiserver, etcd and
// kube-controller-manager.
const AssetsEnv = "KUBEBUILDER_ASSETS"

// ErrNoAssets means the control plane binaries are not where AssetsEnv
// says. The end-to-end test fails on it, never skips.
var ErrNoAssets = errors.New(AssetsEnv + " must name a directory with kube-apiserver, etcd and kube-controller-manager: " +
	"run `make test`, or `KUBEBUILDER_ASSETS=$(hack/build-control-plane.sh) go test ./test/e2e` " +
	"(hack/build-control-plane.sh builds them once, about 5.5 minutes cold, and prints the cached directory)")

// ControllerManagerControllers are the kube-controller-manager controllers
// the flow needs: Deployments become ReplicaSets, ReplicaSets become Pods,
// and namespaces get their "default" ServiceAccount. There is no scheduler
// and no kubelet: Pods stay unscheduled.
var ControllerManagerControllers = []string{"deployment-controller", "replicaset-controller", "serviceaccount-controller"}

// ControlPlaneOptions configure StartControlPlane.
type ControlPlaneOptions struct {
	// Dir receives the kubeconfig files, the logs and
	// kube-controller-manager's serving certificate. Required.
	Dir string
	// Assets is the directory with the binaries. Default: $KUBEBUILDER_ASSETS.
	Assets string
	// StartTimeout bounds the start of each component. Default 60 s.
	StartTimeout time.Duration
}

// ControlPlane is a running kube-apiserver, etcd and kube-controller-manager.
type ControlPlane struct {
	env *envtest.Environment
	dir string

	// Config reaches the API server as a member of system:masters.
	Config *rest.Config
	// Clientset is a clientset for Config.
	Clientset kubernetes.Interface
	// Kubeconfig is the path of a kubeconfig for the same administrator
	// (user "admin", group system:masters), for Helm, kubectl and
	// kube-controller-manager.
	Kubeconfig string
	// ControllerManager is the kube-controller-manager process.
	ControllerManager *Process
	// APIServerLog is the file with kube-apiserver's output.
	APIServerLog string
}

// StartControlPlane starts kube-apiserver and etcd (envtest: RBAC, service
// account token signing, no ServiceAccount admission plugin) and
// kube-controller-manager with ControllerManagerControllers, and waits
// until kube-controller-manager is healthy. On error everything started is
// stopped again.
func StartControlPlane(ctx context.Context, o ControlPlaneOptions) (_ *ControlPlane, err error) {
	if o.Assets == "" {
		o.Assets = os.Getenv(AssetsEnv)
	}
	if o.Assets == "" {
		return nil, fmt.Errorf("%w (it is not set)", ErrNoAssets)
	}
	for _, bin := range []string{"kube-apiserver", "etcd", "kube-controller-manager"} {
		if _, err := os.Stat(filepath.Join(o.Assets, bin)); err != nil {
			return nil, fmt.Errorf("%w (%s: %v)", ErrNoAssets, bin, err)
		}
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 60 * time.Second
	}
	apiLog, err := os.Create(filepath.Join(o.Dir, "kube-apiserver.log"))
	if err != nil {
		return nil, err
	}
	defer apiLog.Close() // the API server has its own copy of the descriptor
	etcdLog, err := os.Create(filepath.Join(o.Dir, "etcd.log"))
	if err != nil {
		return nil, err
	}
	defer etcdLog.Close()

	env := &envtest.Environment{
		BinaryAssetsDirectory:    o.Assets,
		ControlPlaneStartTimeout: o.StartTimeout,
		ControlPlaneStopTimeout:  20 * time.Second,
	}
	api := env.ControlPlane.GetAPIServer()
	api.Out, api.Err = apiLog, apiLog
	env.ControlPlane.Etcd = &envtest.Etcd{Out: etcdLog, Err: etcdLog}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting kube-apiserver and etcd from %s (log: %s): %w", o.Assets, apiLog.Name(), err)
	}
	cp := &ControlPlane{env: env, dir: o.Dir, Config: cfg, APIServerLog: apiLog.Name()}
	defer func() {
		if err != nil {
			_ = cp.Stop()
		}
	}()
	if cp.Clientset, err = kubernetes.NewForConfig(cfg); err != nil {
		return nil, err
	}
	if cp.Kubeconfig, _, err = cp.AddUser("admin", envtest.User{Name: "admin", Groups: []string{"system:masters"}}); err != nil {
		return nil, err
	}
	if cp.ControllerManager, err = startControllerManager(ctx, o, cp.Kubeconfig); err != nil {
		return nil, err
	}
	return cp, nil
}

// AddUser provisions a user (a client certificate with Name as common name
// and Groups as organizations) and writes a kubeconfig for it to
// <Dir>/<name>.kubeconfig. To act as a service account, use
// Name "system:serviceaccount:<namespace>:<name>": RBAC bindings to that
// ServiceAccount then apply.
func (c *ControlPlane) AddUser(name string, user envtest.User) (path string, cfg *rest.Config, err error) {
	u, err := c.env.ControlPlane.AddUser(user, nil)
	if err != nil {
		return "", nil, fmt.Errorf("adding user %s: %w", user.Name, err)
	}
	data, err := u.KubeConfig()
	if err != nil {
		return "", nil, fmt.Errorf("kubeconfig of user %s: %w", user.Name, err)
	}
	path = filepath.Join(c.dir, name+".kubeconfig")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return "", nil, err
	}
	return path, u.Config(), nil
}

// APIServerURL is the API server's https URL.
func (c *ControlPlane) APIServerURL() string { return c.Config.Host }

// Stop stops kube-controller-manager, then kube-apiserver and etcd, and
// removes their data.
func (c *ControlPlane) Stop() error {
	var errs []error
	if c.ControllerManager != nil {
		// It exits non-zero on SIGTERM; only a kill is worth reporting.
		if err := c.ControllerManager.Stop(0); err != nil && strings.Contains(err.Error(), "killed") {
			errs = append(errs, err)
		}
	}
	if err := c.env.Stop(); err != nil {
		errs = append(errs, fmt.Errorf("stopping kube-apiserver and etcd: %w", err))
	}
	return errors.Join(errs...)
}

func startControllerManager(ctx context.Context, o ControlPlaneOptions, kubeconfig string) (*Process, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	certDir := filepath.Join(o.Dir, "kube-controller-manager")
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		return nil, err
	}
	cmd := exec.Command(filepath.Join(o.Assets, "kube-controller-manager"),
		"--kubeconfig="+kubeconfig,
		// No authentication or authorization kubeconfig: only /healthz
		// is used, which is always allowed.
		"--controllers="+strings.Join(ControllerManagerControllers, ","),
		"--leader-elect=false",
		"--bind-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(port),
		"--cert-dir="+certDir,
		// Roll out at once: the defaults batch and delay syncs for large
		// clusters.
		"--concurrent-deployment-syncs=2",
		"--concurrent-replicaset-syncs=2",
	)
	p, err := StartProcess("kube-controller-manager", cmd, filepath.Join(o.Dir, "kube-controller-manager.log"))
	if err != nil {
		return nil, err
	}
	healthz := fmt.Sprintf("https://127.0.0.1:%d/healthz", port)
	// Its serving certificate is self-signed, made at start, on loopback.
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // a self-signed loopback health check
	}}
	ctx, cancel := context.WithTimeout(ctx, o.StartTimeout)
	defer cancel()
	err = Wait(ctx, "kube-controller-manager "+healthz, func(ctx context.Context) (bool, string, error) {
		if exited, err := p.Exited(); exited {
			return false, "", fmt.Errorf("kube-controller-manager exited: %v; log:\n%s", err, p.Log(30))
		}
		return httpOK(ctx, hc, healthz)
	})
	if err != nil {
		_ = p.Stop(0)
		return nil, fmt.Errorf("%w\nkube-controller-manager log:\n%s", err, p.Log(30))
	}
	return p, nil
}

// httpOK is a Wait check: done when GET url answers 200.
func httpOK(ctx context.Context, c *http.Client, url string) (bool, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return false, err.Error(), nil
	}
	body := readSome(resp)
	if resp.StatusCode == http.StatusOK {
		return true, "", nil
	}
	return false, fmt.Sprintf("GET %s: %s %s", url, resp.Status, body), nil
}
