// Package e2e is the end-to-end test of the product, on real parts: a
// kube-apiserver, etcd and kube-controller-manager built from source, the
// chart installed with Helm, the injector and sidecar binaries of this
// module as processes, and the fake ZTS. An annotated Deployment rolls out
// an injected Pod whose sidecar, run exactly as the Pod specifies it, gets
// the Pod's identity and serves tokens. See test/framework and
// docs/development.md.
//
// It runs in `make test` (no build tag) and needs KUBEBUILDER_ASSETS:
//
//	KUBEBUILDER_ASSETS=$(hack/build-control-plane.sh) go test ./test/e2e -v
package e2e
