package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/athenz-injector/athenz-injector/pkg/sidecar"
)

// usage is what -h and a bad flag print.
const usage = `Usage of sidecar (settings come from ATHENZ_* variables; docs/sidecar-api.md):
  -dev
    	run with an in-process fake ZTS and a generated key, to try the API without Athenz
    	(a build with the "dev" tag: make build-sidecar-dev)
  -mode string
    	serve: serve the token API until SIGTERM; init: get the identity and the
    	prefetched tokens once, for an init container (default "serve")
`

// flags are the sidecar's command-line flags.
type flags struct {
	dev  bool
	mode string
	rest []string // arguments after the flags
}

// errHelp is -h or --help.
var errHelp = errors.New("help requested")

// parseFlags parses -dev and -mode as the flag package would (one or two
// dashes, -mode=X or -mode X, -dev=false, "--" ends the flags), without
// the flag package: 30 KB of the sidecar's binary for two flags
// (docs/design/2026-12-02-sidecar-footprint.md).
func parseFlags(args []string) (flags, error) {
	f := flags{mode: sidecar.ModeServe}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			f.rest = args[i+1:]
			return f, nil
		}
		if len(a) < 2 || a[0] != '-' {
			f.rest = args[i:]
			return f, nil
		}
		name, value, hasValue := strings.Cut(strings.TrimPrefix(a[1:], "-"), "=")
		switch name {
		case "dev":
			f.dev = true
			if hasValue {
				v, err := strconv.ParseBool(value)
				if err != nil {
					return f, fmt.Errorf("invalid boolean value %q for -dev: %v", value, err)
				}
				f.dev = v
			}
		case "mode":
			if !hasValue {
				if i+1 == len(args) {
					return f, errors.New("flag needs an argument: -mode")
				}
				i++
				value = args[i]
			}
			f.mode = value
		case "h", "help":
			return f, errHelp
		default:
			return f, fmt.Errorf("flag provided but not defined: -%s", name)
		}
	}
	return f, nil
}
