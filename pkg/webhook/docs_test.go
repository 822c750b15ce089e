package webhook

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/athenz-injector/athenz-injector/pkg/webhook/webhooktest"
)

// TestSecurityDocNamesRealTests: every test that docs/security.md names as
// the proof of a control exists, and so does every subtest it names, so
// that the threat model cannot point at a test that was renamed away.
func TestSecurityDocNamesRealTests(t *testing.T) {
	root, err := webhooktest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(root, "docs", "security.md"))
	if err != nil {
		t.Fatal(err)
	}
	// Test function name -> the source of its file.
	tests := map[string]string{}
	funcRE := regexp.MustCompile(`(?m)^func (Test\w+)\(t \*testing\.T\)`)
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "bin" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range funcRE.FindAllStringSubmatch(string(src), -1) {
			tests[m[1]] = string(src)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	named := regexp.MustCompile("`(Test\\w+)(/[^`]+)?`").FindAllStringSubmatch(string(doc), -1)
	if len(named) < 20 {
		t.Fatalf("docs/security.md names %d tests, want every threat's", len(named))
	}
	for _, m := range named {
		src, ok := tests[m[1]]
		if !ok {
			t.Errorf("docs/security.md names %s, which no _test.go defines", m[1])
			continue
		}
		if m[2] == "" {
			continue
		}
		// go test writes a subtest "a b" as a_b.
		sub := strings.ReplaceAll(strings.TrimPrefix(m[2], "/"), "_", " ")
		if !strings.Contains(src, `"`+sub) {
			t.Errorf("docs/security.md names %s%s, but %s has no subtest %q", m[1], m[2], m[1], sub)
		}
	}
}

// TestAnnotationsDocumented: every athenz.io/ annotation the injector
// reads on Pods (the Annotation* constants of annotations.go) is in
// docs/injector.md.
func TestAnnotationsDocumented(t *testing.T) {
	root, err := webhooktest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(root, "docs", "injector.md"))
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("annotations.go")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^\s*Annotation\w+\s*=\s*"(athenz\.io/[^"]+)"`)
	found := re.FindAllStringSubmatch(string(src), -1)
	if len(found) < 15 {
		t.Fatalf("found %d annotation constants in annotations.go, want them all", len(found))
	}
	for _, m := range found {
		if !strings.Contains(string(doc), "`"+m[1]+"`") {
			t.Errorf("docs/injector.md does not document the annotation %s", m[1])
		}
	}
}
