// Command sidecar serves Athenz tokens to the app in its Pod; see
// docs/sidecar-api.md. Settings come from ATHENZ_* environment variables.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/go-logr/logr"

	"github.com/athenz-injector/athenz-injector/pkg/sidecar"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	var code int
	if len(os.Args) >= 2 && os.Args[1] == "probe" {
		code = probe(ctx, os.Args[2:], os.Environ(), os.Stdout)
	} else {
		// Before anything allocates much: the runtime's soft memory limit
		// from the container's (docs/design/2026-12-02-sidecar-footprint.md).
		memLimit, _ := setMemoryLimit(os.Environ(), "/sys/fs/cgroup", "/proc/self/cgroup")
		code = run(ctx, os.Args[1:], os.Environ(), os.Stderr, func(ctx context.Context, cfg sidecar.Config, log logr.Logger) error {
			log.Info("Go runtime memory limit", "gomemlimit", memLimit)
			return sidecar.Run(ctx, cfg, log)
		})
	}
	stop()
	os.Exit(code)
}

// run parses flags and environment, builds the logger and calls serve; it
// returns the exit code: 0 after a clean shutdown, 1 on failure, 2 for bad flags or settings.
func run(ctx context.Context, args, environ []string, stderr io.Writer, serve func(context.Context, sidecar.Config, logr.Logger) error) int {
	f, err := parseFlags(args)
	if err != nil {
		fmt.Fprintf(stderr, "%v\n%s", err, usage)
		return 2
	}
	cfg, err := sidecar.ConfigFromEnv(environ)
	if len(f.rest) > 0 {
		err = fmt.Errorf("unexpected arguments %q; settings come from ATHENZ_* variables", f.rest)
	} else if err == nil {
		cfg.Dev, cfg.Mode = f.dev, f.mode
		err = cfg.Validate()
	}
	if err != nil {
		fmt.Fprintf(stderr, "sidecar: invalid settings:\n%v\n", err)
		return 2
	}
	log := newLogger(stderr, cfg.LogLevel)
	if err := serve(ctx, cfg, log); err != nil {
		log.Error(err, "sidecar failed")
		return 1
	}
	return 0
}
