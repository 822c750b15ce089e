package main

import (
	"testing"
	"time"
)

func TestHistogramQuantile(t *testing.T) {
	h := histogram{native: []nativeBucket{{upper: 0.001, count: 90}, {upper: 0.002, count: 9}, {upper: 0.010, count: 1}}}
	tests := []struct {
		q    float64
		want float64
	}{
		{0.5, 0.001},
		{0.9, 0.001},
		{0.95, 0.002},
		{0.99, 0.002},
		{1, 0.010},
	}
	for _, tt := range tests {
		if got, ok := h.quantile(tt.q); !ok || got != tt.want {
			t.Errorf("quantile(%v) = %v, %v; want %v", tt.q, got, ok, tt.want)
		}
	}
	if _, ok := (histogram{}).quantile(0.5); ok {
		t.Error("a histogram with no native buckets has no quantile")
	}
}

func TestSampleQuantile(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	if got := quantile(d, 0.5); got != 50*time.Millisecond {
		t.Errorf("p50 = %v, want 50ms", got)
	}
	if got := quantile(d, 0.99); got != 99*time.Millisecond {
		t.Errorf("p99 = %v, want 99ms", got)
	}
	if d[0] != 100*time.Millisecond {
		t.Error("quantile sorted its input in place")
	}
}
