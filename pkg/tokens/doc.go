// Package tokens is the core shared by the sidecar and the injector: Athenz
// name rules, the naming conventions that map a Pod's namespace and service
// account to an Athenz domain and service, the ZTS client for role and access
// tokens, the token cache, and the N-token signer.
//
// It imports nothing from Kubernetes: the sidecar links it, and the sidecar's
// binary size and memory are product features.
package tokens
