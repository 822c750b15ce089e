package framework

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// DefaultTokenSeconds is the lifetime of a projected service account token
// whose volume names none, as in Kubernetes.
const DefaultTokenSeconds = 3600

// PlayedKubelet stands in for the kubelet of one node, for the parts the flow
// needs: it gives a Pod an IP, fills the volumes a container mounts, runs
// the container as a local process (ResolveContainer) and polls its
// startup probe. There is no container runtime: the container's image must
// have a local executable (Images), and its security context is not
// applied.
type PlayedKubelet struct {
	// Clientset reads ConfigMaps and Secrets, mints service account tokens
	// and updates Pod status. Required.
	Clientset kubernetes.Interface
	// Dir receives a directory per container run: its volumes and log.
	// Required.
	Dir string
	// Images maps an image to the local executable of its entrypoint.
	Images map[string]string
	// PodIP is set as the Pod's IP before a container starts. Default
	// "127.0.0.1".
	PodIP string
	// HTTPClient polls probes. Default: a client with a 2 s timeout.
	HTTPClient *http.Client
}

// Container is a container of a Pod running as a local process.
type Container struct {
	*Process
	// Pod is the Pod as it was when the container started (with its IP).
	Pod *corev1.Pod
	// Spec is the container's spec in Pod.
	Spec *corev1.Container
	// Command is what runs.
	Command *Command
	// Tokens are the service account tokens put in its volumes.
	Tokens []Token
	// Ports are the local addresses of the container's ports.
	Ports map[int32]string
}

// Token is a service account token minted for a projected volume.
type Token struct {
	Volume            string
	Path              string // local file
	ServiceAccount    string
	Audiences         []string
	ExpirationSeconds int64
	Expires           time.Time
	BoundPod          string // "<namespace>/<name> uid <uid>"
}

// SetPodIP records ip as the Pod's IP (status.podIP and podIPs, and
// hostIP), as the kubelet does once the Pod's sandbox runs, and returns
// the updated Pod. The Pod is first bound to node "local" (as a
// scheduler would: there is none) if it is not bound yet.
func (k *PlayedKubelet) SetPodIP(ctx context.Context, pod *corev1.Pod, ip string) (*corev1.Pod, error) {
	pods := k.Clientset.CoreV1().Pods(pod.Namespace)
	if pod.Spec.NodeName == "" {
		b := &corev1.Binding{
			ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID},
			Target:     corev1.ObjectReference{Kind: "Node", Name: "local"},
		}
		if err := pods.Bind(ctx, b, metav1.CreateOptions{}); err != nil {
			return nil, fmt.Errorf("binding pod %s/%s to node local: %w", pod.Namespace, pod.Name, err)
		}
	}
	cur, err := pods.Get(ctx, pod.Name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	cur.Status.HostIP = ip
	cur.Status.HostIPs = []corev1.HostIP{{IP: ip}}
	cur.Status.PodIP = ip
	cur.Status.PodIPs = []corev1.PodIP{{IP: ip}}
	updated, err := pods.UpdateStatus(ctx, cur, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("setting status.podIP of pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return updated, nil
}

// Start runs container name of pod: it sets the Pod's IP, fills the
// volumes the container mounts, and starts the resolved command with ports
// (container port -> local address) applied. Wait for it with WaitStarted.
func (k *PlayedKubelet) Start(ctx context.Context, pod *corev1.Pod, name string, ports map[int32]string) (*Container, error) {
	ip := k.PodIP
	if ip == "" {
		ip = "127.0.0.1"
	}
	pod, err := k.SetPodIP(ctx, pod, ip)
	if err != nil {
		return nil, err
	}
	spec, err := FindContainer(pod, name)
	if err != nil {
		return nil, err
	}
	root := filepath.Join(k.Dir, pod.Name, name)
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	vols, tokens, err := k.prepareVolumes(ctx, pod, spec, filepath.Join(root, "volumes"))
	if err != nil {
		return nil, err
	}
	cmd, err := ResolveContainer(pod, name, Mapping{Images: k.Images, Volumes: vols, Ports: ports, Dir: root})
	if err != nil {
		return nil, err
	}
	ec := exec.Command(cmd.Path, cmd.Args...)
	ec.Env, ec.Dir = cmd.Env, cmd.Dir
	p, err := StartProcess(name, ec, filepath.Join(root, name+".log"))
	if err != nil {
		return nil, err
	}
	return &Container{Process: p, Pod: pod, Spec: spec, Command: cmd, Tokens: tokens, Ports: ports}, nil
}

// WaitStarted polls the container's startup probe (its readiness probe if
// it has none) until it answers 200, the process exits, or ctx ends; the
// error then carries the last answer and the end of the container's log.
func (k *PlayedKubelet) WaitStarted(ctx context.Context, c *Container) (time.Duration, error) {
	probe := c.Spec.StartupProbe
	if probe == nil {
		probe = c.Spec.ReadinessProbe
	}
	check, what, err := k.prober(c, probe)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	err = Wait(ctx, fmt.Sprintf("the startup probe of container %s (%s)", c.Spec.Name, what), func(ctx context.Context) (bool, string, error) {
		if exited, err := c.Exited(); exited {
			return false, "", fmt.Errorf("container %s exited: %v", c.Spec.Name, err)
		}
		return check(ctx)
	})
	if err != nil {
		return 0, fmt.Errorf("%w\nlog of container %s (%s):\n%s", err, c.Spec.Name, c.LogPath, c.Log(40))
	}
	return time.Since(start), nil
}

// prober returns a Wait check that runs probe as the kubelet would: an
// httpGet on the container's mapped port, or an exec of the image's
// entrypoint (the local executable that stands for it, whose base name
// the command's first word must have) with the container's environment.
func (k *PlayedKubelet) prober(c *Container, probe *corev1.Probe) (func(context.Context) (bool, string, error), string, error) {
	if probe != nil && probe.Exec != nil {
		cmd := probe.Exec.Command
		if len(cmd) == 0 || path.Base(cmd[0]) != filepath.Base(c.Command.Path) {
			return nil, "", fmt.Errorf("container %q: exec probe %q runs no image entrypoint this machine has (%s)", c.Spec.Name, cmd, c.Command.Path)
		}
		return func(ctx context.Context) (bool, string, error) {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			ec := exec.CommandContext(ctx, c.Command.Path, cmd[1:]...)
			ec.Env = c.Command.Env
			out, err := ec.CombinedOutput()
			return err == nil, strings.TrimSpace(string(out)), nil
		}, "exec " + strings.Join(cmd, " "), nil
	}
	u, err := ProbeURL(c.Spec, probe, c.Ports)
	if err != nil {
		return nil, "", err
	}
	hc := k.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 2 * time.Second}
	}
	return func(ctx context.Context) (bool, string, error) { return httpOK(ctx, hc, u) }, "GET " + u, nil
}

