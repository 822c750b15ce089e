package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/athenz-injector/athenz-injector/api/v1alpha1"
)

// Golden cases: testdata/<case>.pod.yaml is the Pod as a client sends it,
// optionally with <case>.profile.yaml (else testdata/profile.yaml) and
// <case>.namespace.yaml (the Pod's Namespace, for its labels). Outputs:
// <case>.patch.json and <case>.patched.yaml, or <case>.error.txt for a
// denied Pod. go test ./pkg/webhook -update rewrites the outputs.
const (
	suffixPod       = ".pod.yaml"
	suffixProfile   = ".profile.yaml"
	suffixNamespace = ".namespace.yaml"
	suffixPatch     = ".patch.json"
	suffixPatched   = ".patched.yaml"
	suffixError     = ".error.txt"
)

// testSettings pin what would otherwise vary, rather than scrub output.
var testSettings = Settings{
	Version:   "v0.0.0-test",
	Image:     "registry.example.com/athenz-sidecar:v0.0.0-test",
	Namespace: "athenz-injector",
}

// goldenCase is one case's inputs.
type goldenCase struct {
	name     string
	raw      []byte // the Pod as JSON, exactly as the YAML says (unknown fields too)
	pod      *corev1.Pod
	profile  *v1alpha1.SidecarProfile
	nsLabels map[string]string
}

func caseNames(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*"+suffixPod))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no testdata/*" + suffixPod + " found")
	}
	var names []string
	for _, f := range files {
		names = append(names, strings.TrimSuffix(filepath.Base(f), suffixPod))
	}
	sort.Strings(names)
	return names
}

func loadCase(t testing.TB, name string) goldenCase {
	t.Helper()
	c := goldenCase{name: name}
	y, err := os.ReadFile(filepath.Join("testdata", name+suffixPod))
	if err != nil {
		t.Fatal(err)
	}
	if c.raw, err = yaml.YAMLToJSON(y); err != nil {
		t.Fatalf("converting %s%s to JSON: %v", name, suffixPod, err)
	}
	if c.pod, err = DecodePod(c.raw); err != nil {
		t.Fatalf("decoding %s%s: %v", name, suffixPod, err)
	}
	profile := filepath.Join("testdata", name+suffixProfile)
	if _, err := os.Stat(profile); err != nil {
		profile = filepath.Join("testdata", "profile.yaml")
	}
	c.profile = &v1alpha1.SidecarProfile{}
	readStrict(t, profile, c.profile)
	if ns := filepath.Join("testdata", name+suffixNamespace); fileExists(ns) {
		var n corev1.Namespace
		readStrict(t, ns, &n)
		if n.Name != c.pod.Namespace {
			t.Fatalf("%s: namespace %q is not the Pod's namespace %q", ns, n.Name, c.pod.Namespace)
		}
		c.nsLabels = n.Labels
	}
	return c
}

func readStrict(t testing.TB, path string, into any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(b, into); err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// applyPatch applies ops to the raw JSON document the way the API server
// does.
func applyPatch(raw []byte, ops []PatchOp) ([]byte, error) {
	b, err := json.Marshal(ops)
	if err != nil {
		return nil, err
	}
	patch, err := jsonpatch.DecodePatch(b)
	if err != nil {
		return nil, fmt.Errorf("decoding patch: %w", err)
	}
	return patch.Apply(raw)
}

func TestGolden(t *testing.T) {
	names := caseNames(t)
	checkStaleGoldens(t, names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := loadCase(t, name)
			ops, err := Mutate(c.pod, c.nsLabels, c.profile, testSettings)
			base := filepath.Join("testdata", name)
			if err != nil {
				var d *Denial
				if !errors.As(err, &d) {
					t.Fatalf("Mutate(%s) = %v (%T), want a *Denial or success", name, err, err)
				}
				compareGolden(t, base+suffixError, []byte(err.Error()+"\n"))
				for _, stale := range []string{base + suffixPatch, base + suffixPatched} {
					if fileExists(stale) {
						t.Errorf("%s is stale: the case is denied (run go test ./pkg/webhook -update and delete it)", stale)
					}
				}
				return
			}
			if fileExists(base + suffixError) {
				t.Errorf("%s is stale: the case is no longer denied", base+suffixError)
			}
			patchJSON, err := json.MarshalIndent(ops, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			if ops == nil {
				patchJSON = []byte("[]")
			}
			compareGolden(t, base+suffixPatch, append(patchJSON, '\n'))

			patched, err := applyPatch(c.raw, ops)
			if err != nil {
				t.Fatalf("applying the patch of %s: %v", name, err)
			}
			patchedYAML, err := yaml.JSONToYAML(patched)
			if err != nil {
				t.Fatal(err)
			}
			compareGolden(t, base+suffixPatched, patchedYAML)
			checkInvariants(t, c, ops, patched)
		})
	}
}

