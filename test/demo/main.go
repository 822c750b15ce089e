// Command demo is `make demo`: the whole product on this machine, on real
// parts, told step by step. A control plane (kube-apiserver, etcd,
// kube-controller-manager), the chart installed with Helm, the injector as
// a process, the fake ZTS; a Deployment is annotated, its new Pod is
// injected, the demo plays the kubelet for the Pod's sidecar container and
// curls it. Everything listens on 127.0.0.1 and is removed at the end,
// also after Ctrl-C.
//
// hack/demo.sh builds the tools and runs it; by hand:
//
//	KUBEBUILDER_ASSETS=$(hack/build-control-plane.sh) HELM=$(hack/build-helm.sh) go run ./test/demo [--keep] [--bin-dir=DIR]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/athenz-injector/athenz-injector/test/framework"
)

func main() {
	keep := flag.Bool("keep", false, "keep everything running at the end, with a kubeconfig to look around, until Ctrl-C")
	binDir := flag.String("bin-dir", "", "directory with the injector and sidecar binaries (default: build them)")
	flag.Parse()
	ctrl.SetLogger(logr.Discard()) // envtest's; the components log to files

	// SIGHUP (the terminal went away) and SIGPIPE (`make demo | head`)
	// also stop the demo cleanly: with them unhandled it would die and
	// leave kube-apiserver and etcd running.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
	defer stop()
	out := newPrinter(os.Stdout)
	err := run(ctx, out, *keep, *binDir)
	switch {
	case err == nil:
	case ctx.Err() != nil:
		out.line("\ninterrupted; everything was stopped and removed.")
		os.Exit(130)
	default:
		fmt.Fprintf(os.Stderr, "\ndemo failed: %v\n", err)
		if errors.Is(err, framework.ErrNoAssets) {
			fmt.Fprintln(os.Stderr, "run it with `make demo` (hack/demo.sh), which builds the control plane first")
		}
		os.Exit(1)
	}
}
