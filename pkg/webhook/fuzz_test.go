package webhook

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/athenz-injector/athenz-injector/api/v1alpha1"
)

// FuzzBuildPatch feeds Pods (JSON), profiles (JSON) and namespace opt-in to
// Mutate, seeded from the golden inputs. Whatever it gets, Mutate must not
// panic, must refuse with a *Denial rather than another error, and on
// success the invariants of the golden tests hold: only "add" operations,
// nothing of the original Pod removed or changed, Pods that did not opt in
// untouched, and the patched Pod gets no further operations.
func FuzzBuildPatch(f *testing.F) {
	for _, name := range caseNames(f) {
		c := loadCase(f, name)
		profile, err := json.Marshal(c.profile)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(c.raw, profile, c.nsLabels[NamespaceLabelInject] == NamespaceInjectEnabled)
	}
	base, err := os.ReadFile(filepath.Join("testdata", "profile.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	baseJSON, err := yaml.YAMLToJSON(base)
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(`{"metadata":{"namespace":"a","annotations":{"athenz.io/inject":"true"}},"spec":{"containers":null,"initContainers":[],"volumes":null}}`), baseJSON, false)

	f.Fuzz(func(t *testing.T, rawPod, rawProfile []byte, namespaceOptIn bool) {
		pod, err := DecodePod(rawPod)
		if err != nil || !admittable(rawPod) {
			return
		}
		profile := &v1alpha1.SidecarProfile{}
		if err := json.Unmarshal(rawProfile, profile); err != nil {
			return
		}
		var labels map[string]string
		if namespaceOptIn {
			labels = map[string]string{NamespaceLabelInject: NamespaceInjectEnabled}
		}
		ops, err := Mutate(pod, labels, profile, testSettings)
		if err != nil {
			var d *Denial
			if !errors.As(err, &d) || d.Msg == "" {
				t.Fatalf("Mutate = %v (%T), want a *Denial with a message", err, err)
			}
			return
		}
		patched, err := applyPatch(rawPod, ops)
		if err != nil {
			t.Fatalf("applying the patch: %v\nops: %+v", err, ops)
		}
		checkInvariants(t, goldenCase{raw: rawPod, pod: pod, profile: profile, nsLabels: labels}, ops, patched)
	})
}

// admittable reports whether raw has what every Pod the API server admits
// has: metadata and spec objects. Without them no JSON patch could add to
// either, and the API server never sends such a Pod.
func admittable(raw []byte) bool {
	var top map[string]json.RawMessage
	if json.Unmarshal(raw, &top) != nil {
		return false
	}
	for _, k := range []string{"metadata", "spec"} {
		var m map[string]json.RawMessage
		if json.Unmarshal(top[k], &m) != nil || m == nil {
			return false
		}
	}
	return true
}

// fuzzCorpus reads the stored corpus of a fuzz target: entry name -> its
// first []byte argument (the Pod).
func fuzzCorpus(t testing.TB, target string) map[string][]byte {
	t.Helper()
	dir := filepath.Join("testdata", "fuzz", target)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(b), "\n")
		if len(lines) < 2 || lines[0] != "go test fuzz v1" || !strings.HasPrefix(lines[1], "[]byte(") {
			t.Errorf("%s/%s is not a go test fuzz v1 entry with a []byte first", dir, e.Name())
			continue
		}
		s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
		if err != nil {
			t.Errorf("%s/%s: %v", dir, e.Name(), err)
			continue
		}
		out[e.Name()] = []byte(s)
	}
	return out
}
