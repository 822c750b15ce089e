// Package v1alpha1 holds the athenz.io/v1alpha1 API: SidecarProfile, which
// tells the injector how to wire the Athenz sidecar into a Pod.
//
// The package imports nothing from pkg/: the checks that need the Athenz name
// rules (templates, prefetch targets) run in the injector, which reports them
// in the profile's Ready condition.
//
// +kubebuilder:object:generate=true
// +groupName=athenz.io
package v1alpha1
