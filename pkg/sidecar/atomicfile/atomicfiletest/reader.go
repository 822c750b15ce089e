// Package atomicfiletest checks atomicfile's promise from a reader's
// side: a goroutine reads files in a loop while a test replaces them, and
// the test fails on any read that saw a partial, empty or mismatched file.
package atomicfiletest

import (
	"sync"
	"sync/atomic"
	"testing"
)

// maxProblems bounds the problems a Reader keeps for the failure message.
const maxProblems = 10

// Reader calls a read function in a loop until Check.
type Reader struct {
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
	reads atomic.Int64

	mu       sync.Mutex // guards problems
	problems []string
}

// StartReader starts calling read in a loop, in a goroutine, until Check
// or the end of the test. read returns "" for a good read, else what was
// wrong with it.
func StartReader(t testing.TB, read func() string) *Reader {
	r := &Reader{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for {
			select {
			case <-r.stop:
				return
			default:
			}
			if p := read(); p != "" {
				r.mu.Lock()
				if len(r.problems) < maxProblems {
					r.problems = append(r.problems, p)
				}
				r.mu.Unlock()
			}
			r.reads.Add(1)
		}
	}()
	t.Cleanup(r.finish)
	return r
}

func (r *Reader) finish() {
	r.once.Do(func() { close(r.stop) })
	<-r.done
}

// Check stops the reader and fails the test, naming what, on a bad read
// or when it read nothing. It returns the number of reads.
func (r *Reader) Check(t testing.TB, what string) int64 {
	t.Helper()
	r.finish()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.problems) > 0 {
		t.Errorf("a reader of %s saw: %v", what, r.problems)
	}
	n := r.reads.Load()
	if n == 0 {
		t.Errorf("the reader of %s read nothing", what)
	}
	return n
}
