package framework

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// HostState is what a test node can leave behind on the host: the
// writable sysctls, mounts, cgroups, network namespaces, network links,
// routes, nftables tables and node processes. TakeHostState before a node
// starts and again after it stopped; Diff must be empty.
type HostState struct {
	Sysctls   map[string]string
	Mounts    []string
	Cgroups   []string
	Netns     []string
	Links     []string
	Routes    []string
	NFTables  []string
	Processes []string
}

// volatileSysctls change by themselves.
var volatileSysctls = []string{
	"kernel/ns_last_pid", "kernel/random/", "fs/dentry-state", "fs/inode-nr", "fs/inode-state", "fs/file-nr",
	"kernel/pty/nr", "fs/aio-nr", "net/netfilter/nf_conntrack_count",
}

// TakeHostState reads the host's state. Processes are those of a run in
// dir (their command line names a file under it: the control plane, the
// node, the shims) and those in the node's cgroups (containers), so that
// other programs on the machine, other tests among them, do not count.
func TakeHostState(dir string) (*HostState, error) {
	s := &HostState{}
	var err error
	if s.Sysctls, err = readSysctls(); err != nil {
		return nil, err
	}
	s.Mounts = mountPoints()
	s.Cgroups = cgroupDirs()
	if ents, err := os.ReadDir("/run/netns"); err == nil {
		for _, e := range ents {
			s.Netns = append(s.Netns, e.Name())
		}
	}
	s.Links = commandLines("ip", "-o", "link", "show")
	for i, l := range s.Links { // "3: athenz0: <...> ..." -> "athenz0"
		if f := strings.Fields(l); len(f) > 1 {
			s.Links[i] = strings.TrimSuffix(strings.Split(f[1], "@")[0], ":")
		}
	}
	s.Routes = commandLines("ip", "route", "show", "table", "all")
	if _, err := exec.LookPath("nft"); err == nil {
		s.NFTables = commandLines("nft", "list", "tables")
	}
	s.Processes = runProcesses(dir)
	return s, nil
}

// Diff lists what differs from before, one line each ("sysctl
// kernel/panic: 1 -> 10", "mount added: /tmp/x/kubelet/pods/...").
func (s *HostState) Diff(before *HostState) []string {
	var d []string
	keys := make([]string, 0, len(before.Sysctls))
	for k := range before.Sysctls {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if now, ok := s.Sysctls[k]; ok && now != before.Sysctls[k] {
			d = append(d, fmt.Sprintf("sysctl %s: %s -> %s", k, before.Sysctls[k], now))
		}
	}
	list := func(what string, before, after []string) {
		for _, x := range after {
			if !slices.Contains(before, x) {
				d = append(d, what+" added: "+x)
			}
		}
		for _, x := range before {
			if !slices.Contains(after, x) {
				d = append(d, what+" removed: "+x)
			}
		}
	}
	list("mount", before.Mounts, s.Mounts)
	list("cgroup", before.Cgroups, s.Cgroups)
	list("network namespace", before.Netns, s.Netns)
	list("network link", before.Links, s.Links)
	list("route", before.Routes, s.Routes)
	list("nftables table", before.NFTables, s.NFTables)
	list("process", before.Processes, s.Processes)
	return d
}

// RestoreSysctls writes back every sysctl whose value differs from
// before's, and returns the ones it wrote ("kernel/panic: 10 -> 1").
func RestoreSysctls(before *HostState) ([]string, error) {
	now, err := readSysctls()
	if err != nil {
		return nil, err
	}
	var restored, failed []string
	for k, v := range before.Sysctls {
		if cur, ok := now[k]; ok && cur != v {
			if err := os.WriteFile(filepath.Join("/proc/sys", k), []byte(v), 0o644); err != nil {
				failed = append(failed, fmt.Sprintf("%s: %v", k, err))
				continue
			}
			restored = append(restored, fmt.Sprintf("%s: %s -> %s", k, cur, v))
		}
	}
	sort.Strings(restored)
	if len(failed) > 0 {
		return restored, fmt.Errorf("restoring sysctls: %s", strings.Join(failed, "; "))
	}
	return restored, nil
}

// readSysctls reads every writable file under /proc/sys but the
// per-interface ones (net/*/conf/<link>, net/*/neigh/<link>: they go with
// their link) and the volatile ones.
func readSysctls() (map[string]string, error) {
	m := map[string]string{}
	err := filepath.WalkDir("/proc/sys", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // unreadable parts are not ours
		}
		rel := strings.TrimPrefix(path, "/proc/sys/")
		if d.IsDir() {
			parts := strings.Split(rel, "/")
			if len(parts) == 4 && parts[0] == "net" && (parts[2] == "conf" || parts[2] == "neigh") && parts[3] != "all" && parts[3] != "default" {
				return fs.SkipDir
			}
			return nil
		}
		for _, v := range volatileSysctls {
			if strings.HasPrefix(rel, v) {
				return nil
			}
		}
		info, err := d.Info()
		if err != nil || info.Mode().Perm()&0o200 == 0 {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil // write-only or refused: not a setting we can compare
		}
		m[rel] = strings.TrimSpace(string(b))
		return nil
	})
	return m, err
}

// mountPoints are the mount points of /proc/self/mountinfo.
func mountPoints() []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var m []string
	for _, l := range strings.Split(string(bytes.TrimSpace(b)), "\n") {
		if f := strings.Fields(l); len(f) > 4 {
			m = append(m, f[4])
		}
	}
	sort.Strings(m)
	return m
}

// cgroupDirs are the cgroups of every hierarchy under /sys/fs/cgroup, to
// a depth of 3, but the sandbox's own (process_api: one per process of
// this machine's session, not the node's).
func cgroupDirs() []string {
	var dirs []string
	_ = filepath.WalkDir("/sys/fs/cgroup", func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		rel := strings.TrimPrefix(path, "/sys/fs/cgroup")
		if strings.Count(rel, "/") > 4 || d.Name() == "process_api" {
			return fs.SkipDir
		}
		dirs = append(dirs, path)
		return nil
	})
	return dirs
}

func commandLines(name string, args ...string) []string {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		return nil
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// runProcesses lists "name(pid)" of the running processes whose command
// line names dir or whose cgroup is under the node's cgroup root. Zombies
// are not running: they have exited and wait for their parent (for a
// daemon's, this machine's init) to collect their status.
func runProcesses(dir string) []string {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := strconv.Itoa(os.Getpid())
	var ps []string
	for _, e := range ents {
		if e.Name() == self {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// "pid (comm) state ...": comm may hold spaces and parentheses.
		stat := string(b)
		open, closing := strings.IndexByte(stat, '('), strings.LastIndexByte(stat, ')')
		if open < 0 || closing < open || len(stat) < closing+3 || stat[closing+2] == 'Z' {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		cgroups, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cgroup"))
		if (dir != "" && bytes.Contains(cmdline, []byte(dir))) || bytes.Contains(cgroups, []byte(":"+cgroupRoot+"/")) {
			ps = append(ps, stat[open+1:closing]+"("+e.Name()+")")
		}
	}
	return ps
}
