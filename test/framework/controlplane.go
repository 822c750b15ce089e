package framework

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// AssetsEnv names the directory with kube-apiserver, etcd and
// kube-controller-manager.
const AssetsEnv = "KUBEBUILDER_ASSETS"

// ErrNoAssets means the control plane binaries are not where AssetsEnv
// says. The end-to-end test fails on it, never skips.
var ErrNoAssets = errors.New(AssetsEnv + " must name a directory with kube-apiserver, etcd and kube-controller-manager: " +
	"run `make test`, or `KUBEBUILDER_ASSETS=$(hack/build-control-plane.sh) go test ./test/e2e` " +
	"(hack/build-control-plane.sh builds them once, about 5.5 minutes cold, and prints the cached directory)")

// ControllerManagerControllers are the kube-controller-manager controllers
// the flow needs: Deployments, Jobs, StatefulSets and DaemonSets become
// Pods, namespaces get their "default" ServiceAccount and the
// kube-root-ca.crt ConfigMap that in-cluster clients trust, Services get
// EndpointSlices for kube-proxy, deleted namespaces are emptied and
// owned objects are collected.
var ControllerManagerControllers = []string{
	"deployment-controller", "replicaset-controller", "job-controller", "statefulset-controller", "daemonset-controller",
	"serviceaccount-controller", "root-ca-certificate-publisher-controller", "endpointslice-controller",
	"namespace-controller", "garbage-collector-controller", "pod-garbage-collector-controller",
	// Removes the not-ready taint once the node is Ready.
	"node-lifecycle-controller",
}

// ControlPlaneOptions configure StartControlPlane.
type ControlPlaneOptions struct {
	// Dir receives the certificates, kubeconfig files, etcd's data and the
	// logs. Required.
	Dir string
	// Assets is the directory with the binaries. Default: $KUBEBUILDER_ASSETS.
	Assets string
	// Address is where kube-apiserver listens and what it advertises as the
	// endpoint of the "kubernetes" Service. Default 127.0.0.1; a node's
	// Pods need an address they reach (Network.HostIP).
	Address net.IP
	// ServiceCIDR is --service-cluster-ip-range. Default 10.0.0.0/24 (no
	// node: nothing routes it).
	ServiceCIDR string
	// StartTimeout bounds the start of each component. Default 60 s.
	StartTimeout time.Duration
}

// ControlPlane is a running etcd, kube-apiserver and kube-controller-manager
// with a PKI of their own (TestCA): the API server's serving certificate
// names its address, the first Service IP and the kubernetes.default names,
// so that in-cluster clients of a node's Pods verify it as in a real
// cluster.
type ControlPlane struct {
	dir             string
	etcdURL, apiURL string

	// CA signs every certificate of the cluster and is the API server's
	// client CA.
	CA *TestCA
	// Config reaches the API server as a member of system:masters.
	Config *rest.Config
	// Clientset is a clientset for Config.
	Clientset kubernetes.Interface
	// Kubeconfig is the path of a kubeconfig for the same administrator
	// (user "admin", group system:masters), for Helm, kubectl and
	// kube-controller-manager.
	Kubeconfig string
	// ServiceAccountKey is the file with the key that signs service
	// account tokens.
	ServiceAccountKey string
	// KubeletClient is the API server's client certificate for kubelets.
	KubeletClient KeyPair

	Etcd, APIServer, ControllerManager *Process
	// APIServerLog is the file with kube-apiserver's output.
	APIServerLog string
}

