// Package version holds the build version, set by the Makefile's -ldflags.
package version

// Version is the release of athenz-injector this binary was built from.
// The Makefile sets it from `git describe`; "dev" for plain `go build`.
var Version = "dev"
