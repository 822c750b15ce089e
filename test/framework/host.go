package framework

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// hostLockPath serializes test nodes on one machine: they share the
// bridge, the address range and the kubelet's global settings, so a second
// run (`make demo` during `make test`, two test binaries) waits for the
// first.
const hostLockPath = "/run/lock/athenz-injector-node.lock"

// hostStateFile keeps the host's state before the node, until Close: a run
// killed before it closed the Host leaves it, and the next run restores
// its sysctls.
const hostStateFile = "/run/athenz-injector-host.json"

// Host is this machine prepared for a test node: the lock, the state
// before (to compare at Close), and the network.
type Host struct {
	before  *HostState
	network *Network
	lock    *os.File
	dir     string
	logf    func(string, ...any)
}

// CheckNodeHost says why this machine cannot run a test node, or nil: it
// needs Linux, root, overlayfs, cgroups and iproute2.
func CheckNodeHost() error {
	var problems []string
	if runtime.GOOS != "linux" {
		problems = append(problems, "it is not Linux ("+runtime.GOOS+")")
	}
	if os.Geteuid() != 0 {
		problems = append(problems, "it needs root (the kubelet, containerd and runc manage mounts, cgroups and network namespaces)")
	}
	if b, err := os.ReadFile("/proc/filesystems"); err != nil || !strings.Contains(string(b), "overlay") {
		problems = append(problems, "the kernel has no overlay file system (containerd's snapshotter)")
	}
	if _, err := os.Stat("/sys/fs/cgroup"); err != nil {
		problems = append(problems, "there is no /sys/fs/cgroup")
	}
	if len(problems) > 0 {
		return fmt.Errorf("this machine cannot run a test node: %s", strings.Join(problems, "; "))
	}
	return nil
}

// AcquireHost checks the machine, takes the machine-wide lock (waiting up
// to timeout for another node to finish), records the host's state and
// sets up the network. dir is the run's directory (HostState).
func AcquireHost(ctx context.Context, dir string, timeout time.Duration, logf func(string, ...any)) (_ *Host, err error) {
	if err := CheckNodeHost(); err != nil {
		return nil, err
	}
	if logf == nil {
		logf = func(string, ...any) {}
	}
	h := &Host{logf: logf, dir: dir}
	if err := os.MkdirAll("/run/lock", 0o755); err != nil {
		return nil, err
	}
	if h.lock, err = os.OpenFile(hostLockPath, os.O_CREATE|os.O_RDWR, 0o600); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(int(h.lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			h.lock.Close()
			return nil, fmt.Errorf("another test node holds %s (make demo or make test running?): %v", hostLockPath, err)
		}
		select {
		case <-ctx.Done():
			h.lock.Close()
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	defer func() {
		if err != nil {
			_ = h.Close(context.WithoutCancel(ctx))
		}
	}()
	// A run that was killed may have left its node behind: clean it
	// before recording the state to come back to.
	if err := CleanStaleNode(ctx, logf); err != nil {
		return nil, err
	}
	if err := restoreStaleHost(); err != nil {
		return nil, err
	}
	// The bridge and its routes are a test node's alone and the lock is
	// held: any there now are a killed run's, and they must go before the
	// state to come back to is recorded, or Close would report them as
	// removed.
	if err := (&Network{}).Teardown(ctx); err != nil {
		return nil, err
	}
	if h.before, err = TakeHostState(dir); err != nil {
		return nil, err
	}
	b, err := json.Marshal(h.before)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(hostStateFile, b, 0o600); err != nil {
		return nil, err
	}
	if h.network, err = SetupNetwork(ctx); err != nil {
		return h, err
	}
	return h, nil
}

// Close removes the network, restores every sysctl the node changed
// (the kubelet sets kernel.panic, kernel.panic_on_oops and
// vm.overcommit_memory), then compares the host with its state before and
// returns an error listing anything left behind; last it releases the
// lock.
func (h *Host) Close(ctx context.Context) error {
	var errs []error
	if h.network != nil {
		if err := h.network.Teardown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if h.before != nil {
		restored, err := RestoreSysctls(h.before)
		if err != nil {
			errs = append(errs, err)
		}
		if len(restored) > 0 {
			h.logf("restored sysctls: %s", strings.Join(restored, ", "))
		}
		after, err := TakeHostState(h.dir)
		if err != nil {
			errs = append(errs, err)
		} else if d := after.Diff(h.before); len(d) > 0 {
			errs = append(errs, fmt.Errorf("the test node left this behind:\n  %s", strings.Join(d, "\n  ")))
		}
	}
	if len(errs) == 0 {
		_ = os.Remove(hostStateFile)
	}
	if h.lock != nil {
		_ = syscall.Flock(int(h.lock.Fd()), syscall.LOCK_UN)
		h.lock.Close()
	}
	return errors.Join(errs...)
}

// restoreStaleHost restores the sysctls a killed run recorded in
// hostStateFile.
func restoreStaleHost() error {
	var before HostState
	if found, err := readStateFile(hostStateFile, &before); !found || err != nil {
		return err
	}
	if _, err := RestoreSysctls(&before); err != nil {
		return err
	}
	return os.Remove(hostStateFile)
}

// readStateFile reads the JSON a run left in path into v; found is false
// when there is none.
func readStateFile(path string, v any) (found bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("%s: %w", path, err)
	}
	return true, nil
}
