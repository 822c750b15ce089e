//go:build !linux

package main

import (
	"errors"
	"os/exec"
)

// CPU placement uses Linux's sched_setaffinity; elsewhere the harness
// measures the shared placement only.
var errNoPlacement = errors.New("placing processes on CPUs needs Linux")

func pinSelf([]int) error                { return errNoPlacement }
func startPinned(*exec.Cmd, []int) error { return errNoPlacement }
func placementOf(...string) string       { return "" }
func allowedCPUs() ([]int, error)        { return nil, errNoPlacement }
