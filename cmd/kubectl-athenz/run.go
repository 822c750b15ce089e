package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/athenz-injector/athenz-injector/api/v1alpha1"
	"github.com/athenz-injector/athenz-injector/pkg/inspect"
)

// defaultInjectorNamespace is the chart's and config/'s.
const defaultInjectorNamespace = "athenz-injector"

const usage = `usage: kubectl athenz COMMAND [flags]

commands:
  status            list injected Pods by sidecar image, profile and revision, flag outdated and unhealthy ones
  why pod/NAME      explain why a Pod was or was not injected
  check             create an opted-in Pod as a server-side dry run and check that it is injected

flags:
`

// clientFunc returns a client for a kubeconfig and context, and the
// kubeconfig's namespace.
type clientFunc func(kubeconfig, context string) (client.Client, string, error)

// run is the plugin: it returns the exit code (0 fine, 1 a finding or a
// failure, 2 a usage mistake).
func run(ctx context.Context, args []string, stdout, stderr io.Writer, newClient clientFunc) int {
	fs := flag.NewFlagSet("kubectl athenz", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	var namespace, kubeconfig, kubeContext, injectorNS string
	var all bool
	fs.StringVar(&namespace, "namespace", "", "namespace (default: the kubeconfig's)")
	fs.StringVar(&namespace, "n", "", "namespace (short)")
	fs.BoolVar(&all, "all-namespaces", false, "status: every namespace")
	fs.BoolVar(&all, "A", false, "status: every namespace (short)")
	fs.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	fs.StringVar(&kubeContext, "context", "", "kubeconfig context")
	fs.StringVar(&injectorNS, "injector-namespace", defaultInjectorNamespace, "the injector's namespace, when its webhook calls a URL rather than a Service")
	if len(args) == 0 {
		fs.Usage()
		return 2
	}
	cmd, rest := args[0], args[1:]
	// Flags may come before or after the Pod: parse them around it.
	var operands []string
	for {
		if err := fs.Parse(rest); err != nil {
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		operands = append(operands, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	c, defaultNS, err := newClient(kubeconfig, kubeContext)
	if err != nil {
		fmt.Fprintln(stderr, "kubectl athenz:", err)
		return 1
	}
	if namespace == "" {
		namespace = defaultNS
	}
	inj, err := inspect.FindInjector(ctx, c, injectorNS)
	if err != nil {
		fmt.Fprintln(stderr, "kubectl athenz:", err)
		return 1
	}
	switch {
	case cmd == "status" && len(operands) == 0:
		if all {
			namespace = ""
		}
		pods, err := inspect.Status(ctx, c, inspect.StatusOptions{Namespace: namespace, Injector: inj})
		if err == nil {
			err = inspect.WriteStatus(stdout, pods)
		}
		return exit(stderr, err)
	case cmd == "why" && len(operands) == 1:
		name, ok := strings.CutPrefix(operands[0], "pod/")
		if !ok {
			name, ok = strings.CutPrefix(operands[0], "pods/")
		}
		if !ok && strings.Contains(operands[0], "/") {
			fmt.Fprintf(stderr, "kubectl athenz why: %q: want pod/NAME\n", operands[0])
			return 2
		}
		e, err := inspect.Why(ctx, c, inj, namespace, name)
		if err == nil {
			err = e.Write(stdout)
		}
		return exit(stderr, err)
	case cmd == "check" && len(operands) == 0:
		return exit(stderr, inspect.Check(ctx, c, inspect.CheckOptions{Namespace: namespace, Out: stdout}))
	}
	fs.Usage()
	return 2
}

func exit(stderr io.Writer, err error) int {
	if err != nil {
		fmt.Fprintln(stderr, "kubectl athenz:", err)
		return 1
	}
	return 0
}

// newClient loads the kubeconfig as kubectl does.
func newClient(kubeconfig, kubeContext string) (client.Client, string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if kubeconfig != "" {
		rules.ExplicitPath = kubeconfig
	}
	cfg := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: kubeContext})
	rc, err := cfg.ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("loading the kubeconfig: %w", err)
	}
	ns, _, err := cfg.Namespace()
	if err != nil {
		return nil, "", err
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, "", err
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return nil, "", err
	}
	c, err := client.New(rc, client.Options{Scheme: scheme})
	if err != nil {
		return nil, "", errors.Join(errors.New("connecting to the API server"), err)
	}
	return c, ns, nil
}
