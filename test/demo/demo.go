package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
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

func run(ctx context.Context, out *printer, keep bool, binDir string) (err error) {
	opts := framework.ScenarioOptions{PreferPodPorts: true, PlayKubelet: true}
	if binDir != "" {
		opts.Binaries = framework.Binaries{Injector: filepath.Join(binDir, "injector"), Sidecar: filepath.Join(binDir, "sidecar")}
	}
	s, err := framework.NewScenario(opts)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil && ctx.Err() == nil {
			fmt.Fprintf(os.Stderr, "\nwhat was running:\n%s", s.Diagnose(context.Background()))
		}
		out.heading("Shutting down")
		out.say("stopping the sidecar, the injector, the fake ZTS, kube-controller-manager, kube-apiserver and etcd;")
		out.say("removing %s", s.Dir)
		if cerr := s.Close(); cerr != nil {
			out.say("while stopping: %v", cerr)
		} else {
			out.done("all stopped, nothing left behind")
		}
		if err == nil {
			out.line("\ndemo done in %.1fs.", time.Since(out.start).Seconds())
		}
	}()

	out.line("%s", out.bold("athenz-injector demo: an annotated Deployment gets an Athenz identity, on real parts, on this machine."))
	out.line("kubectl commands are shown as you would type them; the demo performs them through the Kubernetes API.")
	out.line("Everything listens on 127.0.0.1 and is removed at the end (Ctrl-C is safe). Files: %s", s.Dir)

	// 1. Control plane.
	out.heading("A Kubernetes control plane")
	out.say("kube-apiserver and etcd, and kube-controller-manager (controllers: %s),", strings.Join(framework.ControllerManagerControllers, ", "))
	out.say("built from source by hack/build-control-plane.sh. There is no scheduler and no kubelet: Pods stay Pending,")
	out.say("and in step 7 the demo plays the kubelet for the one container that matters.")
	if binDir == "" {
		out.say("Meanwhile: go build ./cmd/injector ./cmd/sidecar.")
	}
	if err := s.Start(ctx); err != nil {
		return err
	}
	out.done("kube-apiserver %s; kubeconfig %s", s.CP.APIServerURL(), s.CP.Kubeconfig)

	// 2. Fake ZTS.
	out.heading("A fake ZTS (Athenz's token service)")
	if err := s.StartZTS(); err != nil {
		return err
	}
	out.say("%s: the public ZTS REST API with a throwaway CA and signing key.", s.ZTS.URL())
	out.say("Athenz policy: role %s:role.%s has member %s.%s (namespace %s is domain %s, service account %s is service %s).",
		framework.Domain, framework.Role, framework.Domain, framework.Service, framework.AppNamespace, framework.Domain, framework.AppName, framework.Service)
	out.say("Before it signs a Pod's certificate, ZTS asks the provider service %s to confirm the Pod: here the", framework.Provider)
	out.say("injector's identity provider callback at %s (step 4), as ZTS asks an HTTP provider.", s.ProviderURL)
	out.done("fake ZTS up")

	// 3. Helm.
	out.heading("Install the chart with Helm")
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
	out.done("CRD, RBAC, MutatingWebhookConfiguration (calling https://127.0.0.1, manual certificates) and SidecarProfile installed")

	// 4. Injector.
	out.heading("Start the injector")
	out.say("The chart ran with injector.enabled=false: the webhooks call an injector outside the cluster, this process,")
	out.say("acting as the chart's ServiceAccount %s/%s (so it gets exactly the chart's RBAC). It serves the webhooks and", framework.ReleaseNamespace, framework.ReleaseName)
	out.say("the identity provider callback, which checks a Pod's service account token (TokenReview, audience %q,", framework.TokenAudience)
	out.say("bound to the Pod) and the Pod itself before ZTS signs its certificate.")
	if err := s.StartInjector(ctx); err != nil {
		return err
	}
	out.longCmd("injector", relativeArgs(s.Injector.Args, s.Dir))
	p, err := s.WaitProfileReady(ctx)
	if err != nil {
		return err
	}
	out.done("injector ready: webhooks on %s, provider callback on %s; SidecarProfile %s/%s is Ready (validated by the injector)",
		s.Injector.WebhookURL, s.ProviderURL, p.Namespace, p.Name)

	// 5. App without the annotation.
	out.heading("Deploy an app that has not opted in")
	out.cmd("kubectl create namespace %s", framework.AppNamespace)
	out.cmd("kubectl -n %s create configmap %s --from-file=%s=zts-ca.pem   # the ZTS CA the profile names", framework.AppNamespace, framework.ZTSCAConfigMap, framework.ZTSCAKey)
	out.cmd("kubectl -n %s create serviceaccount %s", framework.AppNamespace, framework.AppName)
	out.cmd("kubectl -n %s create deployment %s --image=%s   # with serviceAccountName: %s", framework.AppNamespace, framework.AppName, framework.AppImage, framework.AppName)
	_, first, err := s.DeployApp(ctx)
	if err != nil {
		return err
	}
	out.done("Pod %s: containers %s, no sidecar", first.Name, containerNames(first.Spec.Containers))

	// 6. Annotate.
	out.heading("Opt in: annotate the Deployment")
	out.cmd("%s", framework.AnnotateCommand)
	dep, err := s.Annotate(ctx)
	if err != nil {
		return err
	}
	out.say("The workload webhook copied %s=%s into the Pod template, so kube-controller-manager rolls out a new ReplicaSet.",
		framework.AnnotationInject, dep.Spec.Template.Annotations[framework.AnnotationInject])
	rs, pod, err := s.WaitInjectedPod(ctx)
	if err != nil {
		return err
	}
	describeInjected(out, pod)
	out.say("The old Pod %s stays until the new one is Ready, which without a kubelet it never becomes.", first.Name)
	out.done("ReplicaSet %s created Pod %s, injected by the Pod webhook", rs.Name, pod.Name)

	// 7. Play kubelet.
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
	out.done("startup probe GET %s/readyz answered 200 after %.1fs: identity %s from ZTS, %s prefetched",
		s.HealthURL, took.Seconds(), certSubject(cert), framework.Prefetch)

	// 8. Curl.
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
		out.say("kubectl -n %s get deploy,rs,pods", framework.AppNamespace)
		out.say("curl -s %s/ntoken", api)
		out.say("Logs: %s/*.log and %s. Press Ctrl-C to stop and clean up.", s.Dir, c.LogPath)
		<-ctx.Done()
		return nil
	}
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
