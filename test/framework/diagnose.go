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
// injector and kube-controller-manager, for messages of failed waits.
func (s *Scenario) Diagnose(ctx context.Context) string {
	var b []byte
	add := func(format string, args ...any) { b = fmt.Appendf(b, format, args...) }
	if s.Client != nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		var pods corev1.PodList
		if err := s.Client.List(ctx, &pods, client.InNamespace(AppNamespace)); err == nil {
			add("pods in %s:\n", AppNamespace)
			for _, p := range pods.Items {
				add("  %s\n", PodSummary(&p))
			}
		}
		var rss appsv1.ReplicaSetList
		if err := s.Client.List(ctx, &rss, client.InNamespace(AppNamespace)); err == nil {
			add("replicasets in %s:\n", AppNamespace)
			for _, rs := range rss.Items {
				add("  %s: replicas %d, template annotations %v\n", rs.Name, rs.Status.Replicas, rs.Spec.Template.Annotations)
			}
		}
		var events corev1.EventList
		if err := s.Client.List(ctx, &events, client.InNamespace(AppNamespace)); err == nil {
			add("events in %s:\n", AppNamespace)
			for _, e := range events.Items {
				add("  %s %s/%s: %s: %s\n", e.Type, e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Reason, e.Message)
			}
		}
	}
	if s.Injector != nil {
		add("injector log (%s):\n%s\n", s.Injector.LogPath, s.Injector.Log(25))
	}
	if s.CP != nil && s.CP.ControllerManager != nil {
		add("kube-controller-manager log (%s):\n%s\n", s.CP.ControllerManager.LogPath, s.CP.ControllerManager.Log(10))
	}
	if s.Sidecar != nil {
		add("sidecar log (%s):\n%s\n", s.Sidecar.LogPath, s.Sidecar.Log(25))
	}
	return string(b)
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
