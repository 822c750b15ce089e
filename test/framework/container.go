package framework

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Mapping says how the world of a container maps to this machine, for
// ResolveContainer.
type Mapping struct {
	// Images maps an image to the local executable that stands for the
	// image's entrypoint. A container whose image is not here cannot run.
	Images map[string]string
	// Volumes maps a volume name to the local directory with its content.
	// Every volume the container mounts must be here.
	Volumes map[string]string
	// Ports maps a port number to the local address "127.0.0.1:<port>"
	// that replaces every listen address ("127.0.0.1:8081", ":8082") and
	// loopback URL ("http://127.0.0.1:8081") with that port, in environment
	// values and arguments: a Pod has a network namespace of its own, this
	// machine does not. Ports not in the map are left alone.
	Ports map[int32]string
	// Dir is the working directory when the container sets none.
	Dir string
}

// Command is a container of a Pod resolved to a local process.
type Command struct {
	// Path is the executable, Args its arguments (without argv[0]).
	Path string
	Args []string
	// Env is the container's environment, "NAME=value" in its order, and
	// nothing else.
	Env []string
	// Dir is the working directory.
	Dir string
	// Mounts are the container's volume mounts and where they are here.
	Mounts []Mount
	// Rewrites are the values that the mapping changed.
	Rewrites []Rewrite
}

// Mount is a volume mount of the container and its local directory.
type Mount struct {
	Volume, MountPath, Local string
	ReadOnly                 bool
}

// Rewrite is an environment value or argument changed by the mapping.
type Rewrite struct {
	// What is "env NAME" or "arg N".
	What     string
	From, To string
}

// Lookup returns the value of the environment variable name in c.Env.
func (c *Command) Lookup(name string) (string, bool) {
	for _, kv := range c.Env {
		if k, v, _ := strings.Cut(kv, "="); k == name {
			return v, true
		}
	}
	return "", false
}

// FindContainer returns the init container or container called name.
func FindContainer(pod *corev1.Pod, name string) (*corev1.Container, error) {
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range list {
			if list[i].Name == name {
				return &list[i], nil
			}
		}
	}
	var names []string
	for _, c := range slices.Concat(pod.Spec.InitContainers, pod.Spec.Containers) {
		names = append(names, c.Name)
	}
	return nil, fmt.Errorf("pod %s/%s has no container %q (it has %v)", pod.Namespace, pod.Name, name, names)
}

// ResolveContainer turns container name of pod into a local command, as a
// kubelet would start it: the image's entrypoint (Mapping.Images) with the
// container's args; its environment in order, with values from `value`
// (after $(VAR) expansion) and downward-API fieldRefs read from pod; and
// then the local mapping: mount paths in values and arguments replaced by
// the volumes' local directories (the longest mount path first, at path
// boundaries, also after "unix://"), listen addresses and loopback URLs
// replaced by Mapping.Ports. What it cannot reproduce it refuses, naming
// it: a command (an executable path inside the image), envFrom, env from
// ConfigMaps, Secrets or resources, a volume without a local directory.
func ResolveContainer(pod *corev1.Pod, name string, m Mapping) (*Command, error) {
	c, err := FindContainer(pod, name)
	if err != nil {
		return nil, err
	}
	where := fmt.Sprintf("container %q of pod %s/%s", c.Name, pod.Namespace, pod.Name)
	exe, ok := m.Images[c.Image]
	if !ok {
		return nil, fmt.Errorf("%s: image %q has no local executable (known: %v)", where, c.Image, mapKeys(m.Images))
	}
	if len(c.Command) > 0 {
		return nil, fmt.Errorf("%s sets command %q: only an image's entrypoint can run locally", where, c.Command)
	}
	if len(c.EnvFrom) > 0 {
		return nil, fmt.Errorf("%s uses envFrom: not supported locally", where)
	}
	cmd := &Command{Path: exe}
	for _, vm := range c.VolumeMounts {
		dir, ok := m.Volumes[vm.Name]
		if !ok {
			return nil, fmt.Errorf("%s mounts volume %q at %s, which has no local directory", where, vm.Name, vm.MountPath)
		}
		cmd.Mounts = append(cmd.Mounts, Mount{Volume: vm.Name, MountPath: vm.MountPath, Local: filepath.Join(dir, vm.SubPath), ReadOnly: vm.ReadOnly})
	}
	mapper := valueMapper{mounts: slices.Clone(cmd.Mounts), ports: m.Ports}
	slices.SortStableFunc(mapper.mounts, func(a, b Mount) int { return len(b.MountPath) - len(a.MountPath) })

	vars := map[string]string{}
	for _, e := range c.Env {
		var v string
		switch {
		case e.ValueFrom == nil:
			v = expand(e.Value, vars)
		case e.ValueFrom.FieldRef != nil:
			v, err = fieldValue(pod, e.ValueFrom.FieldRef.FieldPath)
			if err != nil {
				return nil, fmt.Errorf("%s: env %s: %w", where, e.Name, err)
			}
		default:
			return nil, fmt.Errorf("%s: env %s: only value and fieldRef are supported locally", where, e.Name)
		}
		if to := mapper.value(v); to != v {
			cmd.Rewrites = append(cmd.Rewrites, Rewrite{What: "env " + e.Name, From: v, To: to})
			v = to
		}
		vars[e.Name] = v
		cmd.Env = append(cmd.Env, e.Name+"="+v)
	}
	if cmd.Env == nil {
		cmd.Env = []string{} // not nil: exec.Cmd would pass this process's environment
	}
	for i, a := range c.Args {
		a = expand(a, vars)
		var to string
		if flag, val, ok := strings.Cut(a, "="); ok && strings.HasPrefix(flag, "-") {
			to = flag + "=" + mapper.value(val)
		} else {
			to = mapper.value(a)
		}
		if to != a {
			cmd.Rewrites = append(cmd.Rewrites, Rewrite{What: "arg " + strconv.Itoa(i), From: a, To: to})
		}
		cmd.Args = append(cmd.Args, to)
	}
	cmd.Dir = m.Dir
	if c.WorkingDir != "" {
		cmd.Dir = mapper.path(c.WorkingDir)
	}
	return cmd, nil
}

