// Command kubectl-athenz is the kubectl plugin of athenz-injector
// (`kubectl athenz ...` once it is on the PATH): it reads the API server
// only, with kubectl's kubeconfig.
//
//	kubectl athenz status [-n NS | -A]   Pods by sidecar image, profile and
//	                                     revision; outdated and unhealthy ones
//	kubectl athenz why pod/NAME [-n NS]  why a Pod was or was not injected
//	kubectl athenz check [-n NS]         dry-run an opted-in Pod: is it injected?
//
// See docs/operations.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, newClient)
	stop()
	os.Exit(code)
}
