package proc

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// cpuSet builds a scheduler mask of the given CPUs.
func cpuSet(cpus []int) *unix.CPUSet {
	var s unix.CPUSet
	for _, c := range cpus {
		s.Set(c)
	}
	return &s
}

// PinSelf moves every thread of this process to cpus. Threads and
// processes started afterwards inherit the mask of the thread that creates
// them, so the control plane this process starts next runs there too. The
// loop runs until an iteration finds no thread it has not pinned: the Go
// runtime may start threads while it runs.
func PinSelf(cpus []int) error {
	set := cpuSet(cpus)
	pinned := map[int]bool{}
	for range 10 {
		tids, err := threads(os.Getpid())
		if err != nil {
			return err
		}
		fresh := false
		for _, tid := range tids {
			if pinned[tid] {
				continue
			}
			if err := unix.SchedSetaffinity(tid, set); err != nil && err != unix.ESRCH {
				return fmt.Errorf("pinning thread %d to CPUs %v: %w", tid, cpus, err)
			}
			pinned[tid], fresh = true, true
		}
		if !fresh {
			return nil
		}
	}
	return fmt.Errorf("pinning to CPUs %v: threads kept appearing", cpus)
}

// StartPinned starts cmd on cpus: the child is forked from a thread whose
// mask is cpus, so it starts (and sizes GOMAXPROCS) with that mask. The
// thread is locked and never unlocked, so the runtime discards it rather
// than reuse a thread with a changed mask.
func StartPinned(cmd *exec.Cmd, cpus []int) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.SchedSetaffinity(0, cpuSet(cpus)); err != nil {
			errc <- fmt.Errorf("pinning to CPUs %v: %w", cpus, err)
			return
		}
		errc <- cmd.Start()
	}()
	return <-errc
}

func threads(pid int) ([]int, error) {
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return nil, err
	}
	tids := make([]int, 0, len(entries))
	for _, e := range entries {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}

// Where describes where this process's children named names run,
// as the kernel reports it (/proc/PID/status), e.g. "etcd: CPU 0;
// kube-apiserver: CPU 0".
func Where(names ...string) string {
	entries, _ := os.ReadDir("/proc")
	var parts []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		name, fields, err := stat(pid)
		if err != nil || len(fields) < 2 || fields[1] != strconv.Itoa(os.Getpid()) || !slices.Contains(names, name) {
			continue
		}
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		for line := range strings.SplitSeq(string(status), "\n") {
			if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
				parts = append(parts, fmt.Sprintf("%s on CPU %s", name, strings.TrimSpace(v)))
			}
		}
	}
	slices.Sort(parts)
	if cpus, err := AllowedCPUs(); err == nil {
		parts = append(parts, "this harness on CPU "+CPUList(cpus))
	}
	return strings.Join(parts, ", ")
}

// AllowedCPUs lists the CPUs this thread may run on.
func AllowedCPUs() ([]int, error) {
	var s unix.CPUSet
	if err := unix.SchedGetaffinity(0, &s); err != nil {
		return nil, err
	}
	var cpus []int
	for c := range 1024 {
		if s.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}
