package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
)

// memoryLimitFraction is the part of the container's memory limit given
// to the Go runtime as its soft limit (GOMEMLIMIT). The rest is for what
// the runtime does not count and the container's limit does: the
// binary's pages (about 8 MB), the kernel's socket buffers, and slack for
// the runtime to react before the kernel's OOM killer does. With the
// injector's default limit of 64 MiB that is 51 MiB.
const memoryLimitFraction = 0.8

// setMemoryLimit gives the Go runtime a soft memory limit of
// memoryLimitFraction of the container's memory limit, read from the
// cgroup file system under root ("/sys/fs/cgroup"), unless GOMEMLIMIT is
// set in environ (the runtime has read it already) or the container has
// no limit. It returns what it did, for the log, and the limit set (0:
// none).
func setMemoryLimit(environ []string, root, procCgroup string) (string, int64) {
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "GOMEMLIMIT="); ok {
			return "GOMEMLIMIT=" + v + " from the environment", 0
		}
	}
	limit, file, err := cgroupMemoryLimit(root, procCgroup)
	switch {
	case err != nil:
		return "none: " + err.Error(), 0
	case limit == 0:
		return "none: the container has no memory limit (" + file + ")", 0
	}
	soft := int64(float64(limit) * memoryLimitFraction)
	debug.SetMemoryLimit(soft)
	return fmt.Sprintf("%d bytes, %.0f%% of the container's limit %d (%s)", soft, 100*memoryLimitFraction, limit, file), soft
}

// cgroupMemoryLimit reads the memory limit of this process's cgroup:
// cgroup v2's memory.max (at root itself in a container's own cgroup
// namespace, else under the path /proc/self/cgroup names), or v1's
// memory.limit_in_bytes. It returns 0 when there is no limit.
func cgroupMemoryLimit(root, procCgroup string) (limit int64, file string, err error) {
	var candidates []string
	if b, err := os.ReadFile(procCgroup); err == nil {
		for line := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n") {
			// "0::/path" (v2) or "N:memory[,...]:/path" (v1).
			parts := strings.SplitN(line, ":", 3)
			if len(parts) != 3 {
				continue
			}
			switch {
			case parts[0] == "0" && parts[1] == "":
				candidates = append(candidates, filepath.Join(root, parts[2], "memory.max"))
			case hasController(parts[1], "memory"):
				candidates = append(candidates, filepath.Join(root, "memory", parts[2], "memory.limit_in_bytes"))
			}
		}
	}
	candidates = append(candidates, filepath.Join(root, "memory.max"), filepath.Join(root, "memory", "memory.limit_in_bytes"))
	for _, f := range candidates {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		v := strings.TrimSpace(string(b))
		if v == "max" {
			return 0, f, nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, f, fmt.Errorf("%s: %w", f, err)
		}
		// cgroup v1 writes "no limit" as the largest page-aligned int64.
		if n <= 0 || n >= math.MaxInt64/2 {
			return 0, f, nil
		}
		return n, f, nil
	}
	return 0, "", fmt.Errorf("no cgroup memory limit file (looked at %s)", strings.Join(candidates, ", "))
}

func hasController(list, name string) bool {
	for c := range strings.SplitSeq(list, ",") {
		if c == name {
			return true
		}
	}
	return false
}