// StartControlPlane starts etcd, kube-apiserver (Node and RBAC
// authorization, the default admission plugins and NodeRestriction,
// service account tokens) and kube-controller-manager with
// ControllerManagerControllers, and waits until all are healthy. On error
// everything started is stopped again.
func StartControlPlane(ctx context.Context, o ControlPlaneOptions) (_ *ControlPlane, err error) {
	if o.Assets == "" {
		o.Assets = os.Getenv(AssetsEnv)
	}
	if o.Assets == "" {
		return nil, fmt.Errorf("%w (it is not set)", ErrNoAssets)
	}
	for _, bin := range []string{"kube-apiserver", "etcd", "kube-controller-manager"} {
		if _, err := os.Stat(filepath.Join(o.Assets, bin)); err != nil {
			return nil, fmt.Errorf("%w (%s: %v)", ErrNoAssets, bin, err)
		}
	}
	if o.Address == nil {
		o.Address = net.IPv4(127, 0, 0, 1)
	}
	if o.ServiceCIDR == "" {
		o.ServiceCIDR = "10.0.0.0/24"
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 60 * time.Second
	}
	cp := &ControlPlane{dir: o.Dir}
	defer func() {
		if err != nil {
			_ = cp.Stop()
		}
	}()
	if cp.CA, err = NewTestCA(filepath.Join(o.Dir, "pki")); err != nil {
		return nil, err
	}
	if err := cp.startEtcd(ctx, o); err != nil {
		return nil, err
	}
	if err := cp.startAPIServer(ctx, o); err != nil {
		return nil, err
	}
	if cp.Kubeconfig, cp.Config, err = cp.AddUser("admin", "admin", "system:masters"); err != nil {
		return nil, err
	}
	if cp.Clientset, err = kubernetes.NewForConfig(cp.Config); err != nil {
		return nil, err
	}
	if err := cp.waitAPIServer(ctx, o); err != nil {
		return nil, err
	}
	if cp.ControllerManager, err = startControllerManager(ctx, o, cp); err != nil {
		return nil, err
	}
	return cp, nil
}

func (c *ControlPlane) startEtcd(ctx context.Context, o ControlPlaneOptions) error {
	client, err := FreePort()
	if err != nil {
		return err
	}
	peer, err := FreePort()
	if err != nil {
		return err
	}
	clientURL := "http://127.0.0.1:" + strconv.Itoa(client)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peer)
	cmd := exec.Command(filepath.Join(o.Assets, "etcd"),
		"--name=default",
		"--data-dir="+filepath.Join(o.Dir, "etcd"),
		"--listen-client-urls="+clientURL,
		"--advertise-client-urls="+clientURL,
		"--listen-peer-urls="+peerURL,
		"--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=default="+peerURL,
		// A test cluster's data is thrown away: no fsync, as envtest.
		"--unsafe-no-fsync=true",
	)
	p, err := StartProcess("etcd", cmd, filepath.Join(o.Dir, "etcd.log"))
	if err != nil {
		return err
	}
	c.Etcd = p
	ctx, cancel := context.WithTimeout(ctx, o.StartTimeout)
	defer cancel()
	hc := &http.Client{Timeout: 2 * time.Second}
	err = Wait(ctx, "etcd "+clientURL+"/health", func(ctx context.Context) (bool, string, error) {
		if exited, err := p.Exited(); exited {
			return false, "", fmt.Errorf("etcd exited: %v; log:\n%s", err, p.Log(30))
		}
		return httpOK(ctx, hc, clientURL+"/health")
	})
	if err != nil {
		return err
	}
	c.etcdURL = clientURL
	return nil
}

