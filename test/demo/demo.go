package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/athenz-injector/athenz-injector/test/framework"
)

// options are the demo's flags.
type options struct {
	keep   bool
	binDir string
	// playKubelet plays the kubelet even where a node could run.
	playKubelet bool
	// freePorts (tests) runs a played sidecar on free ports, not 8081/8082.
	freePorts bool
}

func run(ctx context.Context, out *printer, o options) (err error) {
	opts := framework.ScenarioOptions{}
	noNode := framework.CheckNodeHost()
	if noNode == nil && o.playKubelet {
		noNode = errors.New("--play-kubelet")
	}
	if noNode != nil {
		opts.PlayKubelet, opts.PreferPodPorts = true, !o.freePorts
		if o.binDir != "" {
			opts.Binaries = framework.Binaries{Injector: filepath.Join(o.binDir, "injector"), Sidecar: filepath.Join(o.binDir, "sidecar")}
		}
	}
	keep := o.keep
	s, err := framework.NewScenario(opts)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil && ctx.Err() == nil {
			fmt.Fprintf(os.Stderr, "\nwhat was running:\n%s", s.Diagnose(context.Background()))
		}
		out.heading("Shutting down")
		if s.RealNode() {
			out.say("stopping the Pods, the node (kube-scheduler, kubelet, containerd, kube-proxy), the fake ZTS,")
			out.say("kube-controller-manager, kube-apiserver and etcd; removing the bridge, routes, mounts and cgroups,")
			out.say("restoring the kernel settings the kubelet changed, and %s", s.Dir)
		} else {
			out.say("stopping the sidecar, the injector, the fake ZTS, kube-controller-manager, kube-apiserver and etcd;")
			out.say("removing %s", s.Dir)
		}
		if cerr := s.Close(); cerr != nil {
			out.say("while stopping: %v", cerr)
			if err == nil {
				err = cerr
			}
		} else {
			out.done("all stopped, nothing left behind")
		}
		if err == nil {
			out.line("\ndemo done in %.1fs.", time.Since(out.start).Seconds())
		}
	}()

	out.line("%s", out.bold("athenz-injector demo: an annotated Deployment gets an Athenz identity, on real parts, on this machine."))
	if noNode != nil {
		out.line("%v: the demo plays the kubelet for the sidecar container (make demo as root on Linux runs a real node).", noNode)
		return runPlayed(ctx, out, s, keep)
	}
	return runNode(ctx, out, s, keep)
}

