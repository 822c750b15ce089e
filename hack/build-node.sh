#!/usr/bin/env bash
# Builds the test node from source, once per set of versions, into a cache
# directory outside the repository, and prints that directory:
#
#   kubelet, kube-scheduler, kube-proxy, kubectl   k8s.io/kubernetes (as hack/build-control-plane.sh)
#   containerd, containerd-shim-runc-v2, ctr       github.com/containerd/containerd/v2 (static, no cgo)
#   runc                                           github.com/opencontainers/runc (cgo: libseccomp)
#   crictl                                         sigs.k8s.io/cri-tools (debugging, docs/development.md)
#   cni/bridge, cni/host-local, cni/loopback       github.com/containernetworking/plugins
#
# Everything comes from the Go module proxy; the Debian packages it needs
# (libseccomp-dev to build runc, nftables for kube-proxy's nft) are
# installed when missing. test/framework's Node runs these binaries; see
# docs/development.md, "The test node".
#
# Environment:
#   ATHENZ_INJECTOR_CACHE  cache root (default: ${XDG_CACHE_HOME:-$HOME/.cache}/athenz-injector)
#   KUBE_VERSION CONTAINERD_VERSION RUNC_VERSION CNI_PLUGINS_VERSION CRICTL_VERSION
set -o errexit -o nounset -o pipefail

KUBE_VERSION=${KUBE_VERSION:-v1.37.2}
CONTAINERD_VERSION=${CONTAINERD_VERSION:-v2.3.7}
RUNC_VERSION=${RUNC_VERSION:-v1.5.3}
CNI_PLUGINS_VERSION=${CNI_PLUGINS_VERSION:-v1.9.0}
CRICTL_VERSION=${CRICTL_VERSION:-v1.37.0}
CACHE_ROOT=${ATHENZ_INJECTOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/athenz-injector}
OUT="$CACHE_ROOT/node-kube-${KUBE_VERSION}-containerd-${CONTAINERD_VERSION}-runc-${RUNC_VERSION}-cni-${CNI_PLUGINS_VERSION}-crictl-${CRICTL_VERSION}"

log() { echo "build-node: $*" >&2; }
# shellcheck source=lib/kube-tools.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/kube-tools.sh"

# Runtime needs, checked on every call (a cached build on a new machine).
apt_ensure 'command -v nft' nftables

if [[ -x "$OUT/kubelet" && -x "$OUT/runc" && -x "$OUT/containerd" && -x "$OUT/cni/bridge" ]]; then
  echo "$OUT"
  exit 0
fi

mkdir -p "$CACHE_ROOT"
work=$(mktemp -d "$CACHE_ROOT/build-node.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bin/cni"

# gomod NAME: a throwaway module in $work/NAME, so that no component's
# requirements can change another's.
gomod() {
  mkdir -p "$work/$1"
  printf 'module athenz-injector.local/%s\n\ngo 1.26\n' "$1" >"$work/$1/go.mod"
}

log "building kubelet, kube-scheduler, kube-proxy and kubectl ${KUBE_VERSION} (cold: several minutes)"
ldflags=$(kube_tools_module "$work/kube" "$KUBE_VERSION")
(
  cd "$work/kube"
  cmds=(kubelet kube-scheduler kube-proxy kubectl)
  GOFLAGS=-mod=mod go get "${cmds[@]/#/k8s.io/kubernetes/cmd/}" >&2
  CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "$ldflags" -o "$work/bin/" "${cmds[@]/#/k8s.io/kubernetes/cmd/}"
)

log "building containerd ${CONTAINERD_VERSION}"
gomod containerd
(
  cd "$work/containerd"
  m=github.com/containerd/containerd/v2
  GOFLAGS=-mod=mod go get "$m@${CONTAINERD_VERSION}" >&2
  CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath \
    -ldflags "-s -w -X $m/version.Version=${CONTAINERD_VERSION}" \
    -o "$work/bin/" "$m/cmd/containerd" "$m/cmd/containerd-shim-runc-v2" "$m/cmd/ctr"
)

log "building runc ${RUNC_VERSION} (cgo, libseccomp)"
apt_ensure 'test -f /usr/include/seccomp.h' libseccomp-dev pkg-config
gomod runc
(
  cd "$work/runc"
  GOFLAGS=-mod=mod go get "github.com/opencontainers/runc@${RUNC_VERSION}" >&2
  CGO_ENABLED=1 GOFLAGS=-mod=mod go build -trimpath -tags "seccomp urfave_cli_no_docs" \
    -ldflags "-s -w -X main.version=${RUNC_VERSION#v}" -o "$work/bin/runc" github.com/opencontainers/runc
)

log "building the CNI plugins ${CNI_PLUGINS_VERSION} (bridge, host-local, loopback)"
gomod cni
(
  cd "$work/cni"
  m=github.com/containernetworking/plugins
  GOFLAGS=-mod=mod go get "$m@${CNI_PLUGINS_VERSION}" >&2
  CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "$work/bin/cni/" \
    "$m/plugins/main/bridge" "$m/plugins/ipam/host-local" "$m/plugins/main/loopback"
)

log "building crictl ${CRICTL_VERSION}"
gomod crictl
(
  cd "$work/crictl"
  m=sigs.k8s.io/cri-tools
  GOFLAGS=-mod=mod go get "$m@${CRICTL_VERSION}" >&2
  CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w -X $m/pkg/version.Version=${CRICTL_VERSION}" \
    -o "$work/bin/crictl" "$m/cmd/crictl"
)

# Publish atomically so that a half-built cache is never used.
rm -rf "$OUT.tmp"
mv "$work/bin" "$OUT.tmp"
rm -rf "$OUT"
mv "$OUT.tmp" "$OUT"
log "done: $OUT"
echo "$OUT"