// checkInvariants holds for every Pod, golden or fuzzed: only "add"
// operations, but for the move of the injector's own sidecar on
// reinvocation (Reinvoke); nothing of the original document removed or
// changed; Pods that do not opt in untouched; and the patched Pod gets no
// operations.
func checkInvariants(t testing.TB, c goldenCase, ops []PatchOp, patched []byte) {
	t.Helper()
	_, reinvoked := c.pod.Annotations[AnnotationStatus]
	for i, op := range ops {
		if op.Op == "add" {
			continue
		}
		if reinvoked && i == 0 && op.Op == "remove" && len(ops) == 2 && strings.HasPrefix(op.Path, "/spec/initContainers/") {
			continue
		}
		t.Fatalf("patch has op %q at %s, want only add (or the move of the sidecar on reinvocation)", op.Op, op.Path)
	}
	var before, after any
	if err := json.Unmarshal(c.raw, &before); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(patched, &after); err != nil {
		t.Fatal(err)
	}
	if reinvoked {
		// The sidecar moved: compare the documents without it.
		before, after = withoutSidecar(before), withoutSidecar(after)
	}
	if path, ok := preserved(before, after, ""); !ok {
		t.Fatalf("the patch removed or changed %s of the original Pod", path)
	}
	if inject, _, _ := ShouldInject(c.pod, c.nsLabels, testSettings); !inject && !reinvoked && len(ops) > 0 {
		t.Fatalf("Pod that did not opt in got %d operations", len(ops))
	}
	again, err := DecodePod(patched)
	if err != nil {
		t.Fatalf("decoding the patched Pod: %v", err)
	}
	ops2, err := Mutate(again, c.nsLabels, c.profile, testSettings)
	if err != nil || len(ops2) > 0 {
		t.Fatalf("Mutate(patched Pod) = %d operations, %v; want none, nil", len(ops2), err)
	}
	if len(ops) == 0 {
		return
	}
	ops2, err = BuildPatch(again, c.profile, testSettings)
	if err != nil || len(ops2) > 0 {
		t.Fatalf("BuildPatch(patched Pod) = %d operations, %v; want none, nil", len(ops2), err)
	}
}

// withoutSidecar drops the injector's sidecar from a Pod document's init
// containers.
func withoutSidecar(doc any) any {
	spec, _ := doc.(map[string]any)["spec"].(map[string]any)
	inits, _ := spec["initContainers"].([]any)
	var kept []any
	for _, c := range inits {
		if m, ok := c.(map[string]any); ok && m["name"] == SidecarName {
			continue
		}
		kept = append(kept, c)
	}
	if spec != nil {
		spec["initContainers"] = kept
	}
	return doc
}

// preserved reports whether everything in before is still in after:
// object members with preserved values, and array elements preserved in
// their order (the patch only inserts). It returns the first path that is
// not. A null is the same as an absent field to the API server, so the
// patch may replace it.
func preserved(before, after any, at string) (string, bool) {
	switch b := before.(type) {
	case nil:
		return "", true
	case map[string]any:
		a, ok := after.(map[string]any)
		if !ok {
			return at, false
		}
		for k, bv := range b {
			av, ok := a[k]
			if !ok {
				return at + "/" + k, false
			}
			if p, ok := preserved(bv, av, at+"/"+k); !ok {
				return p, false
			}
		}
		return "", true
	case []any:
		a, ok := after.([]any)
		if !ok {
			return at, false
		}
		j := 0
		for i, bv := range b {
			for j < len(a) {
				if _, ok := preserved(bv, a[j], ""); ok {
					break
				}
				j++
			}
			if j == len(a) {
				return fmt.Sprintf("%s/%d", at, i), false
			}
			j++
		}
		return "", true
	default:
		return at, reflect.DeepEqual(before, after)
	}
}

func compareGolden(t testing.TB, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden: %v (run go test ./pkg/webhook -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the output (run go test ./pkg/webhook -update and review the diff)\n%s", path, lineDiff(string(want), string(got)))
	}
}

// lineDiff shows the first differing lines, enough to see what changed.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("line %d:\n  want: %s\n  got:  %s", i+1, wl, gl)
		}
	}
	return ""
}

// checkStaleGoldens fails on output or input files of a case that has no
// <case>.pod.yaml, so that removing a case removes all of it.
func checkStaleGoldens(t *testing.T, names []string) {
	t.Helper()
	known := map[string]bool{}
	for _, n := range names {
		known[n] = true
	}
	entries, err := os.ReadDir("testdata")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		f := e.Name()
		if f == "profile.yaml" || strings.HasSuffix(f, suffixPod) || e.IsDir() {
			continue
		}
		matched := false
		for _, suffix := range []string{suffixProfile, suffixNamespace, suffixPatch, suffixPatched, suffixError} {
			if name, ok := strings.CutSuffix(f, suffix); ok {
				matched = true
				if !known[name] {
					t.Errorf("testdata/%s has no input testdata/%s%s: delete it or add the input", f, name, suffixPod)
				}
			}
		}
		if !matched {
			t.Errorf("testdata/%s is not part of any golden case (want <case>%s and its outputs)", f, suffixPod)
		}
	}
}
