package stats_test

import (
	"testing"

	"github.com/athenz-injector/athenz-injector/test/load/stats"
)

func TestMedian(t *testing.T) {
	id := func(f float64) float64 { return f }
	tests := []struct {
		in   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 3},
	}
	for _, tt := range tests {
		in := append([]float64(nil), tt.in...)
		if got := stats.Median(tt.in, id); got != tt.want {
			t.Errorf("Median(%v) = %v, want %v", tt.in, got, tt.want)
		}
		for i := range in {
			if in[i] != tt.in[i] {
				t.Errorf("Median changed its input: %v, was %v", tt.in, in)
			}
		}
	}
}
