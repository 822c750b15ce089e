#!/usr/bin/env bash
# Builds Helm from source through the Go module proxy, once per version, into
# a cache directory outside the repository, and prints the path of the helm
# binary.
#
# Why from source: binary downloads are not reachable here. Why a module of
# its own: in our go.mod, `go get helm.sh/helm/v3` would move the k8s.io
# modules to Helm's versions and break the build. A throwaway module that
# requires only Helm builds it with exactly the dependencies Helm asks for.
#
# The version ldflags mirror Helm's own Makefile, so `helm version` reports a
# real version and `helm template`/`helm lint` assume the Kubernetes minor of
# the client-go that Helm is built with (not Helm's fallback of 1.20).
#
# Environment:
#   ATHENZ_INJECTOR_CACHE  cache root (default: ${XDG_CACHE_HOME:-$HOME/.cache}/athenz-injector)
#   HELM_VERSION           default v3.22.0
set -o errexit -o nounset -o pipefail

HELM_VERSION=${HELM_VERSION:-v3.22.0}
CACHE_ROOT=${ATHENZ_INJECTOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/athenz-injector}
OUT="$CACHE_ROOT/helm-${HELM_VERSION}"

log() { echo "build-helm: $*" >&2; }

if [[ -x "$OUT/helm" ]]; then
  echo "$OUT/helm"
  exit 0
fi

mkdir -p "$CACHE_ROOT"
work=$(mktemp -d "$CACHE_ROOT/build-helm.XXXXXX")
trap 'rm -rf "$work"' EXIT

log "building helm ${HELM_VERSION} (cold: a few minutes)"
mkdir -p "$work/mod" "$work/bin"
(
  cd "$work/mod"
  printf 'module athenz-injector.local/helmtools\n\ngo 1.26\n' >go.mod
  GOFLAGS=-mod=mod go get "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}" >&2
  k8s=$(GOFLAGS=-mod=mod go list -m -f '{{.Version}}' k8s.io/client-go) # v0.35.1
  k8s_minor=${k8s#v0.}; k8s_minor=${k8s_minor%%.*}
  ldflags="-s -w"
  ldflags+=" -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}"
  ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    ldflags+=" -X ${pkg}.k8sVersionMajor=1 -X ${pkg}.k8sVersionMinor=${k8s_minor}"
  done
  CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "$ldflags" -o "$work/bin/helm" helm.sh/helm/v3/cmd/helm
)
"$work/bin/helm" version --short >&2

# Publish atomically: a rename within the cache's file system, so that a
# half-written binary is never used, and two builds running at once (two
# test packages on a cold cache) both end with a whole binary.
mkdir -p "$OUT"
mv -f "$work/bin/helm" "$OUT/helm"
log "done: $OUT/helm"
echo "$OUT/helm"
