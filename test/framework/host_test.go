package framework

import (
	"context"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// TestAcquireHostAfterKilledRun is a run killed after it set up the
// network: it leaves the bridge, the routes and its state file. The next
// run must clean them before it records the state to come back to, or its
// Close reports the killed run's network as something it removed (CI saw
// exactly that: "the test node left this behind: network link removed:
// athenz0").
func TestAcquireHostAfterKilledRun(t *testing.T) {
	if err := CheckNodeHost(); err != nil {
		t.Fatalf("%v (the test node's own tests run as root on Linux, as make test does)", err)
	}
	ctx := context.Background()
	killed, err := AcquireHost(ctx, t.TempDir(), 15*time.Minute, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	// The kill: the process dies holding the lock; the kernel releases
	// it, nothing else happens.
	_ = syscall.Flock(int(killed.lock.Fd()), syscall.LOCK_UN)
	killed.lock.Close()
	if out, err := exec.Command("ip", "link", "show", BridgeName).CombinedOutput(); err != nil {
		t.Fatalf("the killed run's bridge is not there to clean: %v: %s", err, out)
	}

	next, err := AcquireHost(ctx, t.TempDir(), time.Minute, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	if err := next.Close(ctx); err != nil {
		t.Fatalf("the run after a killed one: %v", err)
	}
	if out, err := exec.Command("ip", "link", "show", BridgeName).CombinedOutput(); err == nil {
		t.Errorf("%s is still there after Close: %s", BridgeName, out)
	}
}
