package framework

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// containerdFixedDirs are directories containerd and its shims use whatever
// their configuration says (shim sockets, fifos of container I/O).
var containerdFixedDirs = []string{"/run/containerd/s", "/run/containerd/fifo", "/run/containerd"}

// cleanNode removes what a node made, whether it stopped cleanly or was
// killed: the processes in its cgroups and its shims, mounts under dir,
// its cgroups, kube-proxy's nftables tables, containerd's fixed
// directories and the kubelet's log links to dir.
func cleanNode(ctx context.Context, dir string, logf func(string, ...any)) error {
	var errs []error
	killed := killCgroupProcesses()
	killed += killShims(dir)
	if killed > 0 {
		logf("killed %d leftover container or shim processes", killed)
		time.Sleep(200 * time.Millisecond) // let the kernel release their mounts
	}
	if n, err := unmountUnder(dir); err != nil {
		errs = append(errs, err)
	} else if n > 0 {
		logf("unmounted %d leftover mounts under %s", n, dir)
	}
	if err := removeCgroupRoot(); err != nil {
		errs = append(errs, err)
	}
	for _, family := range []string{"ip", "ip6"} {
		out, err := exec.CommandContext(ctx, "nft", "delete", "table", family, "kube-proxy").CombinedOutput()
		if err != nil && !bytes.Contains(out, []byte("No such file")) {
			errs = append(errs, fmt.Errorf("nft delete table %s kube-proxy: %v: %s", family, err, bytes.TrimSpace(out)))
		}
	}
	for _, d := range containerdFixedDirs {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			if e.Name() == "s" || e.Name() == "fifo" {
				continue
			}
			_ = os.RemoveAll(filepath.Join(d, e.Name()))
		}
		_ = os.Remove(d)
	}
	if ents, err := os.ReadDir("/var/log/containers"); err == nil {
		for _, e := range ents {
			p := filepath.Join("/var/log/containers", e.Name())
			if target, err := os.Readlink(p); err == nil && strings.HasPrefix(target, dir) {
				_ = os.Remove(p)
			}
		}
		_ = os.Remove("/var/log/containers") // only if empty
	}
	return errors.Join(errs...)
}

// createCgroupRoot creates the kubelet's cgroup root on every v1
// hierarchy (the kubelet requires it to exist).
func createCgroupRoot() error {
	for _, h := range cgroupHierarchies() {
		if err := os.MkdirAll(filepath.Join(h, cgroupRoot), 0o755); err != nil {
			return fmt.Errorf("creating the node's cgroup root: %w", err)
		}
	}
	return nil
}

// cgroupHierarchies are the mounted cgroup hierarchies (v1 controllers,
// the named systemd one, and the unified one of a hybrid setup).
func cgroupHierarchies() []string {
	ents, err := os.ReadDir("/sys/fs/cgroup")
	if err != nil {
		return nil
	}
	var hs []string
	for _, e := range ents {
		p := filepath.Join("/sys/fs/cgroup", e.Name())
		if fi, err := os.Lstat(p); err == nil && fi.IsDir() {
			hs = append(hs, p)
		}
	}
	return hs
}

// killCgroupProcesses SIGKILLs every process in the node's cgroups.
func killCgroupProcesses() int {
	n := 0
	for _, h := range cgroupHierarchies() {
		_ = filepath.WalkDir(filepath.Join(h, cgroupRoot), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
				return nil
			}
			b, _ := os.ReadFile(path)
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil && syscall.Kill(pid, syscall.SIGKILL) == nil {
					n++
				}
			}
			return nil
		})
	}
	return n
}

// killShims waits a moment for the containerd shims of the containerd
// whose socket is under dir to exit (they do once their sandboxes are
// removed), then SIGKILLs those left and waits until they are gone. It
// returns how many it killed.
func killShims(dir string) int {
	shims := func() []int {
		var pids []int
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
			if err != nil {
				continue
			}
			args := strings.Split(string(cmdline), "\x00")
			if len(args) > 0 && strings.HasPrefix(filepath.Base(args[0]), "containerd-shim") && strings.Contains(string(cmdline), dir) {
				pids = append(pids, pid)
			}
		}
		return pids
	}
	waitGone := func(d time.Duration) []int {
		deadline := time.Now().Add(d)
		for {
			left := shims()
			if len(left) == 0 || time.Now().After(deadline) {
				return left
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	left := waitGone(3 * time.Second)
	for _, pid := range left {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	waitGone(5 * time.Second)
	return len(left)
}

// unmountUnder unmounts (lazily) every mount point under dir, the deepest
// first, and returns how many.
func unmountUnder(dir string) (int, error) {
	var under []string
	for _, m := range mountPoints() {
		if m == dir || strings.HasPrefix(m, dir+"/") {
			under = append(under, m)
		}
	}
	sort.Slice(under, func(i, j int) bool { return len(under[i]) > len(under[j]) })
	var errs []error
	for _, m := range under {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("unmounting %s: %w", m, err))
		}
	}
	return len(under), errors.Join(errs...)
}

// removeCgroupRoot removes the node's cgroups, the deepest first.
func removeCgroupRoot() error {
	var errs []error
	for _, h := range cgroupHierarchies() {
		root := filepath.Join(h, cgroupRoot)
		var dirs []string
		_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			var err error
			for try := 0; try < 50; try++ { // a cgroup empties a moment after its last process died
				if err = os.Remove(dirs[i]); err == nil || errors.Is(err, fs.ErrNotExist) {
					err = nil
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("removing cgroup %s: %w", dirs[i], err))
			}
		}
	}
	return errors.Join(errs...)
}

// CleanStaleNode cleans after a node whose run was killed before it could
// stop it: it kills the processes staleStateFile records (if they are
// still the node's), and removes what cleanNode removes.
func CleanStaleNode(ctx context.Context, logf func(string, ...any)) error {
	var r nodeRecord
	if found, err := readStateFile(staleStateFile, &r); !found || err != nil {
		return err
	}
	logf("a test node of an earlier run was not stopped (%s): cleaning it", staleStateFile)
	for _, pid := range r.Pids {
		comm, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm"))
		switch strings.TrimSpace(string(comm)) {
		case "containerd", "kubelet", "kube-proxy", "kube-scheduler":
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	time.Sleep(200 * time.Millisecond)
	if err := cleanNode(ctx, r.Dir, logf); err != nil {
		return err
	}
	return os.Remove(staleStateFile)
}
