package chart_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/athenz-injector/athenz-injector/pkg/webhook/webhooktest"
)

// chartPath is the chart under test, relative to the repository root.
const chartPath = "charts/athenz-injector"

// helmBinary builds Helm once per test binary with hack/build-helm.sh
// (a no-op when it is cached) and returns its path.
var helmBinary = sync.OnceValues(func() (string, error) {
	return hackTool("build-helm.sh")
})

// hackTool runs a hack/ script that builds or installs a tool once and
// prints its path on its last line, and returns that path.
func hackTool(script string, args ...string) (string, error) {
	root, err := webhooktest.RepoRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.Command("bash", append([]string{filepath.Join(root, "hack", script)}, args...)...)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("hack/%s: %v\n%s", script, err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	bin := lines[len(lines)-1]
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("hack/%s printed %q: %w", script, bin, err)
	}
	return bin, nil
}

// readConfig parses a manifest file of config/ (path relative to it).
func readConfig(t *testing.T, path string) manifests {
	t.Helper()
	root, err := webhooktest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "config", path))
	if err != nil {
		t.Fatal(err)
	}
	m, err := parseManifests(string(data))
	if err != nil {
		t.Fatalf("config/%s: %v", path, err)
	}
	return m
}

// helm runs the Helm binary with its home, cache, config and data
// directories in a temporary directory, so that a test never reads or
// writes the user's Helm state and never contacts a chart repository.
type helm struct {
	bin   string
	root  string // repository root
	chart string // absolute path of the chart
	env   []string
}

// newHelm builds (or finds) Helm and reads every file of the chart and of
// hack/build-helm.sh, so that go test's result cache, which records the
// files a test opens, is invalidated when the chart changes (Helm reads
// them in a child process the cache does not see).
func newHelm(t *testing.T) *helm {
	t.Helper()
	bin, err := helmBinary()
	if err != nil {
		t.Fatalf("building helm: %v", err)
	}
	root, err := webhooktest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	chart := filepath.Join(root, chartPath)
	readTree(t, chart)
	if _, err := os.ReadFile(filepath.Join(root, "hack", "build-helm.sh")); err != nil {
		t.Fatal(err)
	}

	home := t.TempDir()
	env := []string{
		"HOME=" + home,
		"HELM_CACHE_HOME=" + filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME=" + filepath.Join(home, "config"),
		"HELM_DATA_HOME=" + filepath.Join(home, "data"),
		// No cluster unless a test sets one.
		"KUBECONFIG=" + filepath.Join(home, "no-kubeconfig"),
	}
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if name == "HOME" || name == "KUBECONFIG" || strings.HasPrefix(name, "HELM_") || strings.HasPrefix(name, "XDG_") {
			continue
		}
		env = append(env, kv)
	}
	return &helm{bin: bin, root: root, chart: chart, env: env}
}

// withKubeconfig returns a copy of h that talks to the cluster of path.
func (h *helm) withKubeconfig(path string) *helm {
	c := *h
	c.env = append(append([]string(nil), h.env...), "KUBECONFIG="+path)
	return &c
}

// run runs helm with args and returns its standard output; the error
// carries standard error.
func (h *helm) run(args ...string) (string, error) {
	cmd := exec.Command(h.bin, args...)
	cmd.Dir = h.root
	cmd.Env = h.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// valuesFile writes values as YAML to a temporary file for helm -f,
// removed when the test ends.
func valuesFile(t *testing.T, values map[string]any) string {
	t.Helper()
	data, err := yaml.Marshal(values)
	if err != nil {
		t.Fatal(err)
	}
	// Not under t.TempDir: its name comes from the test's, and helm -f
	// splits its argument at commas.
	f, err := os.CreateTemp("", "athenz-injector-values-*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(f.Name()) })
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

// template renders the chart as release "athenz-injector" in namespace
// "athenz-injector" (the names of config/) with values.
func (h *helm) template(t *testing.T, values map[string]any) manifests {
	t.Helper()
	return h.templateAs(t, "athenz-injector", "athenz-injector", values)
}

// templateAs renders the chart as release in namespace with values and
// more helm template flags (e.g. --api-versions).
func (h *helm) templateAs(t *testing.T, release, namespace string, values map[string]any, flags ...string) manifests {
	t.Helper()
	args := append([]string{"template", release, h.chart, "--namespace", namespace, "-f", valuesFile(t, values)}, flags...)
	out, err := h.run(args...)
	if err != nil {
		t.Fatal(err)
	}
	m, err := parseManifests(out)
	if err != nil {
		t.Fatalf("parsing helm template output: %v\n%s", err, out)
	}
	return m
}

// manifests are rendered objects in output order.
type manifests []*unstructured.Unstructured

func parseManifests(s string) (manifests, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(s)))
	var m manifests
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return m, nil
		}
		if err != nil {
			return nil, err
		}
		var obj map[string]any
		if err := yaml.Unmarshal(doc, &obj); err != nil {
			return nil, fmt.Errorf("%w in\n%s", err, doc)
		}
		if obj == nil {
			continue // only comments
		}
		m = append(m, &unstructured.Unstructured{Object: obj})
	}
}

// all returns the objects of kind.
func (m manifests) all(kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range m {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// find returns the object of kind and name, or nil.
func (m manifests) find(kind, name string) *unstructured.Unstructured {
	for _, o := range m.all(kind) {
		if o.GetName() == name {
			return o
		}
	}
	return nil
}

// get decodes the object of kind and name into out, strictly: a field the
// Kubernetes type does not know is an error. It fails the test when there
// is no such object.
func (m manifests) get(t *testing.T, kind, name string, out any) {
	t.Helper()
	o := m.find(kind, name)
	if o == nil {
		t.Fatalf("no %s %q rendered; rendered: %s", kind, name, m)
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(o.Object, out, true); err != nil {
		t.Fatalf("%s %q does not decode strictly: %v", kind, name, err)
	}
}

func (m manifests) String() string {
	names := make([]string, len(m))
	for i, o := range m {
		names[i] = o.GetKind() + "/" + o.GetName()
	}
	return strings.Join(names, ", ")
}

// readTree reads every file under dir.
func readTree(t *testing.T, dir string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		_, err = os.ReadFile(path)
		return err
	})
	if err != nil {
		t.Fatalf("reading the chart: %v", err)
	}
}
