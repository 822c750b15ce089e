// Command testapp is the app of the end-to-end test's and the demo's
// Pods: a multi-call binary, as busybox is, so that a distroless-style
// image has something to `kubectl exec`:
//
//	testapp serve         the container's process: answers GET /healthz on
//	                      :8080 until SIGTERM; see serve's flags
//	curl [flags] URL      a small curl for the flags the docs use: -s -S -f
//	                      -d -H -X -x -o -w '%{http_code}' --cacert --cert
//	                      --key (the image links /usr/bin/curl to it)
//	cat FILE...           prints files (the image links /bin/cat to it)
//
// It links only the standard library.
package main

import (
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	name := filepath.Base(os.Args[0])
	args := os.Args[1:]
	if name == "testapp" && len(args) > 0 {
		name, args = args[0], args[1:]
	}
	var err error
	switch name {
	case "testapp", "serve":
		err = serve(args)
	case "curl":
		os.Exit(curl(args, os.Stdout, os.Stderr))
	case "cat":
		err = cat(args)
	default:
		err = fmt.Errorf("unknown command %q: want serve, curl or cat", name)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "testapp:", err)
		os.Exit(1)
	}
}

func cat(files []string) error {
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if _, err := os.Stdout.Write(b); err != nil {
			return err
		}
	}
	return nil
}
