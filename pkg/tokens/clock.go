package tokens

import (
	"container/heap"
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
// realistic start. Its timers are a heap: a fleet of thousands of caches
// (test/load/fleet) arms, stops and fires them in O(log n).
type FakeClock struct {
	mu      sync.Mutex // guards now, timers, seq
	now     time.Time
	timers  timerHeap
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
	heap.Push(&c.timers, t)
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
	if len(c.timers) == 0 {
		return time.Time{}, false
	}
	return c.timers[0].when, true
}

// Advance moves the time forward by d, running every timer that falls due,
// earliest first (in the order they were armed, at equal deadlines);
// timers registered by those callbacks run too if they fall within the
// new time.
func (c *FakeClock) Advance(d time.Duration) {
	c.running.Lock()
	defer c.running.Unlock()
	c.mu.Lock()
	target := c.now.Add(d)
	c.mu.Unlock()
	for {
		c.mu.Lock()
		if len(c.timers) == 0 || c.timers[0].when.After(target) {
			c.now = target
			c.mu.Unlock()
			return
		}
		t := heap.Pop(&c.timers).(*fakeTimer)
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
	index int // in clock.timers; -1 once fired or stopped
}

func (t *fakeTimer) Stop() bool {
	c := t.clock
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.index < 0 {
		return false
	}
	heap.Remove(&c.timers, t.index)
	return true
}

// timerHeap orders pending timers by deadline, then by arming order.
type timerHeap []*fakeTimer

func (h timerHeap) Len() int { return len(h) }

func (h timerHeap) Less(i, j int) bool {
	if !h[i].when.Equal(h[j].when) {
		return h[i].when.Before(h[j].when)
	}
	return h[i].seq < h[j].seq
}

func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}

func (h *timerHeap) Push(x any) {
	t := x.(*fakeTimer)
	t.index = len(*h)
	*h = append(*h, t)
}

func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	t.index = -1
	*h = old[:len(old)-1]
	return t
}
