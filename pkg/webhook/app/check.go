package app

import (
	"context"
	"flag"
	"fmt"
	"io"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/athenz-injector/athenz-injector/pkg/inspect"
)

// RBAC of `injector check` is the chart's helm test's own (a Role that
// may create Pods in tests.namespace), not the injector's.

// RunCheck is `injector check`, the chart's `helm test`: in the cluster, it
// creates an opted-in Pod as a server-side dry run and checks that it
// comes back injected (inspect.Check). It returns the exit code.
func RunCheck(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("injector check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := inspect.CheckOptions{Out: stdout}
	fs.StringVar(&o.Namespace, "namespace", "default", "namespace of the dry-run Pod: one the webhook selects and a profile serves")
	fs.StringVar(&o.Image, "image", "", "image of the dry-run Pod's container (never pulled)")
	fs.StringVar(&o.ServiceAccount, "service-account", "default", "service account of the dry-run Pod")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: injector check [--namespace=NS] [--image=IMAGE] [--service-account=SA]")
		return 2
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		fmt.Fprintln(stderr, "injector check: no API server configuration:", err)
		return 1
	}
	scheme, err := NewScheme()
	if err != nil {
		fmt.Fprintln(stderr, "injector check:", err)
		return 1
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err == nil {
		err = inspect.Check(ctx, c, o)
	}
	if err != nil {
		fmt.Fprintln(stderr, "FAIL:", err)
		return 1
	}
	return 0
}
