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
	// healthTCP: the sidecar opens its health port. Not on the host
	// network unless the Pod names a port: there a port is the node's,
	// and the probes ask the socket instead.
	healthTCP bool
	fsGroup   bool // the Pod sets an fsGroup, which the app containers share
	// initOnly: only the init container that fetches the identity, no
	// sidecar that keeps running: asked for (sidecar.initOnly), or a Pod
	// that runs to completion (a Job's: restartPolicy Never or OnFailure)
	// without native sidecars, which would never complete with a regular
	// sidecar container next to its app.
	initOnly bool
	// targets are the names of the Pod's containers (init and app) that
	// get the identity mount and variables.
	targets map[string]bool
	// insertAt is the index in the Pod's initContainers where the sidecar
	// (or the init container) goes.
	insertAt int
	// guaranteed: the Pod is of the Guaranteed QoS class, and the
	// sidecar's requests equal its limits so that it stays so.
	guaranteed bool
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
	p.applyOverrides(o)
	p.fsGroup = pod.Spec.SecurityContext != nil && pod.Spec.SecurityContext.FSGroup != nil
	if p.apiPort == p.healthPort {
		return nil, denyf("the sidecar's api and health ports are both %d: set different ports with the annotations %s and %s (or the profile's spec.sidecar.ports)",
			p.apiPort, AnnotationAPIPort, AnnotationHealthPort)
	}
	p.initOnly = p.initOnly || (!p.native && pod.Spec.RestartPolicy != "" && pod.Spec.RestartPolicy != corev1.RestartPolicyAlways)

	if pod.Spec.ServiceAccountName == "" && p.mode == v1alpha1.IdentityCopperArgos {
		return nil, denyf("the Pod has no spec.serviceAccountName, so there is no service account token to attest it with (copper-argos mode of SidecarProfile %s); the ServiceAccount admission plugin normally sets it", p.profile)
	}
	id, err := PodIdentity(pod, profile)
	if err != nil {
		return nil, err
	}
	p.domain, p.service = id.Domain, id.Service

	p.healthTCP = true
	if pod.Spec.HostNetwork {
		if p.denyHostNet {
			return nil, denyf("the Pod uses hostNetwork, which SidecarProfile %s refuses (spec.sidecar.hostNetwork: deny): on the host network the sidecar's token API would be open to every process of the node", p.profile)
		}
		p.socket = true
		p.healthTCP = o.healthPort != nil
	}
	if p.targets, err = targets(pod, p.containers, o.containers != nil); err != nil {
		return nil, err
	}
	p.guaranteed = isGuaranteed(pod)
	if p.guaranteed {
		p.resources = guaranteedResources(p.resources)
	}
	if grace := gracePeriod(pod); int64(p.shutdownDelay) > grace {
		// The API server refuses a preStop sleep longer than the grace
		// period; the delay is a wish, the grace period the Pod's budget.
		p.shutdownDelay = int32(grace)
	}
	p.insertAt = insertIndex(pod, p.placement)
	if err := checkClashes(pod, p); err != nil {
		return nil, err
	}
	return p, nil
}

// applyOverrides puts the Pod's annotations over the profile's values.
func (p *plan) applyOverrides(o overrides) {
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
	set(&p.apiPort, o.apiPort)
	set(&p.healthPort, o.healthPort)
	set(&p.runAsUser, o.runAsUser)
	set(&p.runAsGroup, o.runAsGroup)
	set(&p.initOnly, o.initOnly)
	set(&p.shutdownDelay, o.shutdownDelay)
	if o.pullSecretsSet {
		p.pullSecrets = o.pullSecrets
	}
	if o.placement != "" {
		p.placement = o.placement
	}
	if o.containers != nil {
		p.containers = o.containers
	}
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// targets are the containers that get the identity: those named (by the
// annotation, strict: each must exist; or by the profile, which names
// containers that many Pods may not have), else every container but a
// service mesh's.
func targets(pod *corev1.Pod, names []string, strict bool) (map[string]bool, error) {
	all := map[string]bool{}
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range cs {
			all[c.Name] = true
		}
	}
	out := map[string]bool{}
	if names == nil {
		for n := range all {
			if !meshContainers[n] {
				out[n] = true
			}
		}
		return out, nil
	}
	for _, n := range names {
		if !all[n] {
			if strict {
				return nil, annotationError(AnnotationInjectContainers, pod.Annotations[AnnotationInjectContainers], "the Pod has no container or init container named %q", n)
			}
			continue
		}
		out[n] = true
	}
	return out, nil
}

// gracePeriod is the Pod's terminationGracePeriodSeconds; the API server's
// default, 30, when unset.
func gracePeriod(pod *corev1.Pod) int64 {
	if g := pod.Spec.TerminationGracePeriodSeconds; g != nil {
		return *g
	}
	return corev1.DefaultTerminationGracePeriodSeconds
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
