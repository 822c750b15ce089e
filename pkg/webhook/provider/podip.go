package provider

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// DefaultPodIPWait is the default of Options.PodIPWait.
const DefaultPodIPWait = 10 * time.Second

// podIPPoll is how often waitPodIP looks at the Pod again.
const podIPPoll = 100 * time.Millisecond

// waitPodIP returns the Pod with its IPs when the confirmation asks about
// an IP and the Pod, running on a node, has none in its status yet. The
// kubelet writes status.podIPs only after the Pod's sandbox and first
// container started, and that first container may be the sidecar (native,
// or the init container of --mode=init) registering right away: the
// callback waits up to PodIPWait for the status, reading the cache (and
// the API server every second), rather than refusing a Pod that is only
// early. ZTS waits up to its read timeout for the answer (30 s by default).
func (h *Handler) waitPodIP(ctx context.Context, pod *corev1.Pod, attrs attributes) *corev1.Pod {
	if len(attrs.list(attrSANIP)) == 0 || len(podAddrs(pod)) > 0 || pod.Spec.NodeName == "" ||
		pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed || h.o.PodIPWait <= 0 {
		return pod
	}
	deadline := time.Now().Add(h.o.PodIPWait)
	h.log.V(1).Info("waiting for the Pod's IP in its status", "pod", pod.Namespace+"/"+pod.Name, "upTo", h.o.PodIPWait)
	for i := 1; time.Now().Before(deadline); i++ {
		select {
		case <-ctx.Done():
			return pod
		case <-time.After(podIPPoll):
		}
		// The cache first; the API server now and then, in case the
		// cache lags.
		fresh := i%10 == 0
		p, err := h.pod(ctx, pod.Namespace, pod.Name, string(pod.UID), fresh)
		if err != nil {
			return pod
		}
		if len(podAddrs(p)) > 0 {
			return p
		}
	}
	return pod
}
