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
