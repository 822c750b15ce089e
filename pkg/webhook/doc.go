// Package webhook is the injector: the admission handlers for Pods
// (/mutate-pods) and workloads (/mutate-workloads), the pure functions that
// turn a Pod and a SidecarProfile into JSON patch operations, and the
// reconciler that reports whether a SidecarProfile is usable.
//
// The mutation is split the way the admission handler uses it:
//
//   - ShouldInject decides from the Pod, its namespace's labels and the
//     injector's settings whether the Pod opted in;
//   - BuildPatch validates the Pod's athenz.io/* annotations and the
//     profile, resolving every value the sidecar needs (newPlan), then
//     turns the Pod and that plan into explicit "add" operations (ops).
//
// Mutate chains the two. None of them reads a clock, the environment, a
// file or the API server, so tests and benchmarks call them directly.
//
// The patch only adds: it never removes or rewrites a field the injector
// did not add, and it is applied by the API server to the Pod as it was
// sent, so fields that this package's k8s.io/api version does not know
// survive. A Pod that carries athenz.io/status has been injected already and
// gets no operations, which makes webhook reinvocation and re-admission
// harmless.
package webhook
