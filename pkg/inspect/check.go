package inspect

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/athenz-injector/athenz-injector/pkg/webhook"
)

// CheckOptions configure Check.
type CheckOptions struct {
	// Namespace the probe Pod is (dry-run) created in: one the webhook
	// selects and a profile serves. Required.
	Namespace string
	// Image of the probe Pod's container; never pulled. Default: "check".
	Image string
	// ServiceAccount of the probe Pod. Default: "default".
	ServiceAccount string
	// Out receives what was checked.
	Out io.Writer
}

// CheckPodName is the probe Pod's name.
const CheckPodName = "athenz-injector-check"

// Check creates, as a server-side dry run, a Pod that opts in, and checks
// that the API server hands back the injected Pod: it proves that the API
// server reaches the injector and trusts its certificate (caBundle), that
// the injector answers, and that a profile serves the namespace. The dry
// run creates nothing (the webhooks have sideEffects: None). The error
// says which of these failed.
func Check(ctx context.Context, c client.Client, o CheckOptions) error {
	if o.Image == "" {
		o.Image = "check"
	}
	if o.ServiceAccount == "" {
		o.ServiceAccount = "default"
	}
	out := o.Out
	if out == nil {
		out = io.Discard
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: o.Namespace, Name: CheckPodName,
			Annotations: map[string]string{webhook.AnnotationInject: "true"}},
		Spec: corev1.PodSpec{
			ServiceAccountName: o.ServiceAccount,
			Containers:         []corev1.Container{{Name: "app", Image: o.Image}},
		},
	}
	fmt.Fprintf(out, "creating pod %s/%s with %s: \"true\" (server-side dry run)\n", o.Namespace, CheckPodName, webhook.AnnotationInject)
	if err := c.Create(ctx, pod, client.DryRunAll); err != nil {
		return fmt.Errorf("the API server refused the opted-in Pod: %w (a certificate error means the webhook's caBundle does not match the injector's certificate; \"connection refused\" or a timeout, that no injector answers; a denial, the injector's reason)", err)
	}
	raw, ok := pod.Annotations[webhook.AnnotationStatus]
	if !ok {
		return fmt.Errorf("the Pod was admitted without %s: not injected (is the webhook's failurePolicy Ignore and the injector unreachable, or its configuration not selecting namespace %s?)", webhook.AnnotationStatus, o.Namespace)
	}
	var st webhook.Status
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		return fmt.Errorf("%s is not JSON: %w", webhook.AnnotationStatus, err)
	}
	found := false
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, ctr := range cs {
			found = found || ctr.Name == webhook.SidecarName || ctr.Name == webhook.InitName
		}
	}
	if !found {
		return fmt.Errorf("the Pod has %s but no %s container: the patch was not applied", webhook.AnnotationStatus, webhook.SidecarName)
	}
	fmt.Fprintf(out, "ok: injected by injector %s with SidecarProfile %s: identity %s.%s, sidecar %s\n", st.Version, st.Profile, st.Domain, st.Service, st.Image)
	return nil
}
