package webhook

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/athenz-injector/athenz-injector/api/v1alpha1"
)

// plan is everything one Pod's sidecar needs: the profile's config with the
// Pod's annotations applied, and the Pod's Athenz identity.
type plan struct {
	config
	domain  string
	service string
	socket  bool // hostNetwork: the token API is served on a Unix socket only
	fsGroup bool // the Pod sets an fsGroup, which the app containers share
	// initOnly: only the init container that fetches the identity, no
	// sidecar that keeps running. A Pod that runs to completion (a Job's:
	// restartPolicy Never or OnFailure) without native sidecars would
	// never complete with a regular sidecar container next to its app.
	initOnly bool
}

// newPlan validates the Pod's annotations and the profile and resolves the
// Pod's identity. Every user mistake is a *Denial naming the annotation or
// field to fix.
func newPlan(pod *corev1.Pod, profile *v1alpha1.SidecarProfile, s Settings) (*plan, error) {
	if profile == nil {
		return nil, fmt.Errorf("no SidecarProfile given for pod")
	}
	c, err := resolveProfile(profile, s)
	if err != nil {
		return nil, err
	}
	o, err := parseOverrides(pod.Annotations)
	if err != nil {
		return nil, err
	}
	p := &plan{config: c}
	p.fsGroup = pod.Spec.SecurityContext != nil && pod.Spec.SecurityContext.FSGroup != nil

	if o.prefetch != nil {
		p.prefetch = *o.prefetch
	}
	if o.tokenFiles != nil {
		p.tokenFiles = *o.tokenFiles
	}
	if o.image != "" {
		p.image = o.image
	}
	if o.native != nil {
		p.native = *o.native
	}
	setQuantity(&p.resources, corev1.ResourceCPU, o.cpu)
	setQuantity(&p.resources, corev1.ResourceMemory, o.memory)

	p.initOnly = !p.native && pod.Spec.RestartPolicy != "" && pod.Spec.RestartPolicy != corev1.RestartPolicyAlways

	if pod.Spec.ServiceAccountName == "" && p.mode == v1alpha1.IdentityCopperArgos {
		return nil, denyf("the Pod has no spec.serviceAccountName, so there is no service account token to attest it with (copper-argos mode of SidecarProfile %s); the ServiceAccount admission plugin normally sets it", p.profile)
	}
	id, err := PodIdentity(pod, profile)
	if err != nil {
		return nil, err
	}
	p.domain, p.service = id.Domain, id.Service

	if pod.Spec.HostNetwork {
		if p.denyHostNet {
			return nil, denyf("the Pod uses hostNetwork, which SidecarProfile %s refuses (spec.sidecar.hostNetwork: deny): on the host network the sidecar's token API would be open to every process of the node", p.profile)
		}
		p.socket = true
	}
	if err := checkClashes(pod, p); err != nil {
		return nil, err
	}
	return p, nil
}

// setQuantity sets the request of name to q, and its limit too when the
// profile sets one, so that an annotation never leaves request > limit.
func setQuantity(r *corev1.ResourceRequirements, name corev1.ResourceName, q *resource.Quantity) {
	if q == nil {
		return
	}
	r.Requests = withQuantity(r.Requests, name, *q)
	if _, ok := r.Limits[name]; ok {
		r.Limits = withQuantity(r.Limits, name, *q)
	}
}

// withQuantity returns a copy of l with name set, leaving l (which may be
// shared with the profile in the cache) alone.
func withQuantity(l corev1.ResourceList, name corev1.ResourceName, q resource.Quantity) corev1.ResourceList {
	out := make(corev1.ResourceList, len(l)+1)
	for k, v := range l {
		out[k] = v
	}
	out[name] = q
	return out
}
