package framework

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// NodeAssetsEnv names the directory of hack/build-node.sh (kubelet,
// kube-scheduler, kube-proxy, kubectl, containerd, runc, crictl, cni/).
// Unset, StartNode runs the script, which builds once into the cache.
const NodeAssetsEnv = "ATHENZ_NODE_ASSETS"

// NodeName is the test node's name.
const NodeName = "athenz-node"

// cgroupRoot is the kubelet's cgroup root on every v1 hierarchy: the
// node's Pods live under it, and Stop removes it.
const cgroupRoot = "/athenz-node"

// staleStateFile records the running node's processes and directories,
// so that a run killed before Stop can be cleaned by the next one.
const staleStateFile = "/run/athenz-injector-node.json"

// NodeOptions configure StartNode.
type NodeOptions struct {
	// Dir receives the node's state (containerd's root and state, the
	// kubelet's root, Pod logs), configuration and logs. Required; keep
	// it short (unix socket paths).
	Dir string
	// Root is the repository (for hack/build-node.sh). Required.
	Root string
	// Assets is hack/build-node.sh's directory. Default: $ATHENZ_NODE_ASSETS,
	// else the script's output.
	Assets string
	// CP is the control plane, started on HostIP with ServiceCIDR.
	// Required.
	CP *ControlPlane
	// Images are OCI image tarballs to import before the kubelet starts.
	Images []string
	// SandboxImage is the Pod sandbox ("pause") image, in Images.
	// Required.
	SandboxImage string
	// Logf reports progress details. Default: none.
	Logf func(format string, args ...any)
}

// Node is a running test node: containerd with runc and the bridge CNI
// plugin, the kubelet, kube-proxy (nftables) and kube-scheduler.
type Node struct {
	Name   string
	Dir    string
	Assets string
	// Socket is containerd's (and CRI's) endpoint.
	Socket string
	// Kubeconfig is the administrator's, for kubectl.
	Kubeconfig string
	// CrictlConfig is crictl's configuration (crictl --config).
	CrictlConfig string

	Containerd, Kubelet, Proxy, Scheduler *Process

	logf func(string, ...any)
}

// nodeRecord is staleStateFile's content.
type nodeRecord struct {
	Pids []int  `json:"pids"`
	Dir  string `json:"dir"`
}