func (c *ControlPlane) startAPIServer(ctx context.Context, o ControlPlaneOptions) error {
	port, err := FreePortOn(o.Address)
	if err != nil {
		return err
	}
	_, svcNet, err := net.ParseCIDR(o.ServiceCIDR)
	if err != nil {
		return fmt.Errorf("ServiceCIDR %q: %w", o.ServiceCIDR, err)
	}
	firstServiceIP := FirstIP(svcNet)
	pki := filepath.Join(o.Dir, "pki")
	serving, err := c.CA.Issue(CertRequest{
		CommonName: "kube-apiserver",
		DNSNames:   []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		IPs:        []net.IP{net.IPv4(127, 0, 0, 1), o.Address, firstServiceIP},
		Server:     true,
	})
	if err != nil {
		return err
	}
	servingCert, servingKey, err := serving.Write(filepath.Join(pki, "apiserver"))
	if err != nil {
		return err
	}
	if c.KubeletClient, err = c.CA.Issue(CertRequest{CommonName: "kube-apiserver-kubelet-client", Organizations: []string{"system:masters"}}); err != nil {
		return err
	}
	kubeletCert, kubeletKey, err := c.KubeletClient.Write(filepath.Join(pki, "kubelet-client"))
	if err != nil {
		return err
	}
	c.ServiceAccountKey = filepath.Join(pki, "sa.key")
	saPub := filepath.Join(pki, "sa.pub")
	if err := writeECKey(c.ServiceAccountKey, saPub); err != nil {
		return err
	}
	c.apiURL = "https://" + net.JoinHostPort(o.Address.String(), strconv.Itoa(port))
	args := []string{
		"--etcd-servers=" + c.etcdURL,
		"--bind-address=" + o.Address.String(),
		"--advertise-address=" + o.Address.String(),
		"--secure-port=" + strconv.Itoa(port),
		"--cert-dir=" + filepath.Join(pki, "apiserver"),
		"--tls-cert-file=" + servingCert,
		"--tls-private-key-file=" + servingKey,
		"--client-ca-file=" + c.CA.File,
		// Reach kubelets at their node IP: a node name would be looked up
		// in this machine's DNS, outside the machine.
		"--kubelet-preferred-address-types=InternalIP",
		"--kubelet-certificate-authority=" + c.CA.File,
		"--kubelet-client-certificate=" + kubeletCert,
		"--kubelet-client-key=" + kubeletKey,
		"--service-cluster-ip-range=" + o.ServiceCIDR,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + saPub,
		"--service-account-signing-key-file=" + c.ServiceAccountKey,
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NodeRestriction",
		"--allow-privileged=true",
		// Webhooks and aggregated APIs are called at their Service's
		// cluster IP, which kube-proxy routes on the node.
		"--enable-aggregator-routing=false",
	}
	if o.Address.IsLoopback() {
		// No node, no in-cluster client: the "kubernetes" Service needs
		// no endpoint (and a loopback one is refused).
		args = append(args, "--endpoint-reconciler-type=none")
	}
	cmd := exec.Command(filepath.Join(o.Assets, "kube-apiserver"), args...)
	p, err := StartProcess("kube-apiserver", cmd, filepath.Join(o.Dir, "kube-apiserver.log"))
	if err != nil {
		return err
	}
	c.APIServer, c.APIServerLog = p, p.LogPath
	return nil
}

// waitAPIServer waits until /readyz answers 200 to the administrator.
func (c *ControlPlane) waitAPIServer(ctx context.Context, o ControlPlaneOptions) error {
	hc, err := rest.HTTPClientFor(c.Config)
	if err != nil {
		return err
	}
	hc.Timeout = 2 * time.Second
	ctx, cancel := context.WithTimeout(ctx, o.StartTimeout)
	defer cancel()
	return Wait(ctx, "kube-apiserver "+c.apiURL+"/readyz", func(ctx context.Context) (bool, string, error) {
		if exited, err := c.APIServer.Exited(); exited {
			return false, "", fmt.Errorf("kube-apiserver exited: %v; log:\n%s", err, c.APIServer.Log(30))
		}
		return httpOK(ctx, hc, c.apiURL+"/readyz")
	})
}

