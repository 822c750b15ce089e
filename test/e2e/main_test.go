package e2e_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/athenz-injector/athenz-injector/test/framework"
)

// cluster is the suite's: one control plane, node, injector and fake ZTS
// for every test, each in a namespace of its own.
var cluster *framework.Scenario

// certLifetime is the fake ZTS's certificate lifetime: short, so that
// every Pod's sidecar rotates its certificate during the suite, and the
// rotation test sees it.
const certLifetime = 2 * time.Minute

func TestMain(m *testing.M) {
	flag.Parse()
	// The tests wait for kubelets, probes and certificate lifetimes, not
	// for CPU: run them all at once (go test's default is GOMAXPROCS).
	if f := flag.Lookup("test.parallel"); f != nil && f.Value.String() == strconv.Itoa(runtime.GOMAXPROCS(0)) {
		_ = flag.Set("test.parallel", "16")
	}
	ctrl.SetLogger(logr.Discard())
	os.Exit(run(m))
}

func run(m *testing.M) (code int) {
	start := time.Now()
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "e2e %6.1fs: %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	if os.Getenv(framework.AssetsEnv) == "" {
		fmt.Fprintln(os.Stderr, framework.ErrNoAssets)
		return 1
	}
	s, err := framework.NewScenario(framework.ScenarioOptions{Logf: logf, CertLifetime: certLifetime})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		if code != 0 && !testing.Verbose() {
			logf("files of the run were in %s", s.Dir)
		}
		if err := s.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "FAIL: stopping the cluster: %v\n", err)
			code = 1
		}
		logf("cluster stopped, host as before")
	}()
	recordInputs(s.Root)
	if err := s.Up(context.Background()); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: setting up the cluster: %v\n%s", err, s.Diagnose(context.Background()))
		return 1
	}
	cluster = s
	return m.Run()
}
