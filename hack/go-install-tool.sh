#!/usr/bin/env bash
# Installs a Go tool at a pinned version into ./bin under a versioned name
# (bin/<name>-<version>) and points the symlink bin/<name> at it, so that a
# version bump in the Makefile rebuilds the tool and nothing else does.
#
# Usage: hack/go-install-tool.sh <name> <package> <version>
#   e.g. hack/go-install-tool.sh controller-gen sigs.k8s.io/controller-tools/cmd/controller-gen v0.23.0
# Prints the path of the symlink.
#
# Environment:
#   LOCALBIN  where tools go (default: <repo>/bin)
set -o errexit -o nounset -o pipefail

if [[ $# -ne 3 ]]; then
  echo "usage: $0 <name> <package> <version>" >&2
  exit 2
fi
name=$1 pkg=$2 version=$3
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOCALBIN=${LOCALBIN:-$root/bin}
target="$LOCALBIN/$name-$version"

if [[ ! -x "$target" ]]; then
  mkdir -p "$LOCALBIN"
  echo "go-install-tool: installing $pkg@$version" >&2
  tmp=$(mktemp -d "$LOCALBIN/.install.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  # GOFLAGS=-mod=mod and no module context: the tool's own go.mod decides its
  # dependencies, not ours.
  (cd "$tmp" && GOBIN="$tmp" GOFLAGS=-mod=mod go install "$pkg@$version")
  # go install names the binary after the last path element, or the one
  # before a major-version suffix (sigs.k8s.io/kustomize/kustomize/v5).
  bin=$(basename "$pkg")
  if [[ $bin =~ ^v[0-9]+$ ]]; then
    bin=$(basename "$(dirname "$pkg")")
  fi
  mv "$tmp/$bin" "$target"
fi
ln -sfn "$(basename "$target")" "$LOCALBIN/$name"
echo "$LOCALBIN/$name"
