package framework

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// PollInterval is how often Wait checks.
const PollInterval = 100 * time.Millisecond

// Wait calls check every PollInterval until it reports done, fails, or ctx
// ends. check returns done, and a short description of the state it saw
// ("pod web-1: phase Pending, no podIP"), which the timeout error repeats so
// that a failure says what was waited for and what was there instead.
// Bound ctx with a deadline: Wait has none of its own.
func Wait(ctx context.Context, what string, check func(ctx context.Context) (done bool, state string, err error)) error {
	start := time.Now()
	var state string
	for {
		done, s, err := check(ctx)
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		if done {
			return nil
		}
		state = s
		select {
		case <-ctx.Done():
			err := ctx.Err()
			if errors.Is(context.Cause(ctx), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
				err = fmt.Errorf("timed out after %v", time.Since(start).Round(100*time.Millisecond))
			}
			if state == "" {
				return fmt.Errorf("waiting for %s: %w", what, err)
			}
			return fmt.Errorf("waiting for %s: %w; last seen: %s", what, err, state)
		case <-time.After(PollInterval):
		}
	}
}

// WithTimeout is context.WithTimeout whose deadline error names what the
// deadline is for, for messages of calls that are not Wait.
func WithTimeout(ctx context.Context, d time.Duration, what string) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, d, fmt.Errorf("%s took longer than %v", what, d))
}