// runNode is the demo on a real node: the Pods run in containerd.
func runNode(ctx context.Context, out *printer, s *framework.Scenario, keep bool) error {
	out.line("kubectl commands are shown as you would type them; most run through the Kubernetes API, the last ones with kubectl.")
	out.line("Everything stays on this machine (198.18.0.0/15 on the bridge %s, loopback) and is removed at the end (Ctrl-C is safe).", framework.BridgeName)

	out.heading("A one-node Kubernetes cluster on this machine")
	out.say("kube-apiserver, etcd, kube-controller-manager, kube-scheduler; a node: containerd with runc and the bridge CNI plugin,")
	out.say("the kubelet and kube-proxy, all built from source by hack/. No registry: the injector, sidecar and app images are")
	out.say("OCI tarballs written from this checkout's binaries (as the Dockerfiles describe them) and imported into containerd.")
	if err := s.Start(ctx); err != nil {
		return err
	}
	out.done("kube-apiserver %s; node %s Ready; kubeconfig %s", s.CP.APIServerURL(), s.Node.Name, s.CP.Kubeconfig)

	if err := startZTS(out, s); err != nil {
		return err
	}
	if err := installChart(ctx, out, s); err != nil {
		return err
	}

	out.heading("The injector runs in the cluster")
	out.say("The chart's Deployment: two replicas, its own CA and serving certificate (certs.mode=auto), the webhooks and the")
	out.say("identity provider callback behind Services. The fake ZTS calls the callback at its Service's cluster IP.")
	if err := s.StartInjector(ctx); err != nil {
		return err
	}
	p, err := s.WaitProfileReady(ctx)
	if err != nil {
		return err
	}
	if err := kubectl(ctx, out, s, "-n", framework.ReleaseNamespace, "get", "pods", "-o", "wide"); err != nil {
		return err
	}
	out.done("injector ready, provider callback at %s; SidecarProfile %s/%s is Ready", s.ProviderURL, p.Namespace, p.Name)

	first, pod, err := deployAndAnnotate(ctx, out, s)
	if err != nil {
		return err
	}

	out.heading("The injected Pod starts")
	out.say("The kubelet starts the sidecar first (a native sidecar); it makes a key, registers with ZTS, which asks the")
	out.say("callback about the Pod; once it has the certificate and the prefetched token its startup probe passes and the app starts.")
	began := time.Now()
	if _, err := s.WaitPod(ctx, pod.Namespace, pod.Name, 2*time.Minute, "Ready", framework.PodReady); err != nil {
		return err
	}
	if err := s.WaitDeploymentReady(ctx, framework.AppNamespace, framework.AppName, time.Minute); err != nil {
		return err
	}
	if err := kubectl(ctx, out, s, "-n", framework.AppNamespace, "get", "pods", "-o", "wide"); err != nil {
		return err
	}
	out.done("Pod %s is Ready %.1fs after it was created; the rollout replaced %s", pod.Name, time.Since(began).Seconds(), first.Name)

	out.heading("The app's view: kubectl exec into the app container")
	out.say("The app container runs as UID %d with a read-only root file system and no capabilities; its image carries a", framework.AppUID)
	out.say("small curl (test/images/testapp). Long tokens are shortened here.")
	echo := framework.StartEchoOn(framework.HostIP)
	defer echo.Close()
	execCurl := []string{"-n", framework.AppNamespace, "exec", "deploy/" + framework.AppName, "-c", framework.AppContainer, "--", "curl", "-s"}
	if err := kubectlShow(ctx, out, s, append(execCurl, "localhost:8081/svccert"), func(b []byte) string {
		return firstLines(string(b), 2) + "\n...\n(decoded: " + certSummary(b) + ")"
	}); err != nil {
		return err
	}
	if err := kubectlShow(ctx, out, s, append(execCurl, "localhost:8081/accesstoken?domain="+framework.Domain+"&role="+framework.Role), nil); err != nil {
		return err
	}
	if err := kubectlShow(ctx, out, s, append(execCurl, "-x", "localhost:8081", "-H", "Athenz-Domain: "+framework.Domain, "-H", "Athenz-Role: "+framework.Role, echo.URL+"/hello"), nil); err != nil {
		return err
	}
	out.say("  ^ the upstream (an echo server on the host) got Athenz-Role-Auth; the proxy removed Athenz-Domain and Athenz-Role.")
	if err := kubectlShow(ctx, out, s, append(execCurl, "localhost:8081/roletoken?domain="+framework.Domain+"&role="+framework.Role), nil); err != nil {
		return err
	}
	out.done("the injected sidecar serves the Pod's identity and tokens to the app")

	if keep {
		out.heading("Keeping everything running (--keep)")
		out.say("export KUBECONFIG=%s", s.CP.Kubeconfig)
		out.say("%s/kubectl -n %s get pods", s.Node.Assets, framework.AppNamespace)
		out.say("%s/crictl --config %s ps", s.Node.Assets, s.Node.CrictlConfig)
		out.say("Logs: %s. Press Ctrl-C to stop and clean up.", s.Dir)
		<-ctx.Done()
	}
	return nil
}