// PrepareVolumes fills a directory under root for each volume that
// container c of pod mounts, as Start does, and returns volume name ->
// directory: for tests that run a Pod template's container their own way
// (test/chart runs the injector of the chart's Deployment). A Secret or
// ConfigMap that does not exist is an error, as it keeps a Pod from
// starting.
func (k *PlayedKubelet) PrepareVolumes(ctx context.Context, pod *corev1.Pod, c *corev1.Container, root string) (map[string]string, error) {
	dirs, _, err := k.prepareVolumes(ctx, pod, c, root)
	return dirs, err
}

// prepareVolumes fills a directory under root for each volume that c
// mounts and returns volume name -> directory.
func (k *PlayedKubelet) prepareVolumes(ctx context.Context, pod *corev1.Pod, c *corev1.Container, root string) (map[string]string, []Token, error) {
	dirs := map[string]string{}
	var tokens []Token
	for _, vm := range c.VolumeMounts {
		if _, done := dirs[vm.Name]; done {
			continue
		}
		var vol *corev1.Volume
		for i := range pod.Spec.Volumes {
			if pod.Spec.Volumes[i].Name == vm.Name {
				vol = &pod.Spec.Volumes[i]
			}
		}
		if vol == nil {
			return nil, nil, fmt.Errorf("container %q mounts volume %q, which pod %s/%s does not have", c.Name, vm.Name, pod.Namespace, pod.Name)
		}
		dir := filepath.Join(root, vol.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, nil, err
		}
		var err error
		switch {
		case vol.EmptyDir != nil:
		case vol.ConfigMap != nil:
			err = k.writeConfigMap(ctx, pod.Namespace, vol.ConfigMap.Name, vol.ConfigMap.Items, vol.ConfigMap.Optional, dir)
		case vol.Secret != nil:
			err = k.writeSecret(ctx, pod.Namespace, vol.Secret.SecretName, vol.Secret.Items, vol.Secret.Optional, dir)
		case vol.Projected != nil:
			for _, src := range vol.Projected.Sources {
				switch {
				case src.ServiceAccountToken != nil:
					var t Token
					t, err = k.writeToken(ctx, pod, src.ServiceAccountToken, filepath.Join(dir, src.ServiceAccountToken.Path))
					t.Volume = vol.Name
					tokens = append(tokens, t)
				case src.ConfigMap != nil:
					err = k.writeConfigMap(ctx, pod.Namespace, src.ConfigMap.Name, src.ConfigMap.Items, src.ConfigMap.Optional, dir)
				case src.Secret != nil:
					err = k.writeSecret(ctx, pod.Namespace, src.Secret.Name, src.Secret.Items, src.Secret.Optional, dir)
				case src.DownwardAPI != nil:
					// kube-api-access, which the ServiceAccount admission
					// plugin adds to every container, has the namespace.
					err = writeDownwardAPI(pod, src.DownwardAPI.Items, dir)
				default:
					err = fmt.Errorf("a projected source other than serviceAccountToken, configMap, secret and downwardAPI is not supported locally")
				}
				if err != nil {
					break
				}
			}
		default:
			err = fmt.Errorf("only emptyDir, configMap, secret and projected volumes are supported locally")
		}
		if err != nil {
			return nil, nil, fmt.Errorf("volume %q of pod %s/%s: %w", vol.Name, pod.Namespace, pod.Name, err)
		}
		dirs[vol.Name] = dir
	}
	return dirs, tokens, nil
}

