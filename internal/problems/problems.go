// Package problems collects what is wrong with a configuration, so that
// one error reports every problem at once rather than the first one.
package problems

import (
	"errors"
	"fmt"
)

// List is the problems found so far; the zero value is empty and ready.
type List struct {
	errs []error
}

// Addf records a problem, formatted as fmt.Errorf does (%w wraps).
//
// Kept out of line: the settings checks call it at dozens of sites, and
// each inlined copy of the formatting and the append costs the sidecar's
// binary, which every Pod pays for (docs/design/2026-12-02-sidecar-footprint.md).
//
//go:noinline
func (l *List) Addf(format string, args ...any) {
	l.errs = append(l.errs, fmt.Errorf(format, args...))
}

// Add records problems found elsewhere; nil ones are skipped.
func (l *List) Add(errs ...error) {
	for _, err := range errs {
		if err != nil {
			l.errs = append(l.errs, err)
		}
	}
}

// Err joins the problems into one error (errors.Join), nil when there is
// none.
func (l *List) Err() error {
	return errors.Join(l.errs...)
}