// runPlayed is the demo where the machine cannot run a node: the control
// plane and the injector run as local processes, and the demo plays the
// kubelet for the sidecar container.
func runPlayed(ctx context.Context, out *printer, s *framework.Scenario, keep bool) error {
	out.line("kubectl commands are shown as you would type them; the demo performs them through the Kubernetes API.")
	out.line("Everything listens on 127.0.0.1 and is removed at the end (Ctrl-C is safe). Files: %s", s.Dir)

	out.heading("A Kubernetes control plane")
	out.say("kube-apiserver and etcd, and kube-controller-manager, built from source by hack/build-control-plane.sh.")
	out.say("There is no node: Pods stay Pending, and the demo plays the kubelet for the one container that matters.")
	if err := s.Start(ctx); err != nil {
		return err
	}
	out.done("kube-apiserver %s; kubeconfig %s", s.CP.APIServerURL(), s.CP.Kubeconfig)
	if err := startZTS(out, s); err != nil {
		return err
	}
	if err := installChart(ctx, out, s); err != nil {
		return err
	}

	out.heading("Start the injector")
	out.say("The chart ran with injector.enabled=false: the webhooks call an injector outside the cluster, this process,")
	out.say("acting as the chart's ServiceAccount %s/%s (so it gets exactly the chart's RBAC).", framework.ReleaseNamespace, framework.ReleaseName)
	if err := s.StartInjector(ctx); err != nil {
		return err
	}
	out.longCmd("injector", relativeArgs(s.Injector.Args, s.Dir))
	p, err := s.WaitProfileReady(ctx)
	if err != nil {
		return err
	}
	out.done("injector ready: webhooks on %s, provider callback on %s; SidecarProfile %s/%s is Ready",
		s.Injector.WebhookURL, s.ProviderURL, p.Namespace, p.Name)

	_, pod, err := deployAndAnnotate(ctx, out, s)
	if err != nil {
		return err
	}

	out.heading("Play kubelet: run the Pod's sidecar container as a local process")
	out.say("Exactly the container's command, args and environment: downward-API values from the Pod, the Pod's IP set to 127.0.0.1,")
	out.say("a service account token minted with the TokenRequest API for the projected volume, volumes in local directories.")
	out.say("The one deviation: its listen addresses get loopback ports of this machine (8081/8082 when free).")
	c, took, err := s.RunSidecar(ctx, pod)
	if err != nil {
		return err
	}
	describeRun(out, c, s.Dir)
	cert, _ := os.ReadFile(filepath.Join(identityDir(c), "service.cert.pem"))
	out.done("sidecar ready after %.1fs: identity %s from ZTS, %s prefetched", took.Seconds(), certSubject(cert), framework.Prefetch)

	out.heading("The app's view: curl the sidecar")
	out.say("What `kubectl -n %s exec deploy/%s -- curl ...` shows in a cluster; here %s is the app's ATHENZ_SIDECAR_URL", framework.AppNamespace, framework.AppName, s.SidecarURL)
	out.say("(long tokens are shortened in this output).")
	echo := framework.StartEcho()
	defer echo.Close()
	api := s.SidecarURL
	curl(ctx, out, []string{"-s", api + "/svccert"}, func(b []byte) string {
		return firstLines(string(b), 2) + "\n...\n(decoded: " + certSummary(b) + ")"
	})
	curl(ctx, out, []string{"-s", api + "/accesstoken?domain=" + framework.Domain + "&role=" + framework.Role}, nil)
	curl(ctx, out, []string{"-s", "-x", api, "-H", "Athenz-Domain: " + framework.Domain, "-H", "Athenz-Role: " + framework.Role, echo.URL + "/hello"}, nil)
	out.say("  ^ the upstream (an echo server) got Athenz-Role-Auth; the proxy removed Athenz-Domain and Athenz-Role.")
	curl(ctx, out, []string{"-s", api + "/roletoken?domain=" + framework.Domain + "&role=" + framework.Role}, nil)
	out.done("the injected sidecar serves the Pod's identity and tokens")

	if keep {
		out.heading("Keeping everything running (--keep)")
		out.say("export KUBECONFIG=%s", s.CP.Kubeconfig)
		out.say("curl -s %s/ntoken", api)
		out.say("Logs: %s/*.log and %s. Press Ctrl-C to stop and clean up.", s.Dir, c.LogPath)
		<-ctx.Done()
	}
	return nil
}

