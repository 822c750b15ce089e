package chart_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/athenz-injector/athenz-injector/pkg/webhook/webhooktest"
)

// TestDockerfiles checks what can be checked without a container engine:
// each image builds its binary with the Makefile's flags, copies every
// directory of the module the binary is built from, and runs it as
// non-root on distroless.
func TestDockerfiles(t *testing.T) {
	t.Parallel()
	root, err := webhooktest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	makefile, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^LDFLAGS\s*:?=\s*(.+)$`).FindSubmatch(makefile)
	if m == nil {
		t.Fatal("no LDFLAGS in the Makefile")
	}
	// The Makefile's $(VERSION) is the Dockerfile's build argument.
	ldflags := strings.ReplaceAll(strings.TrimSpace(string(m[1])), "$(VERSION)", "${VERSION}")

	for _, bin := range []string{"injector", "sidecar"} {
		t.Run(bin, func(t *testing.T) {
			t.Parallel()
			file := "Dockerfile." + bin
			data, err := os.ReadFile(filepath.Join(root, file))
			if err != nil {
				t.Fatal(err)
			}
			// Join continuation lines so that the RUN is one line.
			df := strings.ReplaceAll(string(data), "\\\n", " ")
			df = regexp.MustCompile(`[ \t]+`).ReplaceAllString(df, " ")
			for _, want := range []string{
				"CGO_ENABLED=0",
				"go build -trimpath",
				`-ldflags "` + ldflags + `"`,
				"./cmd/" + bin,
				"FROM gcr.io/distroless/static:nonroot",
				"USER 65532",
				`ENTRYPOINT ["/` + bin + `"]`,
			} {
				if !strings.Contains(df, want) {
					t.Errorf("%s lacks %q (the Makefile builds with LDFLAGS := %s)", file, want, m[1])
				}
			}

			var copied []string
			for _, c := range regexp.MustCompile(`(?m)^COPY (\S+)/ `).FindAllStringSubmatch(df, -1) {
				copied = append(copied, c[1])
			}
			cmd := exec.Command("go", "list", "-deps", "-f", "{{if .Module}}{{if .Module.Main}}{{.Dir}}{{end}}{{end}}", "./cmd/"+bin)
			cmd.Dir = root
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("go list -deps ./cmd/%s: %v", bin, err)
			}
			for _, dir := range strings.Fields(string(out)) {
				rel, err := filepath.Rel(root, dir)
				if err != nil {
					t.Fatal(err)
				}
				top, _, _ := strings.Cut(filepath.ToSlash(rel), "/")
				found := false
				for _, c := range copied {
					found = found || c == top
				}
				if !found {
					t.Errorf("%s builds ./cmd/%s from %s, but copies only %v into the build stage", file, bin, rel, copied)
				}
			}
		})
	}
}
