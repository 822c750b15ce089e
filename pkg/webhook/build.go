package webhook

import (
	"encoding/json"
	"fmt"
	"path"
	"slices"

	corev1 "k8s.io/api/core/v1"

	"github.com/athenz-injector/athenz-injector/api/v1alpha1"
)

// BuildPatch validates the Pod's athenz.io/* annotations against the
// profile and returns the JSON patch that injects the sidecar into the Pod
// as the API server admits it (with metadata and spec). It does not
// ask whether the Pod opted in (see ShouldInject); a Pod that carries
// athenz.io/status gets no operations. User mistakes are a *Denial whose
// message names the annotation or field to fix.
//
// The operations only add: the targeted containers get the identity mount
// and the ATHENZ_* variables they do not set, and the Pod gets the
// sidecar, its volumes, its image pull secrets, two annotations and the
// revision label. Lists are appended to, or created when absent; the one
// insertion is the sidecar among the init containers (sidecar.placement:
// by default first, after a mesh's native proxy if there is one), so
// that the Pod's own init containers can use the identity too.
func BuildPatch(pod *corev1.Pod, profile *v1alpha1.SidecarProfile, s Settings) ([]PatchOp, error) {
	if _, ok := pod.Annotations[AnnotationStatus]; ok {
		return nil, nil
	}
	p, err := newPlan(pod, profile, s)
	if err != nil {
		return nil, err
	}
	return p.ops(pod, s), nil
}

// checkClashes refuses Pods that already have something of the name or
// path the injector would add, which would make the patched Pod invalid.
func checkClashes(pod *corev1.Pod, p *plan) error {
	ours := p.volumes()
	for _, v := range pod.Spec.Volumes {
		for _, ours := range ours {
			if v.Name == ours.Name {
				return denyf("the Pod already has a volume named %q, which the injector adds; rename the Pod's volume", v.Name)
			}
		}
	}
	ports := map[int32]string{}
	if p.healthTCP {
		ports[p.healthPort] = "health"
	}
	if !p.socket {
		ports[p.apiPort] = "api"
	}
	check := func(kind string, cs []corev1.Container) error {
		for _, c := range cs {
			if c.Name == SidecarName || c.Name == InitName {
				return denyf("the Pod already has %s named %q, which the injector adds; rename it", kind, c.Name)
			}
			for _, m := range c.VolumeMounts {
				if path.Clean(m.MountPath) == IdentityDir {
					return denyf("%s %q already mounts volume %q at %s, where the injector mounts the Athenz identity", kind, c.Name, m.Name, IdentityDir)
				}
			}
			for _, port := range c.Ports {
				if which, ok := ports[port.ContainerPort]; ok && (port.Protocol == "" || port.Protocol == corev1.ProtocolTCP) {
					return denyf("%s %q uses port %d, the sidecar's %s port; choose another with the annotation athenz.io/sidecar-%s-port or in the SidecarProfile (spec.sidecar.ports.%s)", kind, c.Name, port.ContainerPort, which, which, which)
				}
			}
		}
		return nil
	}
	if err := check("init container", pod.Spec.InitContainers); err != nil {
		return err
	}
	return check("container", pod.Spec.Containers)
}

// Status is the value of the athenz.io/status annotation (JSON): what the
// injector added to the Pod, and by which version and profile.
type Status struct {
	Version string `json:"version"`
	Profile string `json:"profile"`
	// ProfileGeneration is the profile's metadata.generation when the Pod
	// was injected: a later one means the profile changed since.
	ProfileGeneration int64 `json:"profileGeneration,omitempty"`
	// Revision is the profile's spec.revision.
	Revision      string `json:"revision,omitempty"`
	Domain        string `json:"domain"`
	Service       string `json:"service"`
	Image         string `json:"image"`
	NativeSidecar bool   `json:"nativeSidecar"`
	// InitOnly: the identity is fetched by an init container and nothing
	// keeps running (asked for, or a Job's Pod without native sidecars):
	// no token API.
	InitOnly bool `json:"initOnly,omitempty"`
	Socket   bool `json:"socket,omitempty"`
	// Placement is the sidecar.placement the Pod was injected with.
	Placement      v1alpha1.SidecarPlacement `json:"placement,omitempty"`
	InitContainers []string                  `json:"initContainers,omitempty"`
	Containers     []string                  `json:"containers,omitempty"`
	Volumes        []string                  `json:"volumes"`
	// Targets are the Pod's containers that got the identity mount and
	// variables.
	Targets []string `json:"targets,omitempty"`
}