// AddUser issues a client certificate with common name user and the groups
// as organizations, and writes a kubeconfig for it to <Dir>/<name>.kubeconfig.
// To act as a service account, use user
// "system:serviceaccount:<namespace>:<name>": RBAC bindings to that
// ServiceAccount then apply.
func (c *ControlPlane) AddUser(name, user string, groups ...string) (path string, cfg *rest.Config, err error) {
	kp, err := c.CA.Issue(CertRequest{CommonName: user, Organizations: groups})
	if err != nil {
		return "", nil, fmt.Errorf("adding user %s: %w", user, err)
	}
	path = filepath.Join(c.dir, name+".kubeconfig")
	kc := clientcmdapi.NewConfig()
	kc.Clusters["test"] = &clientcmdapi.Cluster{Server: c.apiURL, CertificateAuthorityData: c.CA.PEM}
	kc.AuthInfos[name] = &clientcmdapi.AuthInfo{ClientCertificateData: kp.CertPEM, ClientKeyData: kp.KeyPEM}
	kc.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: name}
	kc.CurrentContext = "test"
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		return "", nil, fmt.Errorf("writing the kubeconfig of %s: %w", user, err)
	}
	cfg = &rest.Config{
		Host:            c.apiURL,
		TLSClientConfig: rest.TLSClientConfig{CAData: c.CA.PEM, CertData: kp.CertPEM, KeyData: kp.KeyPEM},
		QPS:             100,
		Burst:           200,
	}
	return path, cfg, nil
}

// APIServerURL is the API server's https URL.
func (c *ControlPlane) APIServerURL() string { return c.apiURL }

// Stop stops kube-controller-manager, kube-apiserver and etcd, in that
// order. Their files stay in Dir.
func (c *ControlPlane) Stop() error {
	var errs []error
	for _, p := range []*Process{c.ControllerManager, c.APIServer, c.Etcd} {
		if p == nil {
			continue
		}
		// They exit non-zero on SIGTERM; only a kill is worth reporting.
		if err := p.Stop(0); err != nil && strings.Contains(err.Error(), "killed") {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func startControllerManager(ctx context.Context, o ControlPlaneOptions, cp *ControlPlane) (*Process, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	certDir := filepath.Join(o.Dir, "kube-controller-manager")
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		return nil, err
	}
	cmd := exec.Command(filepath.Join(o.Assets, "kube-controller-manager"),
		"--kubeconfig="+cp.Kubeconfig,
		// No authentication or authorization kubeconfig: only /healthz
		// is used, which is always allowed.
		"--controllers="+strings.Join(ControllerManagerControllers, ","),
		"--leader-elect=false",
		"--bind-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(port),
		"--cert-dir="+certDir,
		"--root-ca-file="+cp.CA.File,
		"--service-account-private-key-file="+cp.ServiceAccountKey,
		"--service-cluster-ip-range="+o.ServiceCIDR,
		// Roll out at once: the defaults batch and delay syncs for large
		// clusters.
		"--concurrent-deployment-syncs=2",
		"--concurrent-replicaset-syncs=2",
	)
	p, err := StartProcess("kube-controller-manager", cmd, filepath.Join(o.Dir, "kube-controller-manager.log"))
	if err != nil {
		return nil, err
	}
	healthz := fmt.Sprintf("https://127.0.0.1:%d/healthz", port)
	// Its serving certificate is self-signed, made at start, on loopback.
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // a self-signed loopback health check
	}}
	ctx, cancel := context.WithTimeout(ctx, o.StartTimeout)
	defer cancel()
	err = Wait(ctx, "kube-controller-manager "+healthz, func(ctx context.Context) (bool, string, error) {
		if exited, err := p.Exited(); exited {
			return false, "", fmt.Errorf("kube-controller-manager exited: %v; log:\n%s", err, p.Log(30))
		}
		return httpOK(ctx, hc, healthz)
	})
	if err != nil {
		_ = p.Stop(0)
		return nil, fmt.Errorf("%w\nkube-controller-manager log:\n%s", err, p.Log(30))
	}
	return p, nil
}

// writeECKey writes a new P-256 key, PKCS#8 PEM, to keyPath, and its
// public key, PKIX PEM, to pubPath.
func writeECKey(keyPath, pubPath string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return err
	}
	if err := os.WriteFile(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644); err != nil {
		return err
	}
	return os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}

// httpOK is a Wait check: done when GET url answers 200.
func httpOK(ctx context.Context, c *http.Client, url string) (bool, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return false, err.Error(), nil
	}
	body := readSome(resp)
	if resp.StatusCode == http.StatusOK {
		return true, "", nil
	}
	return false, fmt.Sprintf("GET %s: %s %s", url, resp.Status, body), nil
}
