package webhook

import (
	corev1 "k8s.io/api/core/v1"
)

// qosResources are the resources the kubelet's QoS class looks at.
var qosResources = []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory}

// isGuaranteed reports whether the Pod, as sent, is of the Guaranteed QoS
// class (the kubelet's rule): every container, init containers included,
// has CPU and memory limits, and its requests equal them (a request left
// out defaults to the limit). A Pod with Pod-level resources takes its
// class from those, which the sidecar does not change, so it is not
// counted here.
func isGuaranteed(pod *corev1.Pod) bool {
	if pod.Spec.Resources != nil {
		return false
	}
	n := 0
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range cs {
			r := &cs[i].Resources
			for _, name := range qosResources {
				lim, ok := r.Limits[name]
				if !ok || lim.IsZero() {
					return false
				}
				if req, ok := r.Requests[name]; ok && req.Cmp(lim) != 0 {
					return false
				}
			}
			n++
		}
	}
	return n > 0
}

// guaranteedResources makes the sidecar's requests equal its limits for CPU
// and memory, so that a Guaranteed Pod stays Guaranteed (and keeps the CPU
// manager's pinning of its app): each gets its limit, or its request where
// there is no limit. Other resources are left as they are. r is not
// modified (it may be shared with the profile in the cache).
func guaranteedResources(r corev1.ResourceRequirements) corev1.ResourceRequirements {
	out := *r.DeepCopy()
	for _, name := range qosResources {
		q, ok := r.Limits[name]
		if !ok {
			if q, ok = r.Requests[name]; !ok {
				q = defaultResources().Requests[name]
			}
		}
		out.Requests = withQuantity(out.Requests, name, q)
		out.Limits = withQuantity(out.Limits, name, q)
	}
	return out
}
