package framework

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Binaries are the programs of this module, built for a run.
type Binaries struct {
	Injector string
	Sidecar  string
}

// Build builds cmd/injector and cmd/sidecar of the module at root into dir
// with `go build` (one command, so the two links share the build cache
// and run in parallel).
func Build(ctx context.Context, root, dir string) (Binaries, error) {
	b := Binaries{Injector: filepath.Join(dir, "injector"), Sidecar: filepath.Join(dir, "sidecar")}
	cmd := exec.CommandContext(ctx, goTool(), "build", "-o", dir+string(filepath.Separator), "./cmd/injector", "./cmd/sidecar")
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return b, fmt.Errorf("go build ./cmd/injector ./cmd/sidecar: %v\n%s", err, strings.TrimSpace(out.String()))
	}
	return b, nil
}

// goTool is the go command. Under go test it is the running toolchain's:
// go test puts its GOROOT/bin first on the PATH of the tests (Go 1.19 and
// later); elsewhere it is the one on PATH, as make and go run find it.
func goTool() string {
	return "go"
}

// ToolPath runs a hack/ script that builds a tool once into the cache and
// prints its path on the last line of its output (hack/build-helm.sh,
// hack/build-control-plane.sh), and returns that path.
func ToolPath(ctx context.Context, root, script string) (string, error) {
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, script))
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s: %v\n%s", script, err, strings.TrimSpace(stderr.String()))
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	path := lines[len(lines)-1]
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("%s printed %q: %w", script, path, err)
	}
	return path, nil
}
