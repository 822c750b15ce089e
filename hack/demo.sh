#!/usr/bin/env bash
# `make demo`: runs the sidecar with an in-process fake ZTS (`sidecar --dev`)
# on 127.0.0.1 and calls its token API the way an app in the Pod would.
#
# Environment: DEMO_PORT (token API, default 8081), DEMO_HEALTH_PORT (8082).
set -o errexit -o nounset -o pipefail
cd "$(dirname "$0")/.."

port=${DEMO_PORT:-8081}
health=${DEMO_HEALTH_PORT:-8082}
api="http://127.0.0.1:$port"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; echo; }

step "building bin/sidecar"
make --no-print-directory build-sidecar >/dev/null
ls -lh bin/sidecar | awk '{print "bin/sidecar: " $5}'

step "starting the sidecar in dev mode (fake ZTS in process; tokens are worthless elsewhere)"
log=$(mktemp)
ATHENZ_LISTEN="127.0.0.1:$port" ATHENZ_HEALTH_LISTEN="127.0.0.1:$health" \
  ATHENZ_PREFETCH="sports:role.reader" bin/sidecar --dev >"$log" 2>&1 &
pid=$!
cleanup() { kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -f "$log"; }
trap cleanup EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$health/readyz" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { echo "sidecar exited:"; cat "$log"; exit 1; }
  sleep 0.1
done
show curl -fsS "http://127.0.0.1:$health/readyz"

step "an N-token for the Pod's own identity (dev.app)"
show curl -fsS "$api/ntoken"

step "the Pod's identity certificate (also in the identity directory for the app's own mTLS)"
printf '$ curl -fsS %s/svccert | head -3\n' "$api"
curl -fsS "$api/svccert" | head -3; echo

step "a role token (GET query form, for curl)"
show curl -fsS "$api/roletoken?domain=sports&role=reader"

step "an access token asked for 600 s (the seed's POST body)"
show curl -fsS -H 'Content-Type: application/json' \
  -d '{"domain":"sports","role":"reader","expiry":600}' "$api/access-token"

step "a mistake gets a 4xx that names the field"
printf '$ curl -sS %s\n' "'$api/roletoken?domain=sports&role=bad!role'"
curl -sS "$api/roletoken?domain=sports&role=bad!role"; echo

step "the sidecar as an HTTP proxy adding Athenz-Role-Auth (upstream: the sidecar's own health port, which ignores it)"
show curl -fsS -x "$api" -H 'Athenz-Domain: sports' -H 'Athenz-Role: reader' "http://127.0.0.1:$health/healthz"

step "shutting down (SIGTERM)"
kill -TERM "$pid"; wait "$pid" && echo "sidecar exited 0"
trap - EXIT; rm -f "$log"