func startZTS(out *printer, s *framework.Scenario) error {
	out.heading("A fake ZTS (Athenz's token service)")
	if err := s.StartZTS(); err != nil {
		return err
	}
	out.say("%s: the public ZTS REST API with a throwaway CA and signing key.", s.ZTS.URL())
	out.say("Athenz policy: role %s:role.%s has member %s.%s (namespace %s is domain %s, service account %s is service %s).",
		framework.Domain, framework.Role, framework.Domain, framework.Service, framework.AppNamespace, framework.Domain, framework.AppName, framework.Service)
	out.say("Before it signs a Pod's certificate, ZTS asks the provider service %s to confirm the Pod: the injector's", framework.Provider)
	out.say("identity provider callback, as ZTS asks an HTTP provider.")
	out.done("fake ZTS up")
	return nil
}

func installChart(ctx context.Context, out *printer, s *framework.Scenario) error {
	out.heading("Install the chart with Helm")
	out.cmd("kubectl create namespace %s", framework.ReleaseNamespace)
	out.cmd("kubectl -n %s create configmap %s --from-file=%s=zts-ca.pem   # the ZTS CA, copied into every namespace by the injector",
		framework.ReleaseNamespace, framework.ZTSCAConfigMap, framework.ZTSCAKey)
	if s.RealNode() {
		out.cmd("kubectl -n %s create secret tls %s --cert=provider.crt --key=provider.key   # the callback's certificate, CN %s",
			framework.ReleaseNamespace, framework.ProviderCertSecret, framework.Provider)
	}
	helmOut, err := s.InstallChart(ctx)
	if err != nil {
		return err
	}
	values, _ := os.ReadFile(s.ValuesFile)
	out.longCmd("helm", relativeArgs(s.HelmCommand, s.Dir))
	out.say("values.yaml:")
	out.output(string(values))
	out.say("helm says:")
	out.output(firstLines(helmOut, 6))
	out.done("CRD, RBAC, MutatingWebhookConfiguration and SidecarProfile installed")
	return nil
}

func deployApp(ctx context.Context, out *printer, s *framework.Scenario) (*corev1.Pod, error) {
	out.heading("Deploy an app that has not opted in")
	out.cmd("kubectl create namespace %s", framework.AppNamespace)
	out.cmd("kubectl -n %s create serviceaccount %s", framework.AppNamespace, framework.AppName)
	out.cmd("kubectl -n %s create deployment %s --image=%s   # with serviceAccountName: %s, runAsUser: %d", framework.AppNamespace, framework.AppName, framework.AppImage, framework.AppName, framework.AppUID)
	_, first, err := s.DeployApp(ctx)
	if err != nil {
		return nil, err
	}
	out.done("Pod %s: containers %s, no sidecar; nothing Athenz-specific was created in namespace %s", first.Name, containerNames(first.Spec.Containers), framework.AppNamespace)
	return first, nil
}

// deployAndAnnotate deploys the app, then opts it in: the user's part of
// the day up to the injected Pod. It returns the first (plain) Pod and the
// injected one.
func deployAndAnnotate(ctx context.Context, out *printer, s *framework.Scenario) (first, pod *corev1.Pod, err error) {
	if first, err = deployApp(ctx, out, s); err != nil {
		return nil, nil, err
	}
	pod, err = annotate(ctx, out, s, first)
	return first, pod, err
}

