// Package sidecar is the Athenz sidecar that runs next to an app in a Pod.
//
// It serves the token API of the athenz-client-sidecar (GET /ntoken, POST
// /access-token, /accesstoken and /roletoken, their GET query forms) from a
// cache that pkg/tokens keeps warm, and it is an HTTP forward proxy that
// adds Athenz-Principal-Auth or Athenz-Role-Auth to the app's requests. The
// token API listens on loopback only; health and readiness have a listener
// of their own. See docs/sidecar-api.md.
//
// Configuration comes from the environment (ConfigFromEnv); Run serves until
// its context ends and then shuts down gracefully. The sidecar's Athenz
// identity (how it authenticates to ZTS, whether it can sign N-tokens) is an
// Identity: files mode and key-file mode live here; other modes plug in
// through NewIdentity.
//
// The package imports nothing from Kubernetes and does not link the Athenz
// zmssvctoken package: the sidecar's size and memory are product features.
package sidecar
