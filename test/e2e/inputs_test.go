package e2e_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// recordInputs reads the files the test's child processes depend on: the
// sources that `go build` compiles into the injector and sidecar, the
// chart that Helm reads, and the scripts. go test's result cache records
// the files a test opens, not those its children read; without this a
// cached pass would survive a change to them.
func recordInputs(t *testing.T, root string) {
	t.Helper()
	for _, f := range []string{"go.mod", "go.sum", "hack/build-helm.sh", "hack/build-control-plane.sh"} {
		if _, err := os.ReadFile(filepath.Join(root, f)); err != nil {
			t.Fatal(err)
		}
	}
	for _, dir := range []string{"cmd", "pkg", "api", "charts"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			if dir != "charts" && (!strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go")) {
				return nil
			}
			_, err = os.ReadFile(path)
			return err
		})
		if err != nil {
			t.Fatalf("reading the inputs of the end-to-end test: %v", err)
		}
	}
}
