// Command demo is `make demo`: the whole product on this machine, on real
// parts, told step by step. A one-node cluster (kube-apiserver, etcd,
// kube-controller-manager, kube-scheduler; containerd, runc, the kubelet,
// kube-proxy), the chart installed with Helm with the injector running in
// the cluster, the fake ZTS; a Deployment is annotated, its new Pod runs
// with the sidecar, and the demo ends with `kubectl exec` into the app.
// Where the machine cannot run a node (CheckNodeHost: not Linux, not
// root), it says why and plays the kubelet for the sidecar container
// instead. Everything is removed at the end, also after Ctrl-C.
//
// hack/demo.sh builds the tools and runs it; by hand:
//
//	KUBEBUILDER_ASSETS=$(hack/build-control-plane.sh) HELM=$(hack/build-helm.sh) ATHENZ_NODE_ASSETS=$(hack/build-node.sh) go run ./test/demo [--keep] [--bin-dir=DIR]
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
	play := flag.Bool("play-kubelet", false, "play the kubelet even where the machine could run a node, as the demo does where it cannot")
	flag.Parse()
	ctrl.SetLogger(logr.Discard()) // envtest's; the components log to files

	// SIGHUP (the terminal went away) and SIGPIPE (`make demo | head`)
	// also stop the demo cleanly: with them unhandled it would die and
	// leave kube-apiserver and etcd running.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
	defer stop()
	out := newPrinter(os.Stdout)
	err := run(ctx, out, options{keep: *keep, binDir: *binDir, playKubelet: *play})
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
