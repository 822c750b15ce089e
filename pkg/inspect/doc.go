// Package inspect answers a platform team's questions about injection by
// reading the API server only: which Pods run which sidecar, from which
// profile and revision, and which are outdated or unhealthy (Status); why
// one Pod was or was not injected (Why); and whether the installed
// webhook injects a Pod that opts in (Check, the chart's `helm test`).
// cmd/kubectl-athenz (`kubectl athenz status|why|check`) and `injector
// check` print what it finds.
//
// It decides with pkg/webhook's own functions (ShouldInject, Resolver,
// BuildPatch), so its explanation is the injector's rule, not a copy.
package inspect
