package e2e_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// recordInputs reads the files the test's child processes depend on: the
// sources that `go build` compiles into the binaries and images, the chart
// that Helm reads, the Dockerfiles and the scripts. go test's result cache
// records the files a test opens, not those its children read; without
// this a cached pass would survive a change to them.
func recordInputs(root string) {
	for _, f := range []string{"go.mod", "go.sum", "Makefile", "Dockerfile.injector", "Dockerfile.sidecar",
		"hack/build-helm.sh", "hack/build-control-plane.sh", "hack/build-node.sh", "hack/lib/kube-tools.sh"} {
		_, _ = os.ReadFile(filepath.Join(root, f))
	}
	for _, dir := range []string{"cmd", "pkg", "api", "internal", "charts", "test/images"} {
		_ = filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			if dir != "charts" && (!strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go")) {
				return nil
			}
			_, err = os.ReadFile(path)
			return err
		})
	}
}
