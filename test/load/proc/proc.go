// Package proc holds what the load harnesses (test/load/...) need to know
// about and do with processes on Linux: place them on CPUs
// (sched_setaffinity), and read their memory and CPU time from /proc.
// Elsewhere placement fails with an error and the readings fail, and the
// harnesses measure what they can without them.
package proc

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Status reads a "Vm..." or "Rss..." line of /proc/PID/status, in KiB.
func Status(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), field+":"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// userHZ is the unit of the CPU times in /proc/PID/stat: USER_HZ, which
// Linux fixes at 100 for user space whatever the kernel's own HZ.
const userHZ = 100

// CPUTime returns the CPU time process pid has used so far, user and
// system, all its threads (utime and stime of /proc/PID/stat). Its
// resolution is 10 ms: measure over seconds.
func CPUTime(pid int) (time.Duration, error) {
	_, fields, err := stat(pid)
	if err != nil {
		return 0, err
	}
	// fields[0] is the state (field 3 of proc(5)); utime and stime are
	// fields 14 and 15.
	if len(fields) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields after the name", pid, len(fields))
	}
	var ticks int64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}

// stat reads /proc/PID/stat: the command name and the fields after it
// (the state first).
func stat(pid int) (name string, fields []string, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", nil, err
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses.
	s := string(b)
	i, j := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if i < 0 || j < i {
		return "", nil, errors.New("malformed /proc/" + strconv.Itoa(pid) + "/stat")
	}
	return s[i+1 : j], strings.Fields(s[j+1:]), nil
}

// FreeAddr returns a free 127.0.0.1 address.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// CPUBusy returns how long CPU cpu has been busy since boot, all
// processes together: the time of its "cpuN" line of /proc/stat that is
// not idle or waiting for I/O. A harness that pins a server to a CPU
// subtracts the server's own CPU time to see what else ran there.
func CPUBusy(cpu int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	prefix := "cpu" + strconv.Itoa(cpu) + " "
	for line := range strings.SplitSeq(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, prefix)
		if !ok {
			continue
		}
		// user nice system idle iowait irq softirq steal ...
		var busy int64
		for i, f := range strings.Fields(rest) {
			if i >= 8 {
				break // guest time is counted in user already
			}
			n, err := strconv.ParseInt(f, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/stat %s: %w", prefix, err)
			}
			if i != 3 && i != 4 {
				busy += n
			}
		}
		return time.Duration(busy) * time.Second / userHZ, nil
	}
	return 0, fmt.Errorf("no CPU %d in /proc/stat", cpu)
}
