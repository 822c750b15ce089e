#!/usr/bin/env bash
# Draws docs/images/dashboard.png: the chart's Grafana dashboard with each
# panel's queries evaluated over metrics scraped from a real run of the
# end-to-end suite on the test node (test/e2e TestDashboardMetrics, with
# the suite's other tests for traffic), drawn by test/dashboard and
# screenshot with headless Chromium (Debian's chromium package). No
# Grafana runs here: see docs/operations.md.
set -o errexit -o nounset -o pipefail
cd "$(dirname "$0")/.."

scrapes=$(mktemp --suffix=.json)
svg=$(mktemp --suffix=.svg)
profile=$(mktemp -d)
trap 'rm -rf "$scrapes" "$svg" "$profile"' EXIT

KUBEBUILDER_ASSETS="$(hack/build-control-plane.sh)" ATHENZ_NODE_ASSETS="$(hack/build-node.sh)" HELM="$(hack/build-helm.sh)" \
  ATHENZ_E2E_METRICS_OUT="$scrapes" go test -count=1 -v -run "${E2E_RUN:-TestDashboardMetrics|TestRotation|TestHostNetworkPair|TestShutdownTokenNeverMode|TestKubectlAthenz}" ./test/e2e >&2
go run ./test/dashboard -scrapes "$scrapes" -out "$svg"
height=$(grep -o 'height="[0-9]*"' "$svg" | head -1 | tr -dc 0-9)
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --user-data-dir="$profile" --hide-scrollbars \
  --window-size="1440,$height" --screenshot="$PWD/docs/images/dashboard.png" "file://$svg" >&2
echo "wrote docs/images/dashboard.png" >&2
