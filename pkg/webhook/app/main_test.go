package app_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/athenz-injector/athenz-injector/pkg/webhook/app"
	"github.com/athenz-injector/athenz-injector/pkg/webhook/webhooktest"
)

// The suite runs one control plane (kube-apiserver v1.37 and etcd, with
// config/crd and config/webhook installed) and one injector (app.Run) for
// all tests of the package.
const injectorNamespace = "athenz-injector"

var (
	controlPlane *webhooktest.ControlPlane
	k8s          client.Client        // uncached admin client
	registry     *prometheus.Registry // the injector's metrics
	readyzURL    string
	// providerAddr is where the suite's injector serves the provider callback.
	providerAddr string
)

func TestMain(m *testing.M) {
	flag.Parse()
	code := runSuite(m)
	removeInjectorBinary()
	os.Exit(code)
}

func runSuite(m *testing.M) int {
	log := logr.Discard()
	if testing.Verbose() {
		log = zap.New(zap.UseDevMode(true), zap.WriteTo(os.Stderr))
	}
	ctrl.SetLogger(log)

	cp, stop, err := startControlPlane()
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: starting the test control plane:", err)
		return 1
	}
	defer stop()
	k8s = cp.Client
	controlPlane = cp

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: injectorNamespace}}); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: creating the injector's namespace:", err)
		return 1
	}
	healthAddr, err := freeAddr()
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	readyzURL = "http://" + healthAddr + "/readyz"
	if providerAddr, err = freeAddr(); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	registry = prometheus.NewRegistry()
	done := make(chan error, 1)
	go func() {
		done <- app.Run(ctx, app.Options{
			WebhookHost:            cp.WebhookHost,
			WebhookPort:            cp.WebhookPort,
			CertDir:                cp.CertDir,
			MetricsBindAddress:     "0",
			HealthProbeBindAddress: healthAddr,
			Namespace:              injectorNamespace,
			SidecarImage:           "registry.example.com/athenz-sidecar:v0.0.0-test",
			Version:                "v0.0.0-test",
			Config:                 cp.Config,
			Logger:                 log,
			Registry:               registry,
			// The callback with no --provider-cert-dir serves the
			// webhook's certificate (TestProviderServesWebhookCertificate).
			ProviderBindAddress: providerAddr,
			ProviderAudience:    "athenz",
		})
	}()
	if err := waitReady(ctx, done); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: the injector did not become ready:", err)
		return 1
	}

	code := m.Run()
	cancel()
	if err := <-done; err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: app.Run:", err)
		code = 1
	}
	return code
}

// startControlPlane starts kube-apiserver and etcd with the shipped CRDs
// and webhook configuration. A missing KUBEBUILDER_ASSETS is an error that
// says how to get the binaries, never a skip.
func startControlPlane() (*webhooktest.ControlPlane, func(), error) {
	scheme, err := app.NewScheme()
	if err != nil {
		return nil, nil, err
	}
	cp, err := webhooktest.Start(webhooktest.Options{Scheme: scheme, Webhooks: true})
	if err != nil {
		return nil, nil, err
	}
	return cp, func() {
		if err := cp.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping the test control plane:", err)
		}
	}, nil
}

func waitReady(ctx context.Context, done <-chan error) error {
	deadline := time.Now().Add(60 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			return fmt.Errorf("app.Run returned early: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, readyzURL, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			last = err
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return nil
		}
		last = fmt.Errorf("GET %s: %s", readyzURL, resp.Status)
	}
	return errors.Join(errors.New("timed out after 60s"), last)
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// TestSuiteInputs re-reads, inside a test, what TestMain read before m.Run:
// go test's result cache records only the environment variables and files
// that tests touch, so without this a cached pass would survive a change of
// KUBEBUILDER_ASSETS or of the manifests in config/.
func TestSuiteInputs(t *testing.T) {
	if os.Getenv(webhooktest.AssetsEnv) == "" {
		t.Fatal(webhooktest.ErrNoAssets)
	}
	root, err := webhooktest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"config/crd/bases", "config/webhook"} {
		files, err := filepath.Glob(filepath.Join(root, dir, "*.yaml"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no manifests in %s: %v", dir, err)
		}
		for _, f := range files {
			if _, err := os.ReadFile(f); err != nil {
				t.Fatal(err)
			}
		}
	}
}
