package proc

import (
	"os"
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
	// Burn at least 50 ms of CPU: the reading has 10 ms resolution.
	for start := time.Now(); time.Since(start) < 100*time.Millisecond; {
	}
	after, err := CPUTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if d := after - before; d < 50*time.Millisecond {
		t.Errorf("CPU time grew by %v over 100 ms of spinning; want at least 50 ms", d)
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
