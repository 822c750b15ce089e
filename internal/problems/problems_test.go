package problems_test

import (
	"errors"
	"io/fs"
	"testing"

	"github.com/athenz-injector/athenz-injector/internal/problems"
)

func TestList(t *testing.T) {
	tests := []struct {
		name   string
		record func(*problems.List)
		want   string // "" for no error
		is     error
	}{
		{name: "nothing", record: func(*problems.List) {}},
		{name: "nil errors are skipped", record: func(l *problems.List) { l.Add(nil, nil) }},
		{
			name:   "formatted, in order",
			record: func(l *problems.List) { l.Addf("A=%q: bad", "x"); l.Addf("B is required") },
			want:   "A=\"x\": bad\nB is required",
		},
		{
			name:   "wrapped errors stay reachable",
			record: func(l *problems.List) { l.Add(nil, errors.New("first")); l.Addf("F: %w", fs.ErrNotExist) },
			want:   "first\nF: file does not exist",
			is:     fs.ErrNotExist,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var l problems.List
			tt.record(&l)
			err := l.Err()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Err() = %v, want nil", err)
				}
				return
			}
			if err == nil || err.Error() != tt.want {
				t.Fatalf("Err() = %v, want %q", err, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.is)
			}
		})
	}
}
