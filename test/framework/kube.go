package framework

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// WaitDeploymentReady waits until the Deployment's current generation is
// rolled out: every replica updated, ready and available.
func (s *Scenario) WaitDeploymentReady(ctx context.Context, namespace, name string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	key := client.ObjectKey{Namespace: namespace, Name: name}
	err := Wait(ctx, "Deployment "+key.String()+" to roll out", func(ctx context.Context) (bool, string, error) {
		var d appsv1.Deployment
		if err := s.Client.Get(ctx, key, &d); err != nil {
			return false, err.Error(), nil
		}
		want := int32(1)
		if d.Spec.Replicas != nil {
			want = *d.Spec.Replicas
		}
		st := d.Status
		state := fmt.Sprintf("generation %d observed %d, replicas %d updated %d ready %d available %d (want %d)",
			d.Generation, st.ObservedGeneration, st.Replicas, st.UpdatedReplicas, st.ReadyReplicas, st.AvailableReplicas, want)
		return st.ObservedGeneration >= d.Generation && st.UpdatedReplicas == want && st.ReadyReplicas == want &&
			st.AvailableReplicas == want && st.Replicas == want, state, nil
	})
	if err != nil {
		return fmt.Errorf("%w\n%s", err, s.DiagnoseNamespace(ctx, namespace))
	}
	return nil
}

// WaitPod waits until the Pod satisfies done (given the Pod, it returns
// done and a description of the state), and returns it.
func (s *Scenario) WaitPod(ctx context.Context, namespace, name string, timeout time.Duration, what string, done func(*corev1.Pod) (bool, string)) (*corev1.Pod, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var pod corev1.Pod
	err := Wait(ctx, "Pod "+namespace+"/"+name+" "+what, func(ctx context.Context) (bool, string, error) {
		if err := s.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &pod); err != nil {
			return false, err.Error(), nil
		}
		ok, state := done(&pod)
		return ok, state + "; " + PodSummary(&pod), nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w\n%s", err, s.DiagnoseNamespace(ctx, namespace))
	}
	return &pod, nil
}

// PodReady is a WaitPod condition: the Pod's Ready condition is True.
func PodReady(p *corev1.Pod) (bool, string) {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue, fmt.Sprintf("Ready=%s %s", c.Status, c.Message)
		}
	}
	return false, "no Ready condition"
}

// PodPhase returns a WaitPod condition: the Pod is in phase.
func PodPhase(phase corev1.PodPhase) func(*corev1.Pod) (bool, string) {
	return func(p *corev1.Pod) (bool, string) { return p.Status.Phase == phase, "phase " + string(p.Status.Phase) }
}

// Kubectl runs the node's kubectl as the administrator and returns its
// standard output; the error carries its standard error.
func (s *Scenario) Kubectl(ctx context.Context, args ...string) (string, error) {
	if s.Node == nil {
		return "", fmt.Errorf("kubectl: no node (the scenario plays the kubelet)")
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(s.Node.Assets, "kubectl"), append([]string{"--kubeconfig", s.CP.Kubeconfig}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// Exec runs command in a container of a Pod with `kubectl exec` and
// returns its standard output.
func (s *Scenario) Exec(ctx context.Context, namespace, pod, container string, command ...string) (string, error) {
	return s.Kubectl(ctx, append([]string{"-n", namespace, "exec", pod, "-c", container, "--"}, command...)...)
}
