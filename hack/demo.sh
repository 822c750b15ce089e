#!/usr/bin/env bash
# `make demo`: the whole product on this machine, told step by step. It
# builds (once, cached outside the repository) kube-apiserver, etcd,
# kube-controller-manager and Helm from source, then runs test/demo: a local
# control plane, the chart installed with Helm, the injector and the fake
# ZTS; a Deployment is annotated with athenz.io/inject=true, its new Pod is
# injected, the demo runs the Pod's sidecar container as a local process and
# curls it. Everything listens on 127.0.0.1 and is removed at the end, also
# after Ctrl-C. Needs only Go, git and make (curl, if present, is used for
# the last step). docs/demo.md explains each step.
#
# Arguments go to the demo: --keep leaves everything running, with a
# kubeconfig to look around, until Ctrl-C.
set -o errexit -o nounset -o pipefail
cd "$(dirname "$0")/.."

bold() { if [[ -t 1 ]]; then printf '\033[1m%s\033[0m\n' "$*"; else printf '%s\n' "$*"; fi; }

work=$(mktemp -d "${TMPDIR:-/tmp}/athenz-injector-demo-bin.XXXXXX")
build=""
cleanup() {
  if [[ -n "$build" ]]; then kill "$build" 2>/dev/null || true; wait "$build" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
# Without this, a Ctrl-C while bash waits for the background build would be
# ignored (background jobs of a script ignore SIGINT, and bash waits for them).
in_demo=""
trap '[[ -n "$in_demo" ]] || echo "   interrupted: stopped the builds" >&2; exit 130' INT TERM HUP

bold "== 0. Tools: kube-apiserver, etcd, kube-controller-manager v1.37.2, Helm, and as root the node"
echo "   Built from source through the Go module proxy into ~/.cache/athenz-injector, once: the first run takes"
echo "   about 15 minutes on 2 cores (the control plane about 7, Helm 1, the node 6); later runs start at once."
echo "   Meanwhile: go build ./test/demo ./cmd/injector ./cmd/sidecar."
# The module's own binaries compile while the tools build: on a cold
# machine the tools' downloads and single-threaded links leave cores idle.
go build -o "$work/" ./test/demo ./cmd/injector ./cmd/sidecar >"$work/build.log" 2>&1 &
build=$!

# The scripts report their progress on stderr; the Go tool's own lines
# ("go: downloading ...", hundreds on a cold run) are left out.
tool() { "$1" 2> >(grep --line-buffered -v '^go: ' >&2); }
KUBEBUILDER_ASSETS=$(tool hack/build-control-plane.sh)
HELM=$(tool hack/build-helm.sh)
export KUBEBUILDER_ASSETS HELM
echo "   ok: control plane in $KUBEBUILDER_ASSETS, helm at $HELM"
# A real node needs Linux and root (test/framework.CheckNodeHost says why
# not, and the demo then plays the kubelet).
if [[ $(uname -s) == Linux && $(id -u) == 0 ]]; then
  ATHENZ_NODE_ASSETS=$(tool hack/build-node.sh)
  export ATHENZ_NODE_ASSETS
  echo "   ok: node (kubelet, kube-scheduler, kube-proxy, containerd, runc, CNI plugins) in $ATHENZ_NODE_ASSETS"
fi

if ! wait "$build"; then
  build=""
  echo "go build failed:" >&2
  cat "$work/build.log" >&2
  exit 1
fi
build=""
echo "   ok: demo, injector and sidecar built"

in_demo=1 # from here on the demo reports an interrupt itself
"$work/demo" --bin-dir="$work" "$@"
