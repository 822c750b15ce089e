package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

// TestRun: the commands and flags as kubectl passes them (flags before or
// after the Pod), usage mistakes exit 2, and a kubeconfig that does not
// load is a failure that says so.
func TestRun(t *testing.T) {
	var gotKubeconfig, gotContext string
	empty := func(kubeconfig, kubeContext string) (client.Client, string, error) {
		gotKubeconfig, gotContext = kubeconfig, kubeContext
		return fake.NewClientBuilder().Build(), "team", nil
	}
	tests := []struct {
		name    string
		args    []string
		want    int
		stdout  string
		stderr  string
		newClnt clientFunc
	}{
		{name: "no command", args: nil, want: 2, stderr: "usage: kubectl athenz"},
		{name: "unknown command", args: []string{"restart"}, want: 2, stderr: "usage: kubectl athenz"},
		{name: "status", args: []string{"status", "--kubeconfig", "/k", "--context", "c"}, want: 0, stdout: "NAMESPACE"},
		{name: "why with flags after the Pod", args: []string{"why", "pod/web", "-n", "shop"}, want: 1, stderr: `reading pod shop/web`},
		{name: "why of a deployment", args: []string{"why", "deployment/web"}, want: 2, stderr: "want pod/NAME"},
		{name: "why of two Pods", args: []string{"why", "pod/a", "pod/b"}, want: 2},
		{name: "no kubeconfig", args: []string{"status"}, want: 1, stderr: "no kubeconfig",
			newClnt: func(string, string) (client.Client, string, error) { return nil, "", errors.New("no kubeconfig") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nc := tt.newClnt
			if nc == nil {
				nc = empty
			}
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tt.args, &stdout, &stderr, nc)
			if code != tt.want || !strings.Contains(stdout.String(), tt.stdout) || !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("run(%q) = %d, stdout %q, stderr %q; want %d, %q, %q", tt.args, code, stdout.String(), stderr.String(), tt.want, tt.stdout, tt.stderr)
			}
			if tt.name == "status" && (gotKubeconfig != "/k" || gotContext != "c") {
				t.Errorf("--kubeconfig and --context reached the client as %q, %q", gotKubeconfig, gotContext)
			}
		})
	}
}
