# shellcheck shell=bash
# Sourced by the build scripts. kube_tools_module DIR VERSION writes into DIR
# a throwaway Go module that requires k8s.io/kubernetes VERSION and pins
# every k8s.io staging module to the matching v0.x tag, so that the
# Kubernetes commands can be built with `go build` (k8s.io/kubernetes
# replaces its staging modules in its own go.mod, which a plain
# `go install` refuses). It prints the -ldflags that make `--version` real.

kube_tools_module() {
  local dir=$1 version=$2
  local staging_minor="v0.${version#v1.}"        # v1.37.2 -> v0.37.2
  local major_minor=${version#v}; major_minor=${major_minor%.*}   # 1.37
  mkdir -p "$dir"
  local kube_mod
  kube_mod=$(cd "$dir" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@${version}" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
  {
    echo "module athenz-injector.local/kubetools"
    echo
    echo "go 1.26"
    echo
    echo "require k8s.io/kubernetes ${version}"
    echo
    echo "replace ("
    sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\t\1 => \1 '"${staging_minor}"'#p' "$kube_mod"
    echo ")"
  } >"$dir/go.mod"
  echo "-s -w -X k8s.io/component-base/version.gitVersion=${version} -X k8s.io/component-base/version.gitMajor=${major_minor%%.*} -X k8s.io/component-base/version.gitMinor=${major_minor#*.}"
}

# apt_ensure CHECK PACKAGE...: runs CHECK (a command); when it fails,
# installs the Debian packages (the scripts run as root on a fresh machine;
# elsewhere, say what is missing).
apt_ensure() {
  local check=$1; shift
  if eval "$check" >/dev/null 2>&1; then return 0; fi
  if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
    echo "missing: $* (Debian packages; install them, then run again)" >&2
    return 1
  fi
  echo "installing Debian packages: $*" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >&2 ||
    { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >&2; }
}
