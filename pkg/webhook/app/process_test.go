package app_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
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
// API server into dir and returns its path.
func writeKubeconfig(t *testing.T, dir string) string {
	t.Helper()
	kubeconfig, err := controlPlane.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(path, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
