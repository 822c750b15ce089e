//go:build !linux

package proc

import (
	"errors"
	"os/exec"
)

// CPU placement uses Linux's sched_setaffinity; elsewhere the harness
// measures the shared placement only.
var errNoPlacement = errors.New("placing processes on CPUs needs Linux")

// PinSelf fails: see errNoPlacement.
func PinSelf([]int) error { return errNoPlacement }

// StartPinned fails: see errNoPlacement.
func StartPinned(*exec.Cmd, []int) error { return errNoPlacement }

// Where reports nothing: see errNoPlacement.
func Where(...string) string { return "" }

// AllowedCPUs fails: see errNoPlacement.
func AllowedCPUs() ([]int, error) { return nil, errNoPlacement }
