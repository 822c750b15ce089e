// Package framework runs the whole product on one machine, on real parts,
// for the end-to-end test (test/e2e) and `make demo` (test/demo):
//
//   - a control plane: kube-apiserver and etcd (controller-runtime envtest)
//     plus kube-controller-manager, so that a Deployment really becomes
//     ReplicaSets and Pods (ControlPlane);
//   - the injector and sidecar binaries built from this module (Build) and
//     run as processes (Process);
//   - the Helm chart installed with a real Helm (Helm);
//   - the fake ZTS of pkg/tokens/ztsfake;
//   - a stand-in for the kubelet that runs one container of a stored Pod as a
//     local process (Kubelet, and ResolveContainer for the pure part): the
//     container's exact command, arguments and environment, downward-API
//     values from the Pod, volumes in local directories, a service account
//     token minted with the TokenRequest API for the projected volume, and
//     its startup probe. The one deviation from a real Pod: listen
//     addresses get free loopback ports, as there is no Pod network.
//
// Scenario strings these parts together in the order of the user's day in
// DESIGN.md: install the chart, deploy an app, annotate it, wait for the
// injected Pod, run its sidecar. All traffic stays on 127.0.0.1.
//
// The binaries of the control plane come from hack/build-control-plane.sh
// (KUBEBUILDER_ASSETS) and Helm from hack/build-helm.sh; both build once
// into a cache outside the repository.
package framework
