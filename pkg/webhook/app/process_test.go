package app_test

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// The injector command (cmd/injector), built once for the tests that run
// it as a process: what happens on SIGTERM, or with two replicas, can only
// be seen on processes, and one process runs one injector (controller
// names are unique per process).
var injectorBin struct {
	once      sync.Once
	dir, path string
	err       error
}

// injectorBinary returns the path of the injector command, built on first
// use.
func injectorBinary(t *testing.T) string {
	t.Helper()
	injectorBin.once.Do(func() {
		if injectorBin.dir, injectorBin.err = os.MkdirTemp("", "athenz-injector-test-"); injectorBin.err != nil {
			return
		}
		injectorBin.path = filepath.Join(injectorBin.dir, "injector")
		out, err := exec.Command("go", "build", "-o", injectorBin.path, "github.com/athenz-injector/athenz-injector/cmd/injector").CombinedOutput()
		if err != nil {
			injectorBin.err = &buildError{err: err, out: string(out)}
		}
	})
	if injectorBin.err != nil {
		t.Fatalf("go build ./cmd/injector: %v", injectorBin.err)
	}
	return injectorBin.path
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + e.out }

// removeInjectorBinary removes what injectorBinary built; TestMain calls it
// after the tests.
func removeInjectorBinary() {
	if injectorBin.dir != "" {
		_ = os.RemoveAll(injectorBin.dir)
	}
}

// writeKubeconfig writes a kubeconfig of an administrator of the suite's
// API server into dir, unless one is there, and returns its path.
func writeKubeconfig(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "kubeconfig")
	if _, err := os.Stat(path); err == nil {
		return path
	}
	kubeconfig, err := controlPlane.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// injectorProcess is the injector command running as a process of its own
// against the suite's API server, with its webhooks and health endpoints on
// free ports and no metrics.
type injectorProcess struct {
	cmd                     *exec.Cmd
	webhookAddr, healthAddr string // 127.0.0.1:port (the webhooks listen on every address)
	logPath                 string
	exited                  chan struct{} // closed when it has exited, with err
	err                     error
}

// startInjector starts the injector command with args after its
// kubeconfig, port and metrics flags, logging to name.log in dir. The test's
// cleanup kills it if it still runs, and shows its log if the test failed.
func startInjector(t *testing.T, dir, name string, args ...string) *injectorProcess {
	t.Helper()
	p := &injectorProcess{logPath: filepath.Join(dir, name+".log"), exited: make(chan struct{})}
	var err error
	if p.webhookAddr, err = freeAddr(); err != nil {
		t.Fatal(err)
	}
	if p.healthAddr, err = freeAddr(); err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(p.webhookAddr)
	logFile, err := os.Create(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(injectorBinary(t), append([]string{
		"--kubeconfig=" + writeKubeconfig(t, dir), "--webhook-port=" + port,
		"--metrics-bind-address=0", "--health-probe-bind-address=" + p.healthAddr,
	}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	if err := p.cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("starting injector %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		logFile.Close()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			out, _ := os.ReadFile(p.logPath)
			t.Logf("injector %s log:\n%s", name, out)
		}
	})
	return p
}

// waitReady waits until the injector's /readyz answers 200.
func (p *injectorProcess) waitReady(t *testing.T) {
	t.Helper()
	if err := waitHTTP200(t.Context(), "http://"+p.healthAddr+"/readyz", 60*time.Second); err != nil {
		t.Fatalf("injector %s not ready: %v", filepath.Base(p.logPath), err)
	}
}
