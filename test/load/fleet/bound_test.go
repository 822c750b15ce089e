package main

import (
	"math"
	"testing"
	"time"

	"github.com/athenz-injector/athenz-injector/pkg/tokens"
)

func TestRecoveryBound(t *testing.T) {
	// The sidecar's schedule for the simulation's 2 h tokens.
	earliest, latest := tokens.NewCache(nil, tokens.CacheOptions{}).RefreshAfter(tokenLifetime)
	tests := []struct {
		name                                        string
		lifetime, earliest, latest, outage, minLeft time.Duration
		min, max                                    float64
	}{
		{
			// Refreshes 90 min after a 150 min token was obtained, 60 min
			// before it expires: the tokens that fell due in a 30 min outage
			// expire evenly from 30 to 60 min after it, while the refreshes
			// that did not fail go on at the steady rate; by 60 min, 60 + 30
			// calls: 1 + 30/60.
			name:     "by hand",
			lifetime: 150 * time.Minute, earliest: 90*time.Minute - time.Second, latest: 90*time.Minute + time.Second,
			outage: 30 * time.Minute, min: 1.49, max: 1.51,
		},
		{
			name:     "no outage",
			lifetime: 2 * time.Hour, earliest: 63 * time.Minute, latest: 85 * time.Minute, min: 1, max: 1,
		},
		{
			name:     "the sidecar's schedule, 30 min outage",
			lifetime: tokenLifetime, earliest: earliest, latest: latest, outage: 30 * time.Minute, minLeft: tokens.MinServeRemaining,
			min: 1.5, max: 1.6,
		},
		{
			// Refreshing later in the hit window (85 to 95%) leaves less
			// time to spread the backlog over.
			name:     "a later refresh",
			lifetime: 2 * time.Hour, earliest: 76*time.Minute + 30*time.Second, latest: 85*time.Minute + 30*time.Second,
			outage: 30 * time.Minute, minLeft: tokens.MinServeRemaining, min: 1.7, max: 1.8,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := recoveryBound(tt.lifetime, tt.earliest, tt.latest, tt.outage, tt.minLeft)
			if math.IsNaN(got) || got < tt.min || got > tt.max {
				t.Errorf("recoveryBound = %.3f, want %.2f to %.2f", got, tt.min, tt.max)
			}
		})
	}
}