func annotate(ctx context.Context, out *printer, s *framework.Scenario, first *corev1.Pod) (*corev1.Pod, error) {
	out.heading("Opt in: annotate the Deployment")
	out.cmd("%s", framework.AnnotateCommand)
	dep, err := s.Annotate(ctx)
	if err != nil {
		return nil, err
	}
	out.say("The workload webhook copied %s=%s into the Pod template, so kube-controller-manager rolls out a new ReplicaSet.",
		framework.AnnotationInject, dep.Spec.Template.Annotations[framework.AnnotationInject])
	rs, pod, err := s.WaitInjectedPod(ctx)
	if err != nil {
		return nil, err
	}
	describeInjected(out, pod)
	if !s.RealNode() {
		out.say("The old Pod %s stays until the new one is Ready, which without a kubelet it never becomes.", first.Name)
	}
	out.done("ReplicaSet %s created Pod %s, injected by the Pod webhook", rs.Name, pod.Name)
	return pod, nil
}

// kubectl runs the node's kubectl, printing the command and its output.
func kubectl(ctx context.Context, out *printer, s *framework.Scenario, args ...string) error {
	return kubectlShow(ctx, out, s, args, nil)
}

// kubectlShow runs kubectl with args, printing the command and its
// (shortened) output; show, if set, formats the output.
func kubectlShow(ctx context.Context, out *printer, s *framework.Scenario, args []string, show func([]byte) string) error {
	out.cmd("kubectl %s", shellQuote(args))
	body, err := s.Kubectl(ctx, args...)
	if err != nil {
		return err
	}
	if show != nil {
		out.output(show([]byte(body)))
		return nil
	}
	out.output(shorten(body))
	return nil
}

// describeInjected prints what the injector added to pod.
func describeInjected(out *printer, pod *corev1.Pod) {
	out.say("Pod %s as stored by the API server:", pod.Name)
	out.say("  annotation %s: %s", framework.AnnotationStatus, pod.Annotations[framework.AnnotationStatus])
	for _, c := range pod.Spec.InitContainers {
		native := ""
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			native = ", restartPolicy Always (a native sidecar)"
		}
		probe := ""
		if p := c.StartupProbe; p != nil && p.HTTPGet != nil {
			probe = fmt.Sprintf(", startup probe GET :%s%s", p.HTTPGet.Port.String(), p.HTTPGet.Path)
		}
		out.say("  init container %s: image %s%s%s", c.Name, c.Image, native, probe)
		var env []string
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
				env = append(env, e.Name+"=<"+e.ValueFrom.FieldRef.FieldPath+">")
			} else {
				env = append(env, e.Name+"="+e.Value)
			}
		}
		for _, l := range wrap(env, 110) {
			out.say("      %s", l)
		}
	}
	for _, v := range pod.Spec.Volumes {
		out.say("  volume %s: %s", v.Name, volumeSummary(v))
	}
	for _, c := range pod.Spec.Containers {
		var mounts, env []string
		for _, m := range c.VolumeMounts {
			ro := ""
			if m.ReadOnly {
				ro = " (read-only)"
			}
			mounts = append(mounts, fmt.Sprintf("%s at %s%s", m.Name, m.MountPath, ro))
		}
		for _, e := range c.Env {
			env = append(env, e.Name+"="+e.Value)
		}
		out.say("  container %s: mounts %s", c.Name, strings.Join(mounts, ", "))
		for _, l := range wrap(env, 110) {
			out.say("      %s", l)
		}
	}
}

func volumeSummary(v corev1.Volume) string {
	switch {
	case v.EmptyDir != nil:
		return "emptyDir, medium " + string(v.EmptyDir.Medium)
	case v.Projected != nil && len(v.Projected.Sources) == 1 && v.Projected.Sources[0].ServiceAccountToken != nil:
		t := v.Projected.Sources[0].ServiceAccountToken
		return fmt.Sprintf("projected service account token, audience %q, %ds", t.Audience, ptrValue(t.ExpirationSeconds))
	case v.ConfigMap != nil:
		return "ConfigMap " + v.ConfigMap.Name
	case v.Secret != nil:
		return "Secret " + v.Secret.SecretName
	}
	return "other"
}