// ProbeURL is the URL of an httpGet probe of container c with its port
// mapped by ports (the port may be a number or a named container port).
func ProbeURL(c *corev1.Container, p *corev1.Probe, ports map[int32]string) (string, error) {
	if p == nil || p.HTTPGet == nil {
		return "", fmt.Errorf("container %q: the probe is not an httpGet probe", c.Name)
	}
	g := p.HTTPGet
	port := int32(0)
	if g.Port.Type == intstr.Int {
		port = g.Port.IntVal
	} else {
		for _, cp := range c.Ports {
			if cp.Name == g.Port.StrVal {
				port = cp.ContainerPort
			}
		}
	}
	addr, ok := ports[port]
	if !ok {
		return "", fmt.Errorf("container %q: probe port %s is not mapped to a local port", c.Name, g.Port.String())
	}
	scheme := strings.ToLower(string(g.Scheme))
	if scheme == "" {
		scheme = "http"
	}
	return (&url.URL{Scheme: scheme, Host: addr, Path: g.Path}).String(), nil
}

// valueMapper rewrites paths under mount paths and listen addresses.
type valueMapper struct {
	mounts []Mount // the longest mount path first
	ports  map[int32]string
}

func (vm valueMapper) value(v string) string {
	if p := vm.path(v); p != v {
		return p
	}
	if rest, ok := strings.CutPrefix(v, "unix://"); ok {
		return "unix://" + vm.path(rest)
	}
	return vm.listen(v)
}

// path maps an absolute path under a mount path to the local directory.
func (vm valueMapper) path(v string) string {
	for _, m := range vm.mounts {
		mp := strings.TrimSuffix(m.MountPath, "/")
		if v == mp || strings.HasPrefix(v, mp+"/") {
			return m.Local + v[len(mp):]
		}
	}
	return v
}

// listen maps "host:port" and "http(s)://loopback:port/..." with a mapped
// port.
func (vm valueMapper) listen(v string) string {
	if _, port, err := net.SplitHostPort(v); err == nil {
		if to, ok := vm.port(port); ok {
			return to
		}
		return v
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Port() == "" {
		return v
	}
	if h := u.Hostname(); h != "localhost" && !net.ParseIP(h).IsLoopback() {
		return v
	}
	if to, ok := vm.port(u.Port()); ok {
		u.Host = to
		return u.String()
	}
	return v
}

func (vm valueMapper) port(s string) (string, bool) {
	p, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		return "", false
	}
	to, ok := vm.ports[int32(p)]
	return to, ok
}

// fieldValue is the downward-API value of fieldPath for pod.
func fieldValue(pod *corev1.Pod, fieldPath string) (string, error) {
	switch fieldPath {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "status.podIP":
		return pod.Status.PodIP, nil
	case "status.hostIP":
		return pod.Status.HostIP, nil
	case "status.podIPs":
		var ips []string
		for _, ip := range pod.Status.PodIPs {
			ips = append(ips, ip.IP)
		}
		return strings.Join(ips, ","), nil
	}
	for prefix, m := range map[string]map[string]string{"metadata.labels": pod.Labels, "metadata.annotations": pod.Annotations} {
		if rest, ok := strings.CutPrefix(fieldPath, prefix+"['"); ok && strings.HasSuffix(rest, "']") {
			return m[strings.TrimSuffix(rest, "']")], nil
		}
	}
	return "", fmt.Errorf("fieldRef %q is not supported locally", fieldPath)
}

// expand replaces $(NAME) with vars[NAME] as the kubelet does: $$ is a
// literal $, and a reference to an unknown name is left as written.
func expand(s string, vars map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := vars[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

func mapKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
