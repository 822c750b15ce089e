package framework

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/athenz-injector/athenz-injector/api/v1alpha1"
	"github.com/athenz-injector/athenz-injector/pkg/tokens/ztsfake"
)

// WaitProfileReady waits until the injector has validated the chart's
// SidecarProfile (its Ready condition for the current generation); a
// profile found invalid fails at once with the injector's reason.
func (s *Scenario) WaitProfileReady(ctx context.Context) (*v1alpha1.SidecarProfile, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var p v1alpha1.SidecarProfile
	key := client.ObjectKey{Namespace: ReleaseNamespace, Name: ProfileName}
	err := Wait(ctx, "SidecarProfile "+key.String()+" to be Ready", func(ctx context.Context) (bool, string, error) {
		if err := s.Client.Get(ctx, key, &p); err != nil {
			return false, err.Error(), nil
		}
		c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionReady)
		switch {
		case c == nil || c.ObservedGeneration != p.Generation:
			return false, "no Ready condition for generation " + strconv.FormatInt(p.Generation, 10), nil
		case c.Status != metav1.ConditionTrue:
			return false, "", fmt.Errorf("SidecarProfile %s is not Ready: %s: %s", key, c.Reason, c.Message)
		}
		return true, "", nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w\n%s", err, s.Diagnose(ctx))
	}
	return &p, nil
}

// AppDeployment is the app's Deployment, not opted in: one replica of
// AppImage (`testapp serve`, watching the identity directory) running as
// AppUID with a read-only root file system, all capabilities dropped, no
// privilege escalation and no fsGroup, as a restricted Pod Security
// Standard demands; service account name.
func AppDeployment(namespace, name string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       AppPodSpec(name),
			},
		},
	}
}

// AppPodSpec is the app Pod of AppDeployment, with service account sa.
func AppPodSpec(sa string) corev1.PodSpec {
	return corev1.PodSpec{
		ServiceAccountName:            sa,
		TerminationGracePeriodSeconds: ptr.To[int64](5),
		Containers: []corev1.Container{{
			Name:            AppContainer,
			Image:           AppImage,
			ImagePullPolicy: corev1.PullNever,
			Args:            []string{"--watch-identity=/var/run/athenz"},
			Ports:           []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
			ReadinessProbe: &corev1.Probe{
				ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}},
				PeriodSeconds: 1,
			},
			SecurityContext: AppSecurityContext(),
		}},
	}
}

// AppSecurityContext runs a container as AppUID, restricted.
func AppSecurityContext() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		RunAsUser:                ptr.To[int64](AppUID),
		RunAsGroup:               ptr.To[int64](AppUID),
		RunAsNonRoot:             ptr.To(true),
		ReadOnlyRootFilesystem:   ptr.To(true),
		AllowPrivilegeEscalation: ptr.To(false),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

// DeployApp creates namespace AppNamespace, ServiceAccount AppName and
// AppDeployment, which does not opt in, and waits for its first Pod.
// Nothing else is created in the namespace: the ZTS CA reaches it through
// the injector.
func (s *Scenario) DeployApp(ctx context.Context) (*appsv1.Deployment, *corev1.Pod, error) {
	dep := AppDeployment(AppNamespace, AppName)
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: AppNamespace}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: AppNamespace, Name: AppName}},
		dep,
	}
	for _, o := range objs {
		if err := s.Client.Create(ctx, o); err != nil {
			return nil, nil, fmt.Errorf("creating %T %s: %w", o, client.ObjectKeyFromObject(o), err)
		}
	}
	pod, err := s.waitPod(ctx, "the first Pod of Deployment "+AppNamespace+"/"+AppName,
		func(p *corev1.Pod) bool { return true })
	return dep, pod, err
}

// AnnotateCommand is what a user types for Annotate.
const AnnotateCommand = "kubectl -n " + AppNamespace + " annotate deployment " + AppName + " " + AnnotationInject + "=true"

// Annotate sets athenz.io/inject=true on the Deployment's own metadata, as
// AnnotateCommand does (a merge patch), and returns the Deployment as
// stored: the workload webhook has copied the annotation into its Pod
// template.
func (s *Scenario) Annotate(ctx context.Context) (*appsv1.Deployment, error) {
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: AppNamespace, Name: AppName}}
	patch := []byte(`{"metadata":{"annotations":{"` + AnnotationInject + `":"true"}}}`)
	if err := s.Client.Patch(ctx, dep, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return nil, fmt.Errorf("%s: %w", AnnotateCommand, err)
	}
	return dep, nil
}

