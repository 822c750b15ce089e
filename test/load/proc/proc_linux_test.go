package proc

import (
	"os"
	"syscall"
	"testing"
	"time"
)

func TestReadings(t *testing.T) {
	rss, err := Status(os.Getpid(), "VmRSS")
	if err != nil || rss <= 0 {
		t.Fatalf("Status(VmRSS) = %d, %v; want a positive size", rss, err)
	}
	if _, err := Status(os.Getpid(), "NoSuchField"); err == nil {
		t.Error("Status(NoSuchField): want an error")
	}
	before, err := CPUTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Spin until the kernel's own account (getrusage) says this process
	// used 100 ms more CPU: wall time would say nothing on a busy machine.
	used := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			t.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	for start, deadline := used(), time.Now().Add(30*time.Second); used()-start < 100*time.Millisecond && time.Now().Before(deadline); {
	}
	after, err := CPUTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// 10 ms resolution, and the ticks are sampled: allow two ticks less.
	if d := after - before; d < 80*time.Millisecond {
		t.Errorf("CPU time grew by %v over 100 ms of spinning; want at least 80 ms", d)
	}
}

func TestCPUBusy(t *testing.T) {
	cpus, err := AllowedCPUs()
	if err != nil {
		t.Fatal(err)
	}
	busy, err := CPUBusy(cpus[0])
	if err != nil || busy <= 0 {
		t.Fatalf("CPUBusy(%d) = %v, %v; want a positive time", cpus[0], busy, err)
	}
	if _, err := CPUBusy(1 << 20); err == nil {
		t.Error("CPUBusy of a CPU that does not exist: want an error")
	}
}
