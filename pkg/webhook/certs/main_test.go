package certs_test

import (
	"flag"
	"fmt"
	"os"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/athenz-injector/athenz-injector/pkg/webhook/webhooktest"
)

// k8s is an uncached admin client of the package's one control plane
// (kube-apiserver and etcd, started in TestMain).
var k8s client.Client

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: building scheme:", err)
		return 1
	}
	// A missing KUBEBUILDER_ASSETS fails the suite with a message that says
	// how to build the binaries (hack/build-control-plane.sh); it never
	// skips.
	cp, err := webhooktest.Start(webhooktest.Options{Scheme: scheme})
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: starting the test control plane:", err)
		return 1
	}
	defer func() {
		if err := cp.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping the test control plane:", err)
		}
	}()
	k8s = cp.Client
	return m.Run()
}

// TestSuiteInputs reads KUBEBUILDER_ASSETS inside a test: go test's result
// cache records only what tests read, so without it a cached pass would
// survive a change of the control plane binaries.
func TestSuiteInputs(t *testing.T) {
	if os.Getenv(webhooktest.AssetsEnv) == "" {
		t.Fatal(webhooktest.ErrNoAssets)
	}
}
