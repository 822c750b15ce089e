package tokens_test

import (
	"slices"
	"testing"
	"time"

	"github.com/athenz-injector/athenz-injector/pkg/tokens"
)

// TestFakeClockOrder: timers fire in deadline order, in arming order at
// equal deadlines; a stopped timer never fires; timers armed by a callback
// fire within the same Advance when they fall due.
func TestFakeClockOrder(t *testing.T) {
	c := tokens.NewFakeClock(time.Unix(1000, 0))
	var fired []string
	arm := func(name string, d time.Duration) tokens.Timer {
		return c.AfterFunc(d, func() { fired = append(fired, name) })
	}
	arm("c", 3*time.Second)
	arm("a1", time.Second)
	stopped := arm("x", 2*time.Second)
	arm("a2", time.Second)
	c.AfterFunc(2*time.Second, func() {
		fired = append(fired, "b")
		arm("b+1", time.Second) // due at 3 s, after c (armed earlier)
	})
	if !stopped.Stop() || stopped.Stop() {
		t.Error("Stop of a pending timer: want true once, then false")
	}
	if next, ok := c.Next(); !ok || !next.Equal(time.Unix(1001, 0)) {
		t.Errorf("Next = %v, %v; want 1001 s", next, ok)
	}
	c.Advance(3 * time.Second)
	if want := []string{"a1", "a2", "b", "c", "b+1"}; !slices.Equal(fired, want) {
		t.Errorf("fired %v, want %v", fired, want)
	}
	if c.Pending() != 0 || !c.Now().Equal(time.Unix(1003, 0)) {
		t.Errorf("after Advance: %d pending at %v; want none at 1003 s", c.Pending(), c.Now())
	}
}
