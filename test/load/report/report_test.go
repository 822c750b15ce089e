package report_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/athenz-injector/athenz-injector/test/load/report"
)

func TestWriteSection(t *testing.T) {
	tests := []struct {
		name, before, want string
	}{
		{name: "replaces the section and keeps the prose",
			before: "intro\n<!-- x:begin -->\nold\n<!-- x:end -->\noutro\n",
			want:   "intro\n<!-- x:begin -->\nnew\n<!-- x:end -->\noutro\n"},
		{name: "appends a missing section",
			before: "intro\n",
			want:   "intro\n\n<!-- x:begin -->\nnew\n<!-- x:end -->\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "perf.md")
			if err := os.WriteFile(path, []byte(tt.before), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := report.WriteSection(path, "x", "new\n"); err != nil {
				t.Fatalf("WriteSection: %v", err)
			}
			got, _ := os.ReadFile(path)
			if string(got) != tt.want {
				t.Errorf("file = %q, want %q", got, tt.want)
			}
		})
	}
}