// WaitInjectedPod waits for the ReplicaSet whose Pod template opts in
// (the rollout that Annotate started) and for its Pod.
func (s *Scenario) WaitInjectedPod(ctx context.Context) (*appsv1.ReplicaSet, *corev1.Pod, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var rs *appsv1.ReplicaSet
	err := Wait(ctx, "a ReplicaSet of Deployment "+AppNamespace+"/"+AppName+" whose Pod template has "+AnnotationInject+"=true",
		func(ctx context.Context) (bool, string, error) {
			var list appsv1.ReplicaSetList
			if err := s.Client.List(ctx, &list, client.InNamespace(AppNamespace), client.MatchingLabels{"app": AppName}); err != nil {
				return false, err.Error(), nil
			}
			var seen []string
			for i, r := range list.Items {
				if r.Spec.Template.Annotations[AnnotationInject] == "true" {
					rs = &list.Items[i]
					return true, "", nil
				}
				seen = append(seen, fmt.Sprintf("%s (template annotations %v)", r.Name, r.Spec.Template.Annotations))
			}
			return false, fmt.Sprintf("replicasets %v", seen), nil
		})
	if err != nil {
		return nil, nil, fmt.Errorf("%w\n%s", err, s.Diagnose(ctx))
	}
	hash := rs.Labels[appsv1.DefaultDeploymentUniqueLabelKey]
	pod, err := s.waitPod(ctx, "the Pod of ReplicaSet "+rs.Name, func(p *corev1.Pod) bool {
		return p.Labels[appsv1.DefaultDeploymentUniqueLabelKey] == hash
	})
	return rs, pod, err
}

// waitPod waits up to 30 s for a Pod of the app that match accepts.
func (s *Scenario) waitPod(ctx context.Context, what string, match func(*corev1.Pod) bool) (*corev1.Pod, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var pod *corev1.Pod
	err := Wait(ctx, what, func(ctx context.Context) (bool, string, error) {
		var list corev1.PodList
		if err := s.Client.List(ctx, &list, client.InNamespace(AppNamespace), client.MatchingLabels{"app": AppName}); err != nil {
			return false, err.Error(), nil
		}
		var seen []string
		for i := range list.Items {
			if match(&list.Items[i]) {
				pod = &list.Items[i]
				return true, "", nil
			}
			seen = append(seen, list.Items[i].Name)
		}
		return false, fmt.Sprintf("pods %v", seen), nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w\n%s", err, s.Diagnose(ctx))
	}
	return pod, nil
}

// RunSidecar runs the injected sidecar container of pod as a local process
// (PlayedKubelet.Start), with each listen port of its spec on a local port, and
// waits for its startup probe. It sets SidecarURL from the app container's
// ATHENZ_SIDECAR_URL, mapped the same way.
func (s *Scenario) RunSidecar(ctx context.Context, pod *corev1.Pod) (*Container, time.Duration, error) {
	spec, err := FindContainer(pod, SidecarContainer)
	if err != nil {
		return nil, 0, err
	}
	ports := map[int32]string{}
	for _, p := range ListenPorts(spec) {
		if ports[p], err = s.portFor(p); err != nil {
			return nil, 0, err
		}
	}
	c, err := s.PlayedKubelet.Start(ctx, pod, SidecarContainer, ports)
	if err != nil {
		return nil, 0, err
	}
	s.Sidecar = c
	s.onClose(func() error { return c.Stop(0) })

	app, err := FindContainer(c.Pod, AppContainer)
	if err != nil {
		return c, 0, err
	}
	mapper := valueMapper{ports: ports}
	for _, e := range app.Env {
		if e.Name == "ATHENZ_SIDECAR_URL" {
			s.SidecarURL = mapper.value(e.Value)
		}
	}
	if v, ok := c.Command.Lookup("ATHENZ_HEALTH_LISTEN"); ok {
		s.HealthURL = "http://" + v
	}

	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	took, err := s.PlayedKubelet.WaitStarted(wctx, c)
	if err != nil {
		return c, 0, fmt.Errorf("%w\nZTS instance registrations: %d, confirmed by the provider callback: %d",
			err, s.ZTS.Calls(ztsfake.EndpointInstanceRegister), s.Confirmed())
	}
	return c, took, nil
}

// ListenPorts are the ports a container listens on: its declared container
// ports and the ports of environment values that are listen addresses
// ("127.0.0.1:8081", ":8082").
func ListenPorts(c *corev1.Container) []int32 {
	var ports []int32
	for _, p := range c.Ports {
		ports = append(ports, p.ContainerPort)
	}
	for _, e := range c.Env {
		if e.ValueFrom != nil || strings.Contains(e.Value, "/") {
			continue
		}
		if _, port, err := net.SplitHostPort(e.Value); err == nil {
			if p, err := strconv.ParseInt(port, 10, 32); err == nil && p > 0 {
				ports = append(ports, int32(p))
			}
		}
	}
	slices.Sort(ports)
	return slices.Compact(ports)
}

// portFor returns the local address for a container port: the same port
// when PreferPodPorts is set and it is free, else a free port.
func (s *Scenario) portFor(port int32) (string, error) {
	if s.opts.PreferPodPorts {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port)))
		if l, err := net.Listen("tcp", addr); err == nil {
			l.Close()
			return addr, nil
		}
	}
	return FreeAddr()
}
