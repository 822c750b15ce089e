package main

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestSetMemoryLimit(t *testing.T) {
	tests := []struct {
		name      string
		files     map[string]string // under a temporary root; "proc" is /proc/self/cgroup
		environ   []string
		wantLimit int64
		wantSays  string
	}{
		{name: "cgroup v2, own namespace", files: map[string]string{"proc": "0::/\n", "memory.max": "67108864\n"},
			wantLimit: 53687091, wantSays: "80% of the container's limit 67108864"},
		{name: "cgroup v2, host namespace", files: map[string]string{"proc": "0::/kubepods/pod1/c1\n", "kubepods/pod1/c1/memory.max": "134217728\n"},
			wantLimit: 107374182, wantSays: "kubepods/pod1/c1/memory.max"},
		{name: "cgroup v2, no limit", files: map[string]string{"proc": "0::/\n", "memory.max": "max\n"},
			wantSays: "none: the container has no memory limit"},
		{name: "cgroup v1", files: map[string]string{"proc": "12:cpuset:/\n7:memory:/pod/c\n", "memory/pod/c/memory.limit_in_bytes": "33554432\n"},
			wantLimit: 26843545, wantSays: "memory.limit_in_bytes"},
		{name: "cgroup v1, no limit", files: map[string]string{"proc": "7:memory:/\n", "memory/memory.limit_in_bytes": "9223372036854771712\n"},
			wantSays: "none: the container has no memory limit"},
		{name: "GOMEMLIMIT wins", files: map[string]string{"proc": "0::/\n", "memory.max": "67108864\n"}, environ: []string{"GOMEMLIMIT=20MiB"},
			wantSays: "GOMEMLIMIT=20MiB from the environment"},
		{name: "no cgroup", files: map[string]string{}, wantSays: "none: no cgroup memory limit file"},
		{name: "garbage", files: map[string]string{"proc": "0::/\n", "memory.max": "lots\n"}, wantSays: `none: `},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			proc := filepath.Join(root, "proc")
			for name, content := range tt.files {
				p := filepath.Join(root, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			before := debug.SetMemoryLimit(-1)
			t.Cleanup(func() { debug.SetMemoryLimit(before) })
			says, limit := setMemoryLimit(tt.environ, root, proc)
			if limit != tt.wantLimit {
				t.Errorf("limit = %d, want %d (%s)", limit, tt.wantLimit, says)
			}
			if !strings.Contains(says, tt.wantSays) {
				t.Errorf("says %q, want it to contain %q", says, tt.wantSays)
			}
			if got := debug.SetMemoryLimit(-1); tt.wantLimit != 0 && got != tt.wantLimit {
				t.Errorf("runtime memory limit = %d, want %d", got, tt.wantLimit)
			} else if tt.wantLimit == 0 && got != before {
				t.Errorf("runtime memory limit changed to %d with no limit to follow", got)
			}
		})
	}
}
