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

// HelmEnv names a Helm binary to use instead of hack/build-helm.sh's.
const HelmEnv = "HELM"

// Helm runs a Helm binary against one cluster, with its home, cache,
// configuration and data directories of its own, so that it never reads or
// writes the user's Helm state or contacts a chart repository.
type Helm struct {
	// Bin is the helm binary.
	Bin string
	// Dir is the working directory of helm commands (the repository, so
	// that chart paths can be relative).
	Dir string
	env []string
}

// NewHelm returns a Helm for the cluster of kubeconfig. bin is the helm
// binary; stateDir receives Helm's own directories.
func NewHelm(bin, dir, stateDir, kubeconfig string) *Helm {
	env := []string{
		"HOME=" + stateDir,
		"HELM_CACHE_HOME=" + filepath.Join(stateDir, "cache"),
		"HELM_CONFIG_HOME=" + filepath.Join(stateDir, "config"),
		"HELM_DATA_HOME=" + filepath.Join(stateDir, "data"),
		"KUBECONFIG=" + kubeconfig,
	}
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if name == "HOME" || name == "KUBECONFIG" || strings.HasPrefix(name, "HELM_") || strings.HasPrefix(name, "XDG_") {
			continue
		}
		env = append(env, kv)
	}
	return &Helm{Bin: bin, Dir: dir, env: env}
}

// HelmBinary returns $HELM if set, else the path hack/build-helm.sh prints
// (it builds Helm once into the cache; a no-op when it is there).
func HelmBinary(ctx context.Context, root string) (string, error) {
	if p := os.Getenv(HelmEnv); p != "" {
		return p, nil
	}
	return ToolPath(ctx, root, filepath.Join("hack", "build-helm.sh"))
}

// Run runs helm with args and returns its standard output; the error
// carries its standard error.
func (h *Helm) Run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, h.Bin, args...)
	cmd.Dir = h.Dir
	cmd.Env = h.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %v\n%s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}
