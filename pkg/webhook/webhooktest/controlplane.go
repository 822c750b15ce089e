// Package webhooktest starts the test control plane of the injector's
// tests: a real kube-apiserver and etcd (controller-runtime envtest) with
// the CRDs of config/crd and the webhooks of config/webhook installed, so
// that the shipped manifests are what the tests exercise.
package webhooktest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// AssetsEnv names the directory with kube-apiserver and etcd.
const AssetsEnv = "KUBEBUILDER_ASSETS"

// ErrNoAssets means the control plane binaries are not where AssetsEnv
// says. Tests fail on it, never skip: a skipped envtest suite would let a
// broken injector pass.
var ErrNoAssets = errors.New(AssetsEnv + " must name a directory with kube-apiserver and etcd: " +
	"run the tests with `make test`, or build them once with " +
	"`KUBEBUILDER_ASSETS=$(hack/build-control-plane.sh) go test ./...` (cached after the first build)")

// ControlPlane is a running kube-apiserver and etcd.
type ControlPlane struct {
	env *envtest.Environment
	// Config reaches the API server as an administrator.
	Config *rest.Config
	// Client is an uncached client with the scheme given to Start.
	Client client.Client
	// WebhookHost, WebhookPort and CertDir are where the API server
	// expects the webhooks of config/webhook to be served, and the serving
	// certificate (tls.crt, tls.key) it trusts.
	WebhookHost string
	WebhookPort int
	CertDir     string
}

// Options of Start.
type Options struct {
	// Scheme for Client. Required.
	Scheme *runtime.Scheme
	// Webhooks installs config/webhook/manifests.yaml. Default: off.
	Webhooks bool
}

// Start starts the control plane with the CRDs of config/crd installed.
// Stop it with Stop.
func Start(o Options) (*ControlPlane, error) {
	assets := os.Getenv(AssetsEnv)
	if assets == "" {
		return nil, fmt.Errorf("%w (it is not set)", ErrNoAssets)
	}
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(assets, bin)); err != nil {
			return nil, fmt.Errorf("%w (%s: %v)", ErrNoAssets, bin, err)
		}
	}
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	if o.Webhooks {
		env.WebhookInstallOptions = envtest.WebhookInstallOptions{
			Paths:            []string{filepath.Join(root, "config", "webhook", "manifests.yaml")},
			LocalServingHost: "127.0.0.1",
		}
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting kube-apiserver and etcd from %s: %w", assets, err)
	}
	c, err := client.New(cfg, client.Options{Scheme: o.Scheme})
	if err != nil {
		_ = env.Stop()
		return nil, fmt.Errorf("creating client: %w", err)
	}
	wh := env.WebhookInstallOptions
	return &ControlPlane{
		env:         env,
		Config:      cfg,
		Client:      c,
		WebhookHost: wh.LocalServingHost,
		WebhookPort: wh.LocalServingPort,
		CertDir:     wh.LocalServingCertDir,
	}, nil
}

// KubeConfig returns a kubeconfig for an administrator (system:masters),
// for processes the test starts (an injector binary, helm).
func (c *ControlPlane) KubeConfig() ([]byte, error) {
	u, err := c.env.ControlPlane.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return nil, fmt.Errorf("adding an admin user: %w", err)
	}
	return u.KubeConfig()
}

// Stop stops the API server and etcd and removes their files.
func (c *ControlPlane) Stop() error {
	return c.env.Stop()
}

// RepoRoot is the directory of the module's go.mod, found from the working
// directory (a package directory under go test).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}