// describeRun prints how the container was mapped to this machine; paths
// are relative to dir.
func describeRun(out *printer, c *framework.Container, dir string) {
	rel := func(p string) string { return strings.TrimPrefix(p, dir+string(filepath.Separator)) }
	for _, t := range c.Tokens {
		out.say("token: service account %s, audience %v, %ds, bound to Pod %s", t.ServiceAccount, t.Audiences, t.ExpirationSeconds, t.BoundPod)
	}
	for _, m := range c.Command.Mounts {
		out.say("volume %s: %s -> %s", m.Volume, m.MountPath, rel(m.Local))
	}
	var ports []string
	for _, p := range framework.ListenPorts(c.Spec) {
		ports = append(ports, fmt.Sprintf("%d -> %s", p, c.Ports[p]))
	}
	out.say("ports: %s", strings.Join(ports, ", "))
	out.cmd("%s   # %s: ./cmd/sidecar built here, for image %s",
		strings.TrimSpace(fmt.Sprintf("env -i <the container's %d variables, paths and ports mapped> %s %s",
			len(c.Command.Env), filepath.Base(c.Command.Path), strings.Join(c.Command.Args, " "))),
		filepath.Base(c.Command.Path), c.Spec.Image)
	out.say("log: %s", rel(c.LogPath))
}

// curl runs curl with args, printing the command and its (shortened)
// output; show, if set, formats the output. Without curl on the machine
// it makes the same GET in Go and says so.
func curl(ctx context.Context, out *printer, args []string, show func([]byte) string) {
	out.cmd("curl %s", shellQuote(args))
	var body []byte
	if path, err := exec.LookPath("curl"); err == nil {
		cmd := exec.CommandContext(ctx, path, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		body, err = cmd.Output()
		if err != nil {
			out.output(fmt.Sprintf("curl failed: %v %s", err, stderr.String()))
			return
		}
	} else {
		out.say("(curl is not installed here: the same request, made in Go)")
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, args[len(args)-1], nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			out.output(err.Error())
			return
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if show != nil {
		out.output(show(body))
		return
	}
	out.output(shorten(string(body)))
}

func identityDir(c *framework.Container) string {
	for _, m := range c.Command.Mounts {
		if m.MountPath == "/var/run/athenz" {
			return m.Local
		}
	}
	return ""
}

func certSubject(pemData []byte) string {
	if b, _ := pem.Decode(pemData); b != nil {
		if c, err := x509.ParseCertificate(b.Bytes); err == nil {
			return "CN=" + c.Subject.CommonName
		}
	}
	return "(no certificate)"
}

func certSummary(pemData []byte) string {
	b, _ := pem.Decode(pemData)
	if b == nil {
		return "no PEM"
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return err.Error()
	}
	var uris []string
	for _, u := range c.URIs {
		uris = append(uris, u.String())
	}
	return fmt.Sprintf("subject CN=%s, issuer CN=%s, SAN DNS %v, URI %v, IP %v, valid until %s",
		c.Subject.CommonName, c.Issuer.CommonName, c.DNSNames, uris, c.IPAddresses, c.NotAfter.UTC().Format(time.RFC3339))
}

func containerNames(cs []corev1.Container) string {
	var names []string
	for _, c := range cs {
		names = append(names, c.Name)
	}
	return "[" + strings.Join(names, ", ") + "]"
}

// relativeArgs shortens paths under dir to their base names, for display.
func relativeArgs(args []string, dir string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = strings.ReplaceAll(a, dir+string(filepath.Separator), "")
	}
	return out
}

func firstLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}

// wrap joins words into lines of at most width characters.
func wrap(words []string, width int) []string {
	var lines []string
	var cur string
	for _, w := range words {
		if cur != "" && len(cur)+1+len(w) > width {
			lines = append(lines, cur)
			cur = ""
		}
		if cur != "" {
			cur += " "
		}
		cur += w
	}
	if cur != "" {
		lines = append(lines, cur)
	}
	return lines
}

func shellQuote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, " &?;'\"$*") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}

func ptrValue[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
