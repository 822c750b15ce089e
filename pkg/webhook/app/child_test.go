package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/athenz-injector/athenz-injector/pkg/webhook/app"
)

// childInjectorEnv makes the test binary run one injector (app.Run) as a
// process of its own, from the options in the variable, until SIGTERM: what
// a process must do when it is told to stop can only be tested on one, and
// one process can run only one injector (controller names are unique per
// process).
const childInjectorEnv = "ATHENZ_INJECTOR_TEST_CHILD"

// childInjector is what startChildInjector passes to the child: the
// options a test may set (app.Options also holds the API server's
// configuration, a logger and a registry, which JSON does not carry).
type childInjector struct {
	Kubeconfig             string
	WebhookHost            string
	WebhookPort            int
	CertDir                string
	HealthProbeBindAddress string
	Namespace              string
	SidecarImage           string
	Version                string
	ShutdownDrain          time.Duration
}

func runChildInjector(spec string) int {
	var c childInjector
	if err := json.Unmarshal([]byte(spec), &c); err != nil {
		fmt.Fprintln(os.Stderr, "child injector:", err)
		return 2
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child injector:", err)
		return 2
	}
	o := app.Options{
		WebhookHost:            c.WebhookHost,
		WebhookPort:            c.WebhookPort,
		CertDir:                c.CertDir,
		MetricsBindAddress:     "0",
		HealthProbeBindAddress: c.HealthProbeBindAddress,
		Namespace:              c.Namespace,
		SidecarImage:           c.SidecarImage,
		Version:                c.Version,
		ShutdownDrain:          c.ShutdownDrain,
		Config:                 cfg,
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := app.Run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "child injector:", err)
		return 1
	}
	return 0
}

// startChildInjector starts an injector process with c (its Kubeconfig
// is written here, for the suite's control plane) and returns it with a
// channel that gets its exit; the test's cleanup kills it if it still runs.
func startChildInjector(t *testing.T, c childInjector) (*exec.Cmd, <-chan error) {
	t.Helper()
	cfg := controlPlane.Config
	kc := clientcmdapi.NewConfig()
	kc.Clusters["test"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["test"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}
	kc.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "test"}
	kc.CurrentContext = "test"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	c.Kubeconfig = path
	spec, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childInjectorEnv+"="+string(spec))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	waited := make(chan struct{})
	go func() {
		done <- cmd.Wait()
		close(waited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-waited
	})
	return cmd, done
}
