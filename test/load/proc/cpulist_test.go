package proc

import "testing"

func TestCPUList(t *testing.T) {
	tests := []struct {
		cpus []int
		want string
	}{
		{nil, ""},
		{[]int{0}, "0"},
		{[]int{0, 1}, "0-1"},
		{[]int{0, 1, 2, 3, 6}, "0-3,6"},
		{[]int{1, 3, 4}, "1,3-4"},
	}
	for _, tt := range tests {
		if got := CPUList(tt.cpus); got != tt.want {
			t.Errorf("CPUList(%v) = %q, want %q", tt.cpus, got, tt.want)
		}
	}
}