// writeToken mints a token for the Pod's service account with the
// TokenRequest API, bound to the Pod, as the kubelet does for a projected
// serviceAccountToken source, and writes it to path.
func (k *PlayedKubelet) writeToken(ctx context.Context, pod *corev1.Pod, src *corev1.ServiceAccountTokenProjection, path string) (Token, error) {
	exp := int64(DefaultTokenSeconds)
	if src.ExpirationSeconds != nil {
		exp = *src.ExpirationSeconds
	}
	var aud []string
	if src.Audience != "" {
		aud = []string{src.Audience}
	}
	sa := pod.Spec.ServiceAccountName
	tr, err := k.Clientset.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, sa, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{
			Audiences:         aud,
			ExpirationSeconds: &exp,
			BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return Token{}, fmt.Errorf("minting a token for service account %s/%s (audience %q): %w", pod.Namespace, sa, src.Audience, err)
	}
	if err := os.WriteFile(path, []byte(tr.Status.Token), 0o600); err != nil {
		return Token{}, err
	}
	return Token{
		Path:              path,
		ServiceAccount:    pod.Namespace + "/" + sa,
		Audiences:         aud,
		ExpirationSeconds: exp,
		Expires:           tr.Status.ExpirationTimestamp.Time,
		BoundPod:          fmt.Sprintf("%s/%s uid %s", pod.Namespace, pod.Name, pod.UID),
	}, nil
}

func (k *PlayedKubelet) writeConfigMap(ctx context.Context, ns, name string, items []corev1.KeyToPath, optional *bool, dir string) error {
	cm, err := k.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		if optional != nil && *optional {
			return nil
		}
		return fmt.Errorf("reading ConfigMap %s/%s: %w", ns, name, err)
	}
	data := map[string][]byte{}
	for k, v := range cm.Data {
		data[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		data[k] = v
	}
	return writeItems("ConfigMap "+ns+"/"+name, data, items, dir)
}

func (k *PlayedKubelet) writeSecret(ctx context.Context, ns, name string, items []corev1.KeyToPath, optional *bool, dir string) error {
	s, err := k.Clientset.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		if optional != nil && *optional {
			return nil
		}
		return fmt.Errorf("reading Secret %s/%s: %w", ns, name, err)
	}
	return writeItems("Secret "+ns+"/"+name, s.Data, items, dir)
}

// writeItems writes the keys of data (all, or items) as files under dir.
func writeItems(what string, data map[string][]byte, items []corev1.KeyToPath, dir string) error {
	if len(items) == 0 {
		for key := range data {
			items = append(items, corev1.KeyToPath{Key: key, Path: key})
		}
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			return fmt.Errorf("%s has no key %q", what, it.Key)
		}
		p := filepath.Join(dir, it.Path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, v, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// writeDownwardAPI writes the fieldRef items of a downwardAPI projection.
func writeDownwardAPI(pod *corev1.Pod, items []corev1.DownwardAPIVolumeFile, dir string) error {
	for _, it := range items {
		if it.FieldRef == nil {
			return fmt.Errorf("downwardAPI item %q: only fieldRef is supported locally", it.Path)
		}
		v, err := fieldValue(pod, it.FieldRef.FieldPath)
		if err != nil {
			return fmt.Errorf("downwardAPI item %q: %w", it.Path, err)
		}
		if err := os.WriteFile(filepath.Join(dir, it.Path), []byte(v), 0o644); err != nil {
			return err
		}
	}
	return nil
}
