package webhook

import (
	"encoding/json"

	corev1 "k8s.io/api/core/v1"

	"github.com/athenz-injector/athenz-injector/api/v1alpha1"
)

// Containers that service meshes add: Istio's and Linkerd's proxies and
// their init containers. They get no identity mount or variables unless a
// Pod names them in athenz.io/inject-containers.
var meshContainers = map[string]bool{
	"istio-proxy": true, "istio-init": true, "istio-validation": true,
	"linkerd-proxy": true, "linkerd-init": true, "linkerd-network-validator": true,
}

// meshProxies are the meshes' proxies. As native sidecars (init containers
// with restartPolicy Always) they carry the traffic of the init containers
// after them; with the meshes' CNI plugins, traffic from before them goes
// nowhere.
var meshProxies = map[string]bool{"istio-proxy": true, "linkerd-proxy": true}

func isNativeMeshProxy(c *corev1.Container) bool {
	return meshProxies[c.Name] && c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
}

// insertIndex is where the sidecar goes among the Pod's init containers:
// First at 0; Last after them all; Auto after the last native mesh proxy,
// else at 0 (before a mesh's iptables init container, which would redirect
// the sidecar's calls to ZTS to a proxy that does not run yet).
func insertIndex(pod *corev1.Pod, placement v1alpha1.SidecarPlacement) int {
	switch placement {
	case v1alpha1.PlacementFirst:
		return 0
	case v1alpha1.PlacementLast:
		return len(pod.Spec.InitContainers)
	}
	at := 0
	for i := range pod.Spec.InitContainers {
		if isNativeMeshProxy(&pod.Spec.InitContainers[i]) {
			at = i + 1
		}
	}
	return at
}

// Reinvoke is the answer to a Pod that was injected already and comes back
// (webhook reinvocation): a mesh's webhook that ran after the injector may
// have put its native proxy after the sidecar, where the sidecar would wait
// for a proxy that waits for it. With placement Auto the sidecar is moved
// after the proxy: a "remove" of the container the injector added and an
// "add" of it after the proxy (JSON patch's "move", which controller-runtime
// cannot send). Anything else gets no operations.
func Reinvoke(pod *corev1.Pod) []PatchOp {
	raw, ok := pod.Annotations[AnnotationStatus]
	if !ok {
		return nil
	}
	var st Status
	if json.Unmarshal([]byte(raw), &st) != nil || !st.NativeSidecar || st.Placement != v1alpha1.PlacementAuto {
		return nil
	}
	from := -1
	for i, c := range pod.Spec.InitContainers {
		if c.Name == SidecarName {
			from = i
		}
	}
	if from < 0 {
		return nil
	}
	to := insertIndex(pod, v1alpha1.PlacementAuto)
	if to <= from {
		return nil
	}
	// After removing the sidecar at from, the proxy at to-1 is at to-2;
	// the sidecar goes right after it.
	return []PatchOp{
		{Op: "remove", Path: pointer("spec", "initContainers", from)},
		{Op: "add", Path: pointer("spec", "initContainers", to-1), Value: pod.Spec.InitContainers[from]},
	}
}
