#!/usr/bin/env bash
# Runs the Go benchmarks and the load harness, and rewrites their sections of
# docs/performance.md. Every figure is a ratio against a baseline measured in
# the same run, or an absolute figure next to its target.
set -o errexit -o nounset -o pipefail
cd "$(dirname "$0")/.."

report=docs/performance.md
make --no-print-directory build-sidecar build-floor >/dev/null

echo "== load harness (test/load/loadgen)" >&2
go run ./test/load/loadgen -sidecar bin/sidecar -floor bin/floor -report "$report"

echo "== proxy with TLS origination against a direct client (test/load/tlsorigin)" >&2
go run ./test/load/tlsorigin -sidecar bin/sidecar -report "$report"

echo "== fleet simulation, 1,000 Pods (test/load/fleet)" >&2
go run ./test/load/fleet -pods 1000 -report "$report"
if [[ ${BENCH_FLEET_10K:-} == 1 ]]; then
  echo "== fleet simulation, 10,000 Pods (about 10 minutes)" >&2
  go run ./test/load/fleet -pods 10000 -report "$report"
else
  echo "   10,000 Pods skipped (BENCH_FLEET_10K=1 runs it); docs/performance.md keeps the last figures" >&2
fi

echo "== admission harness (test/load/admission)" >&2
KUBEBUILDER_ASSETS="$(hack/build-control-plane.sh)" go run ./test/load/admission -report "$report"

echo "== injector memory with the provider on (test/load/podcache)" >&2
KUBEBUILDER_ASSETS="$(hack/build-control-plane.sh)" go run ./test/load/podcache -pods 1000,10000 -report "$report"

echo "== Pod start on the test node (test/load/podstart)" >&2
if [[ $(uname -s) == Linux && $(id -u) == 0 ]]; then
  KUBEBUILDER_ASSETS="$(hack/build-control-plane.sh)" ATHENZ_NODE_ASSETS="$(hack/build-node.sh)" HELM="$(hack/build-helm.sh)" \
    go run ./test/load/podstart -pods 20 -report "$report"
else
  echo "   skipped: the test node needs root on Linux; docs/performance.md keeps the last figures" >&2
fi

echo "== Go benchmarks" >&2
out=$(go test -run '^$' -bench . -benchmem -count 1 ./pkg/... 2>&1 | grep -E '^(Benchmark|goos|goarch|cpu|pkg)' || true)
echo "$out"
section=$(printf '<!-- gobench:begin -->\nRun of %s, `go test -run ^$ -bench . -benchmem ./pkg/...`:\n\n```\n%s\n```\n<!-- gobench:end -->' "$(date -u +%F)" "$out")
replace_section() {
  # Replace the gobench section in place with awk (no extra tools needed).
  awk -v section="$section" '
    /<!-- gobench:begin -->/ { print section; skip = 1; next }
    /<!-- gobench:end -->/   { skip = 0; next }
    !skip { print }
  ' "$report" >"$report.tmp" && mv "$report.tmp" "$report"
}
if grep -q '<!-- gobench:begin -->' "$report"; then
  replace_section
else
  printf '\n%s\n' "$section" >>"$report"
fi
echo "wrote $report" >&2
