package framework

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Diagnose describes the state of the app's namespace and the logs of the
// injector and kube-controller-manager (and the sidecar's, when the
// scenario plays the kubelet), for messages of failed waits.
func (s *Scenario) Diagnose(ctx context.Context) string {
	b := s.DiagnoseNamespace(ctx, AppNamespace)
	add := func(format string, args ...any) { b += fmt.Sprintf(format, args...) }
	if s.Injector != nil {
		add("injector log (%s):\n%s\n", s.Injector.LogPath, s.Injector.Log(25))
	}
	if s.CP != nil && s.CP.ControllerManager != nil {
		add("kube-controller-manager log (%s):\n%s\n", s.CP.ControllerManager.LogPath, s.CP.ControllerManager.Log(10))
	}
	if s.Sidecar != nil {
		add("sidecar log (%s):\n%s\n", s.Sidecar.LogPath, s.Sidecar.Log(25))
	}
	if s.Node != nil {
		add("kubelet log (%s):\n%s\n", s.Node.Kubelet.LogPath, s.Node.Kubelet.Log(15))
		if out, err := s.Kubectl(ctx, "-n", ReleaseNamespace, "logs", "deploy/"+ReleaseName, "--tail=25"); err == nil {
			add("injector log (kubectl logs deploy/%s):\n%s\n", ReleaseName, out)
		}
	}
	return b
}

// DiagnoseNamespace describes the Pods, ReplicaSets and Events of a
// namespace, and with a node the logs of its Pods' containers that are
// not ready.
func (s *Scenario) DiagnoseNamespace(ctx context.Context, namespace string) string {
	if s.Client == nil {
		return ""
	}
	var b []byte
	add := func(format string, args ...any) { b = fmt.Appendf(b, format, args...) }
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	var pods corev1.PodList
	if err := s.Client.List(ctx, &pods, client.InNamespace(namespace)); err == nil {
		add("pods in %s:\n", namespace)
		for _, p := range pods.Items {
			add("  %s\n", PodSummary(&p))
			for _, st := range append(p.Status.InitContainerStatuses, p.Status.ContainerStatuses...) {
				add("    %s: ready %v, restarts %d, %s\n", st.Name, st.Ready, st.RestartCount, containerState(st.State))
				if !st.Ready && s.Node != nil {
					if out, err := s.Kubectl(ctx, "-n", namespace, "logs", p.Name, "-c", st.Name, "--tail=15"); err == nil && out != "" {
						add("    log of %s:\n%s\n", st.Name, indent(out, "      "))
					}
				}
			}
		}
	}
	var rss appsv1.ReplicaSetList
	if err := s.Client.List(ctx, &rss, client.InNamespace(namespace)); err == nil && len(rss.Items) > 0 {
		add("replicasets in %s:\n", namespace)
		for _, rs := range rss.Items {
			add("  %s: replicas %d, template annotations %v\n", rs.Name, rs.Status.Replicas, rs.Spec.Template.Annotations)
		}
	}
	var events corev1.EventList
	if err := s.Client.List(ctx, &events, client.InNamespace(namespace)); err == nil {
		add("events in %s:\n", namespace)
		for _, e := range events.Items {
			add("  %s %s/%s: %s: %s\n", e.Type, e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Reason, e.Message)
		}
	}
	return string(b)
}

func containerState(s corev1.ContainerState) string {
	switch {
	case s.Running != nil:
		return "running since " + s.Running.StartedAt.UTC().Format(time.RFC3339)
	case s.Waiting != nil:
		return "waiting: " + s.Waiting.Reason + " " + s.Waiting.Message
	case s.Terminated != nil:
		return fmt.Sprintf("terminated: %s exit %d %s", s.Terminated.Reason, s.Terminated.ExitCode, s.Terminated.Message)
	}
	return "no state"
}

func indent(s, prefix string) string {
	out := prefix
	for i, r := range s {
		out += string(r)
		if r == '\n' && i < len(s)-1 {
			out += prefix
		}
	}
	return out
}

// PodSummary is one line about a Pod: name, phase, IP, containers.
func PodSummary(p *corev1.Pod) string {
	var inits, ctrs []string
	for _, c := range p.Spec.InitContainers {
		inits = append(inits, c.Name)
	}
	for _, c := range p.Spec.Containers {
		ctrs = append(ctrs, c.Name)
	}
	_, injected := p.Annotations[AnnotationStatus]
	return fmt.Sprintf("%s: phase %s, podIP %q, init containers %v, containers %v, injected %v",
		p.Name, p.Status.Phase, p.Status.PodIP, inits, ctrs, injected)
}
