package tokens

import (
	"sync"
	"time"
)

// Clock is the time source of the cache and the signer. Tests pass a
// FakeClock so that lifetimes of hours run in microseconds with no sleep.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine once d has passed.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc call.
type Timer interface {
	// Stop prevents the call; it reports whether the call was still pending.
	Stop() bool
}

// RealClock is the wall clock.
type RealClock struct{}

// Now returns time.Now().
func (RealClock) Now() time.Time { return time.Now() }

// AfterFunc wraps time.AfterFunc.
func (RealClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// FakeClock is a manually advanced Clock. Its AfterFunc callbacks run
// synchronously inside Advance, in deadline order, so a test that advances
// past a refresh point observes the refresh's effect as soon as Advance
// returns. The zero value starts at the Unix epoch; use NewFakeClock for a
// realistic start.
type FakeClock struct {
	mu      sync.Mutex // guards now, timers, seq
	now     time.Time
	timers  []*fakeTimer
	seq     uint64
	running sync.Mutex // serialises Advance calls
}

// NewFakeClock returns a FakeClock set to t.
func NewFakeClock(t time.Time) *FakeClock { return &FakeClock{now: t} }

// Now returns the fake time.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc registers f to run when the fake time reaches Now()+d.
func (c *FakeClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	t := &fakeTimer{clock: c, when: c.now.Add(d), f: f, seq: c.seq}
	c.timers = append(c.timers, t)
	return t
}

// Pending reports how many timers are waiting.
func (c *FakeClock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// Next returns when the earliest pending timer falls due, if any: a test
// can advance to it, let the work it starts finish at that time, then go
// on.
func (c *FakeClock) Next() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var next time.Time
	for _, t := range c.timers {
		if next.IsZero() || t.when.Before(next) {
			next = t.when
		}
	}
	return next, !next.IsZero()
}

// Advance moves the time forward by d, running every timer that falls due,
// earliest first; timers registered by those callbacks run too if they fall
// within the new time.
func (c *FakeClock) Advance(d time.Duration) {
	c.running.Lock()
	defer c.running.Unlock()
	c.mu.Lock()
	target := c.now.Add(d)
	c.mu.Unlock()
	for {
		c.mu.Lock()
		idx := -1
		for i, t := range c.timers {
			if t.when.After(target) {
				continue
			}
			if idx < 0 || t.when.Before(c.timers[idx].when) ||
				(t.when.Equal(c.timers[idx].when) && t.seq < c.timers[idx].seq) {
				idx = i
			}
		}
		if idx < 0 {
			c.now = target
			c.mu.Unlock()
			return
		}
		t := c.timers[idx]
		c.timers = append(c.timers[:idx], c.timers[idx+1:]...)
		if t.when.After(c.now) {
			c.now = t.when
		}
		c.mu.Unlock()
		t.f()
	}
}

type fakeTimer struct {
	clock *FakeClock
	when  time.Time
	f     func()
	seq   uint64
}

func (t *fakeTimer) Stop() bool {
	c := t.clock
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, o := range c.timers {
		if o == t {
			c.timers = append(c.timers[:i], c.timers[i+1:]...)
			return true
		}
	}
	return false
}