// ops builds the patch. Operations on the Pod's own init containers come
// before the sidecar is inserted among them, so their indexes are the
// Pod's.
func (p *plan) ops(pod *corev1.Pod, s Settings) []PatchOp {
	vols := p.volumes()
	st := Status{
		Version:           s.version(),
		Profile:           p.profile,
		ProfileGeneration: p.generation,
		Revision:          p.revision,
		Domain:            p.domain,
		Service:           p.service,
		Image:             p.image,
		NativeSidecar:     p.native && !p.initOnly,
		InitOnly:          p.initOnly,
		Socket:            p.socket,
		Placement:         p.placement,
		Volumes:           make([]string, len(vols)),
	}
	for i, v := range vols {
		st.Volumes[i] = v.Name
	}
	switch {
	case p.initOnly:
		st.InitContainers = []string{InitName}
	case p.native:
		st.InitContainers = []string{SidecarName}
	default:
		st.InitContainers = []string{InitName}
		st.Containers = []string{SidecarName}
	}
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range cs {
			if p.targets[c.Name] {
				st.Targets = append(st.Targets, c.Name)
			}
		}
	}
	status, err := json.Marshal(st)
	if err != nil {
		panic(fmt.Sprintf("marshalling status: %v", err)) // only strings, bools and lists
	}

	ops := make([]PatchOp, 0, 16)

	// Annotations: one op that adds the map when the Pod has none.
	add := map[string]any{AnnotationStatus: string(status)}
	_, hasDefault := pod.Annotations[AnnotationDefaultContainer]
	if !hasDefault && len(pod.Spec.Containers) > 0 && pod.Spec.Containers[0].Name != "" {
		add[AnnotationDefaultContainer] = pod.Spec.Containers[0].Name
	}
	if pod.Annotations == nil {
		ops = append(ops, PatchOp{Op: "add", Path: "/metadata/annotations", Value: add})
	} else {
		ops = append(ops, PatchOp{Op: "add", Path: pointer("metadata", "annotations", AnnotationStatus), Value: string(status)})
		if v, ok := add[AnnotationDefaultContainer]; ok {
			ops = append(ops, PatchOp{Op: "add", Path: pointer("metadata", "annotations", AnnotationDefaultContainer), Value: v})
		}
	}

	if p.revision != "" {
		if _, ok := pod.Labels[LabelRevision]; !ok {
			ops = addToMap(ops, "/metadata/labels", pod.Labels != nil, LabelRevision, p.revision)
		}
	}

	ops = appendToList(ops, "/spec/volumes", pod.Spec.Volumes != nil, vols...)
	ops = appendToList(ops, "/spec/imagePullSecrets", pod.Spec.ImagePullSecrets != nil, p.missingPullSecrets(pod)...)

	env := p.appEnv()
	for i := range pod.Spec.InitContainers {
		if p.targets[pod.Spec.InitContainers[i].Name] {
			ops = appContainerOps(ops, pointer("spec", "initContainers", i), &pod.Spec.InitContainers[i], env)
		}
	}
	for i := range pod.Spec.Containers {
		if p.targets[pod.Spec.Containers[i].Name] {
			ops = appContainerOps(ops, pointer("spec", "containers", i), &pod.Spec.Containers[i], env)
		}
	}

	first := p.sidecar(!p.native || p.initOnly)
	if pod.Spec.InitContainers == nil {
		ops = append(ops, PatchOp{Op: "add", Path: "/spec/initContainers", Value: []corev1.Container{first}})
	} else {
		ops = append(ops, PatchOp{Op: "add", Path: pointer("spec", "initContainers", p.insertAt), Value: first})
	}
	if !p.native && !p.initOnly {
		ops = appendToList(ops, "/spec/containers", pod.Spec.Containers != nil, p.sidecar(false))
	}
	return ops
}

// missingPullSecrets are the plan's image pull secrets that the Pod does
// not list.
func (p *plan) missingPullSecrets(pod *corev1.Pod) []corev1.LocalObjectReference {
	var out []corev1.LocalObjectReference
	for _, name := range p.pullSecrets {
		if !slices.ContainsFunc(pod.Spec.ImagePullSecrets, func(r corev1.LocalObjectReference) bool { return r.Name == name }) {
			out = append(out, corev1.LocalObjectReference{Name: name})
		}
	}
	return out
}

// appContainerOps gives one app container the read-only identity mount and
// the variables it does not set itself.
func appContainerOps(ops []PatchOp, at string, c *corev1.Container, env []corev1.EnvVar) []PatchOp {
	missing := make([]corev1.EnvVar, 0, len(env))
	for _, e := range env {
		if !hasEnv(c, e.Name) {
			missing = append(missing, e)
		}
	}
	ops = appendToList(ops, at+"/env", c.Env != nil, missing...)
	return appendToList(ops, at+"/volumeMounts", c.VolumeMounts != nil, appMount())
}

func hasEnv(c *corev1.Container, name string) bool {
	for _, e := range c.Env {
		if e.Name == name {
			return true
		}
	}
	return false
}