// StartNode starts containerd, imports the images, starts the kubelet,
// kube-proxy and kube-scheduler, and waits until the node is Ready. The
// Host must have been acquired. On error, everything started is stopped.
func StartNode(ctx context.Context, o NodeOptions) (_ *Node, err error) {
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.Assets == "" {
		o.Assets = os.Getenv(NodeAssetsEnv)
	}
	if o.Assets == "" {
		bctx, cancel := WithTimeout(ctx, 30*time.Minute, "hack/build-node.sh")
		o.Assets, err = ToolPath(bctx, o.Root, filepath.Join("hack", "build-node.sh"))
		cancel()
		if err != nil {
			return nil, err
		}
	}
	n := &Node{Name: NodeName, Dir: o.Dir, Assets: o.Assets, logf: o.Logf, Kubeconfig: o.CP.Kubeconfig,
		Socket: filepath.Join(o.Dir, "containerd", "containerd.sock")}
	defer func() {
		if err != nil {
			if serr := n.Stop(context.WithoutCancel(ctx)); serr != nil {
				err = fmt.Errorf("%w\nand stopping the node: %v", err, serr)
			}
		}
	}()
	for _, d := range []string{"containerd", "kubelet", "pod-logs", "cni/net.d", "cni/ipam", "pki"} {
		if err := os.MkdirAll(filepath.Join(o.Dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	if err := createCgroupRoot(); err != nil {
		return nil, err
	}
	n.CrictlConfig = filepath.Join(o.Dir, "crictl.yaml")
	crictl := fmt.Sprintf("runtime-endpoint: unix://%s\nimage-endpoint: unix://%s\ntimeout: 20\n", n.Socket, n.Socket)
	if err := os.WriteFile(n.CrictlConfig, []byte(crictl), 0o644); err != nil {
		return nil, err
	}
	if err := n.startContainerd(ctx); err != nil {
		return nil, err
	}
	for _, img := range o.Images {
		if out, err := n.Ctr(ctx, "images", "import", "--no-unpack=false", img); err != nil {
			return nil, fmt.Errorf("importing %s: %w\n%s", img, err, out)
		}
	}
	if err := n.startKubelet(ctx, o); err != nil {
		return nil, err
	}
	if err := n.startProxy(ctx, o); err != nil {
		return nil, err
	}
	if err := n.startScheduler(ctx, o); err != nil {
		return nil, err
	}
	if err := n.waitReady(ctx, o.CP); err != nil {
		return nil, err
	}
	return n, nil
}

func (n *Node) record() {
	var r nodeRecord
	r.Dir = n.Dir
	for _, p := range []*Process{n.Containerd, n.Kubelet, n.Proxy, n.Scheduler} {
		if p != nil {
			r.Pids = append(r.Pids, p.Pid())
		}
	}
	b, _ := json.Marshal(r)
	_ = os.WriteFile(staleStateFile, b, 0o600)
}

func (n *Node) startContainerd(ctx context.Context) error {
	dir := filepath.Join(n.Dir, "containerd")
	cfg := fmt.Sprintf(`version = 3
root = %[1]q
state = %[2]q

[grpc]
  address = %[3]q

[ttrpc]
  address = %[4]q

[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'overlayfs'
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = %[5]q

[plugins.'io.containerd.cri.v1.runtime']
  # This machine's bounding set lacks CAP_SYS_RESOURCE: containers may not
  # get an oom_score_adj below containerd's own.
  restrict_oom_score_adj = true
  # Network namespaces under the state directory, not /var/run/netns.
  netns_mounts_under_state_dir = true
  enable_cdi = false
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = 'runc'
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = 'io.containerd.runc.v2'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = %[6]q
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = [%[7]q]
    conf_dir = %[8]q
    max_conf_num = 1

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = '127.0.0.1'
  stream_server_port = '0'
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), n.Socket, n.Socket+".ttrpc",
		sandboxImage, filepath.Join(n.Assets, "runc"), filepath.Join(n.Assets, "cni"), filepath.Join(n.Dir, "cni", "net.d"))
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return err
	}
	if err := n.writeCNIConfig(); err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(n.Assets, "containerd"), "--config", cfgPath)
	cmd.Env = append(os.Environ(), "PATH="+n.Assets+":"+os.Getenv("PATH"))
	p, err := StartProcess("containerd", cmd, filepath.Join(n.Dir, "containerd.log"))
	if err != nil {
		return err
	}
	n.Containerd = p
	n.record()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	return Wait(ctx, "containerd on "+n.Socket, func(ctx context.Context) (bool, string, error) {
		if exited, err := p.Exited(); exited {
			return false, "", fmt.Errorf("containerd exited: %v; log:\n%s", err, p.Log(30))
		}
		out, err := n.Ctr(ctx, "version")
		if err != nil {
			return false, out, nil
		}
		return true, "", nil
	})
}

// ClusterDNSIP is the Pods' nameserver: an address of ServiceCIDR that no
// Service has, so queries end on this machine.
var ClusterDNSIP = func() net.IP { ip := FirstIP(ServiceCIDR); ip[3] = 10; return ip }()

// sandboxImage is the pause image's name (Images must hold it).
var sandboxImage = "localhost/athenz-injector/pause:dev"

// writeCNIConfig writes the Pod network: the bridge plugin on BridgeName
// (created by SetupNetwork with HostIP; no gateway, no masquerade, so IP
// forwarding stays off) and host-local addresses from PodCIDR, with one
// route: ReservedRange through the host. Pods have no default route.
func (n *Node) writeCNIConfig() error {
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       "athenz-node",
		"plugins": []any{map[string]any{
			"type":        "bridge",
			"bridge":      BridgeName,
			"isGateway":   false,
			"ipMasq":      false,
			"hairpinMode": true,
			"ipam": map[string]any{
				"type":    "host-local",
				"dataDir": filepath.Join(n.Dir, "cni", "ipam"),
				"ranges": [][]map[string]string{{{
					"subnet":     PodCIDR.String(),
					"rangeStart": "198.18.0.10",
					"rangeEnd":   "198.18.0.250",
					"gateway":    HostIP.String(),
				}}},
				"routes": []map[string]string{{"dst": ReservedRange.String(), "gw": HostIP.String()}},
			},
		}},
	}
	b, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(n.Dir, "cni", "net.d", "10-athenz-node.conflist"), b, 0o644)
}

// Ctr runs ctr against the node's containerd, in the CRI's namespace
// (k8s.io), and returns its combined output.
func (n *Node) Ctr(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(n.Assets, "ctr"), append([]string{"--address", n.Socket, "--namespace", "k8s.io"}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Crictl runs crictl against the node's CRI endpoint and returns its
// standard output; the error carries its standard error.
func (n *Node) Crictl(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(n.Assets, "crictl"), append([]string{"--config", n.CrictlConfig}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("crictl %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

func (n *Node) startKubelet(ctx context.Context, o NodeOptions) error {
	pki := filepath.Join(n.Dir, "pki")
	serving, err := o.CP.CA.Issue(CertRequest{CommonName: NodeName, DNSNames: []string{NodeName}, IPs: []net.IP{HostIP}, Server: true})
	if err != nil {
		return err
	}
	certFile, keyFile, err := serving.Write(filepath.Join(pki, "kubelet"))
	if err != nil {
		return err
	}
	kubeconfig, _, err := o.CP.AddUser("kubelet", "system:node:"+NodeName, "system:nodes")
	if err != nil {
		return err
	}
	port, err := FreePortOn(HostIP)
	if err != nil {
		return err
	}
	healthz, err := FreePort()
	if err != nil {
		return err
	}
	resolv := filepath.Join(n.Dir, "resolv.conf")
	// No nameserver for the node's own lookups, and as the Pods'
	// nameserver (clusterDNS) a Service IP that no Service has: a Pod's DNS
	// query is dropped on this machine, never sent elsewhere.
	if err := os.WriteFile(resolv, nil, 0o644); err != nil {
		return err
	}
	cfg := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This machine: cgroup v1 (hybrid), no systemd.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: %[1]s
containerRuntimeEndpoint: unix://%[2]s
address: %[3]s
port: %[4]d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %[5]d
tlsCertFile: %[6]s
tlsPrivateKeyFile: %[7]s
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %[8]s}
authorization:
  mode: Webhook
podLogsDir: %[9]s
resolvConf: %[10]s
clusterDomain: cluster.local
clusterDNS: [%[11]s]
failSwapOn: false
# Do not evict or collect images for disk or memory pressure of this
# shared machine.
evictionHard: {}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
# Pods start as soon as they are bound, statuses are fresh.
syncFrequency: 10s
nodeStatusUpdateFrequency: 4s
serializeImagePulls: false
shutdownGracePeriod: 0s
`, cgroupRoot, n.Socket, HostIP, port, healthz, certFile, keyFile, o.CP.CA.File,
		filepath.Join(n.Dir, "pod-logs"), resolv, ClusterDNSIP)
	cfgPath := filepath.Join(n.Dir, "kubelet.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(n.Assets, "kubelet"),
		"--config="+cfgPath,
		"--kubeconfig="+kubeconfig,
		"--root-dir="+filepath.Join(n.Dir, "kubelet"),
		"--hostname-override="+NodeName,
		"--node-ip="+HostIP.String(),
		"--v=2",
	)
	cmd.Env = append(os.Environ(), "PATH="+n.Assets+":"+os.Getenv("PATH"))
	p, err := StartProcess("kubelet", cmd, filepath.Join(n.Dir, "kubelet.log"))
	if err != nil {
		return err
	}
	n.Kubelet = p
	n.record()
	return nil
}

func (n *Node) startProxy(ctx context.Context, o NodeOptions) error {
	kubeconfig, _, err := o.CP.AddUser("kube-proxy", "system:kube-proxy")
	if err != nil {
		return err
	}
	healthz, err := FreeAddr()
	if err != nil {
		return err
	}
	metrics, err := FreeAddr()
	if err != nil {
		return err
	}
	cfg := fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: %s
mode: nftables
hostnameOverride: %s
clusterCIDR: %s
nodePortAddresses: ["%s/32"]
healthzBindAddress: %s
metricsBindAddress: %s
# Leave the host's conntrack settings alone (zero: do not set).
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
  udpTimeout: 0s
  udpStreamTimeout: 0s
`, kubeconfig, NodeName, PodCIDR, HostIP, healthz, metrics)
	cfgPath := filepath.Join(n.Dir, "kube-proxy.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return err
	}
	p, err := StartProcess("kube-proxy", exec.Command(filepath.Join(n.Assets, "kube-proxy"), "--config="+cfgPath, "--v=2"),
		filepath.Join(n.Dir, "kube-proxy.log"))
	if err != nil {
		return err
	}
	n.Proxy = p
	n.record()
	return nil
}

func (n *Node) startScheduler(ctx context.Context, o NodeOptions) error {
	kubeconfig, _, err := o.CP.AddUser("kube-scheduler", "system:kube-scheduler")
	if err != nil {
		return err
	}
	port, err := FreePort()
	if err != nil {
		return err
	}
	p, err := StartProcess("kube-scheduler", exec.Command(filepath.Join(n.Assets, "kube-scheduler"),
		"--kubeconfig="+kubeconfig,
		"--leader-elect=false",
		"--bind-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(port),
		"--v=2",
	), filepath.Join(n.Dir, "kube-scheduler.log"))
	if err != nil {
		return err
	}
	n.Scheduler = p
	n.record()
	return nil
}

// waitReady waits until the Node object is Ready.
func (n *Node) waitReady(ctx context.Context, cp *ControlPlane) error {
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	err := Wait(ctx, "node "+NodeName+" to be Ready", func(ctx context.Context) (bool, string, error) {
		for _, p := range []*Process{n.Containerd, n.Kubelet, n.Proxy, n.Scheduler} {
			if exited, err := p.Exited(); exited {
				return false, "", fmt.Errorf("%s exited: %v; log:\n%s", p.Name, err, p.Log(40))
			}
		}
		node, err := cp.Clientset.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady {
				return c.Status == corev1.ConditionTrue, fmt.Sprintf("Ready=%s: %s", c.Status, c.Message), nil
			}
		}
		return false, "no Ready condition", nil
	})
	if err != nil {
		return fmt.Errorf("%w\nkubelet log:\n%s", err, n.Kubelet.Log(40))
	}
	return nil
}

// Stop stops the node and removes what it made: every Pod sandbox and
// container (through the CRI, which also releases their network
// namespaces and addresses), the processes, the shims, mounts under Dir,
// the cgroups under the node's cgroup root, kube-proxy's nftables tables
// and containerd's fixed directories. The Host's Close restores the
// sysctls and checks what is left.
func (n *Node) Stop(ctx context.Context) error {
	var errs []error
	stop := func(p *Process, timeout time.Duration) {
		if p == nil {
			return
		}
		if err := p.Stop(timeout); err != nil && strings.Contains(err.Error(), "killed") {
			errs = append(errs, err)
		}
	}
	stop(n.Scheduler, 0)
	stop(n.Kubelet, 0)
	if n.Containerd != nil {
		if exited, _ := n.Containerd.Exited(); !exited {
			cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			if _, err := n.Crictl(cctx, "rmp", "--all", "--force"); err != nil {
				errs = append(errs, err)
			}
			cancel()
		}
	}
	stop(n.Containerd, 0)
	stop(n.Proxy, 0)
	if err := cleanNode(ctx, n.Dir, n.logf); err != nil {
		errs = append(errs, err)
	}
	_ = os.Remove(staleStateFile)
	return errors.Join(errs...)
}
