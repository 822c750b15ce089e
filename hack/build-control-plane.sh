#!/usr/bin/env bash
# Builds the test control plane (kube-apiserver, kube-controller-manager, etcd)
# from source through the Go module proxy, once per version, into a cache
# directory outside the repository, and prints that directory (use it as
# KUBEBUILDER_ASSETS).
#
# Why from source: the usual envtest download is not reachable here, and
# k8s.io/kubernetes replaces its staging modules in its own go.mod, so it
# cannot be built with a plain `go install`. A throwaway tools module requires
# k8s.io/kubernetes and pins each staging module to the matching v0.x tag.
# etcd lives in a module of its own so that its requirements cannot downgrade
# k8s.io/kubernetes.
#
# Environment:
#   ATHENZ_INJECTOR_CACHE  cache root (default: ${XDG_CACHE_HOME:-$HOME/.cache}/athenz-injector)
#   KUBE_VERSION           default v1.37.2
#   ETCD_VERSION           default v3.6.16
set -o errexit -o nounset -o pipefail

KUBE_VERSION=${KUBE_VERSION:-v1.37.2}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
CACHE_ROOT=${ATHENZ_INJECTOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/athenz-injector}
OUT="$CACHE_ROOT/control-plane-${KUBE_VERSION}-etcd-${ETCD_VERSION}"

log() { echo "build-control-plane: $*" >&2; }
# shellcheck source=lib/kube-tools.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/kube-tools.sh"

if [[ -x "$OUT/kube-apiserver" && -x "$OUT/kube-controller-manager" && -x "$OUT/etcd" ]]; then
  echo "$OUT"
  exit 0
fi

mkdir -p "$CACHE_ROOT"
work=$(mktemp -d "$CACHE_ROOT/build.XXXXXX")
trap 'rm -rf "$work"' EXIT

# --- kube-apiserver and kube-controller-manager -----------------------------
log "building kube-apiserver and kube-controller-manager ${KUBE_VERSION} (cold: several minutes)"
ldflags=$(kube_tools_module "$work/kube" "$KUBE_VERSION")
(
  cd "$work/kube"
  GOFLAGS=-mod=mod go get "k8s.io/kubernetes/cmd/kube-apiserver@${KUBE_VERSION}" "k8s.io/kubernetes/cmd/kube-controller-manager@${KUBE_VERSION}" >&2
  mkdir -p "$work/bin"
  CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "$ldflags" -o "$work/bin/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager
)

# --- etcd -------------------------------------------------------------------
log "building etcd ${ETCD_VERSION}"
mkdir -p "$work/etcd"
(
  cd "$work/etcd"
  printf 'module athenz-injector.local/etcdtools\n\ngo 1.26\n' >go.mod
  GOFLAGS=-mod=mod go get "go.etcd.io/etcd/server/v3@${ETCD_VERSION}" >&2
  CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "$work/bin/etcd" go.etcd.io/etcd/server/v3
)

# Publish atomically so that a half-built cache is never used.
rm -rf "$OUT.tmp"
mv "$work/bin" "$OUT.tmp"
rm -rf "$OUT"
mv "$OUT.tmp" "$OUT"
log "done: $OUT"
echo "$OUT"
