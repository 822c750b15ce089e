package webhook

import (
	"encoding/json"
	"fmt"
	"path"

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
// The operations only add: app containers get the identity mount and the
// ATHENZ_* variables they do not set, and the Pod gets the sidecar, its
// volumes and two annotations. Lists are appended to, or created when
// absent; the one insertion is the sidecar at the head of initContainers,
// so that the Pod's own init containers can use the identity too.
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
	ports := map[int32]string{p.healthPort: "health"}
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
					return denyf("%s %q uses port %d, the sidecar's %s port; choose another in the SidecarProfile (spec.sidecar.ports.%s)", kind, c.Name, port.ContainerPort, which, which)
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
	Version       string `json:"version"`
	Profile       string `json:"profile"`
	Domain        string `json:"domain"`
	Service       string `json:"service"`
	Image         string `json:"image"`
	NativeSidecar bool   `json:"nativeSidecar"`
	// InitOnly: the identity is fetched by an init container and nothing
	// keeps running (a Job's Pod without native sidecars): no token API.
	InitOnly       bool     `json:"initOnly,omitempty"`
	Socket         bool     `json:"socket,omitempty"`
	InitContainers []string `json:"initContainers,omitempty"`
	Containers     []string `json:"containers,omitempty"`
	Volumes        []string `json:"volumes"`
}

// ops builds the patch. Operations on the Pod's own init containers come
// before the sidecar is inserted at index 0, so their indexes are the
// Pod's.
func (p *plan) ops(pod *corev1.Pod, s Settings) []PatchOp {
	vols := p.volumes()
	st := Status{
		Version:       s.version(),
		Profile:       p.profile,
		Domain:        p.domain,
		Service:       p.service,
		Image:         p.image,
		NativeSidecar: p.native,
		InitOnly:      p.initOnly,
		Socket:        p.socket,
		Volumes:       make([]string, len(vols)),
	}
	for i, v := range vols {
		st.Volumes[i] = v.Name
	}
	switch {
	case p.native:
		st.InitContainers = []string{SidecarName}
	case p.initOnly:
		st.InitContainers = []string{InitName}
	default:
		st.InitContainers = []string{InitName}
		st.Containers = []string{SidecarName}
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

	ops = appendToList(ops, "/spec/volumes", pod.Spec.Volumes != nil, vols...)

	env := p.appEnv()
	for i := range pod.Spec.InitContainers {
		ops = appContainerOps(ops, pointer("spec", "initContainers", i), &pod.Spec.InitContainers[i], env)
	}
	for i := range pod.Spec.Containers {
		ops = appContainerOps(ops, pointer("spec", "containers", i), &pod.Spec.Containers[i], env)
	}

	first := p.sidecar(!p.native)
	if pod.Spec.InitContainers == nil {
		ops = append(ops, PatchOp{Op: "add", Path: "/spec/initContainers", Value: []corev1.Container{first}})
	} else {
		ops = append(ops, PatchOp{Op: "add", Path: "/spec/initContainers/0", Value: first})
	}
	if !p.native && !p.initOnly {
		ops = appendToList(ops, "/spec/containers", pod.Spec.Containers != nil, p.sidecar(false))
	}
	return ops
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
