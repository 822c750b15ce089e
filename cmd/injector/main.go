// Command injector is the Athenz sidecar injector: a mutating admission
// webhook for Pods and workloads. See docs/injector.md.
package main

import (
	"flag"
	"fmt"
	"os"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/athenz-injector/athenz-injector/pkg/version"
	"github.com/athenz-injector/athenz-injector/pkg/webhook/app"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "check" {
		// The chart's helm test: is an opted-in Pod injected?
		os.Exit(app.RunCheck(ctrl.SetupSignalHandler(), os.Args[2:], os.Stdout, os.Stderr))
	}
	// --kubeconfig is controller-runtime's, registered on flag.CommandLine.
	opts := app.Options{Namespace: os.Getenv("POD_NAMESPACE"), Version: version.Version, ShutdownDrain: app.DefaultShutdownDrain}
	opts.BindFlags(flag.CommandLine)
	zopts := zap.Options{}
	zopts.BindFlags(flag.CommandLine)
	flag.Parse()

	log := zap.New(zap.UseFlagOptions(&zopts))
	ctrl.SetLogger(log)
	if err := opts.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "injector:", err)
		os.Exit(2)
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		log.Error(err, "cannot load the API server configuration (--kubeconfig, $KUBECONFIG or in-cluster)")
		os.Exit(1)
	}
	opts.Config, opts.Logger = cfg, log
	if err := app.Run(ctrl.SetupSignalHandler(), opts); err != nil {
		log.Error(err, "injector stopped")
		os.Exit(1)
	}
}
