package inspect

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/athenz-injector/athenz-injector/api/v1alpha1"
	"github.com/athenz-injector/athenz-injector/pkg/webhook"
)

// Explanation is why a Pod was or was not injected, and what the injector
// would do with it now.
type Explanation struct {
	Pod      string // namespace/name
	Injected bool
	// Lines say it, first the verdict, then the details.
	Lines []string
}

// Write prints the explanation.
func (e Explanation) Write(w io.Writer) error {
	_, err := fmt.Fprintf(w, "pod %s:\n  %s\n", e.Pod, strings.Join(e.Lines, "\n  "))
	return err
}

// Why explains the Pod namespace/name: for an injected Pod what it got,
// from which profile, and whether that profile gives the same now; for
// another, the rule that left it alone (pkg/webhook.ShouldInject), the
// webhook configuration that did not send it to the injector, or the
// refusal the injector answers now (Resolver and BuildPatch).
func Why(ctx context.Context, c client.Reader, inj Injector, namespace, name string) (Explanation, error) {
	e := Explanation{Pod: namespace + "/" + name}
	var pod corev1.Pod
	if err := c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, &pod); err != nil {
		return e, fmt.Errorf("reading pod %s: %w", e.Pod, err)
	}
	var ns corev1.Namespace
	if err := c.Get(ctx, types.NamespacedName{Name: namespace}, &ns); err != nil {
		return e, fmt.Errorf("reading namespace %s: %w", namespace, err)
	}
	say := func(format string, args ...any) { e.Lines = append(e.Lines, fmt.Sprintf(format, args...)) }
	settings := webhook.Settings{Namespace: inj.Namespace, Image: inj.DefaultImage}

	if raw, ok := pod.Annotations[webhook.AnnotationStatus]; ok {
		e.Injected = true
		var st webhook.Status
		if err := json.Unmarshal([]byte(raw), &st); err != nil {
			say("INJECTED, but %s is not JSON: %v", webhook.AnnotationStatus, err)
			return e, nil
		}
		kind := "a native sidecar"
		switch {
		case st.InitOnly:
			kind = "an init container only (init-only: no token API)"
		case !st.NativeSidecar:
			kind = "a regular container with an init container (nativeSidecar: Never)"
		}
		say("INJECTED by injector %s with SidecarProfile %s%s: identity %s.%s, sidecar %s as %s.", st.Version, st.Profile, revisionNote(st.Revision), st.Domain, st.Service, st.Image, kind)
		if len(st.Targets) > 0 {
			say("Containers with the identity: %s.", strings.Join(st.Targets, ", "))
		}
		state, restarts := sidecarState(&pod, st)
		say("Sidecar now: %s, %d restarts.", state, restarts)
		for _, o := range outdated(ctx, c, st, map[string]*v1alpha1.SidecarProfile{}, inj.DefaultImage) {
			say("%s: a new Pod (kubectl rollout restart) gets what the profile gives now.", o)
		}
		return e, nil
	}

	inject, reason, err := webhook.ShouldInject(&pod, ns.Labels, settings)
	switch {
	case err != nil:
		say("NOT INJECTED: the injector refuses this Pod's annotations: %v", err)
		return e, nil
	case !inject:
		say("NOT INJECTED: %s.", reasonText(reason, namespace))
		return e, nil
	}
	say("NOT INJECTED, although it opts in (%s).", reason)

	entry := PodWebhook
	if reason == webhook.ReasonNamespaceOptIn {
		entry = NamespacePodWebhook
	}
	switch w := inj.webhook(entry); {
	case inj.Config == nil:
		say("No MutatingWebhookConfiguration has the webhook %s: the injector is not installed.", PodWebhook)
	case w == nil:
		say("The MutatingWebhookConfiguration %s has no webhook %s.", inj.Config.Name, entry)
	default:
		sel, err := selects(w, ns.Labels)
		if err != nil {
			return e, err
		}
		if !sel {
			say("The webhook %s of %s does not select namespace %s (its namespaceSelector, e.g. the chart's webhook.excludeNamespaces).", w.Name, inj.Config.Name, namespace)
		}
		if pod.CreationTimestamp.Before(&inj.Config.CreationTimestamp) {
			say("The Pod was created at %s, before the webhook configuration (%s): recreate it.",
				pod.CreationTimestamp.UTC().Format("2006-01-02T15:04:05Z"), inj.Config.CreationTimestamp.UTC().Format("2006-01-02T15:04:05Z"))
		}
		if fp := w.FailurePolicy; fp != nil {
			say("The webhook's failurePolicy is %s: %s", *fp, failureNote(string(*fp)))
		}
	}

	// What the injector answers now.
	profile, id, err := webhook.Resolver{Reader: c, Namespace: inj.Namespace}.Resolve(ctx, &pod, ns.Labels)
	if err == nil {
		_, err = webhook.BuildPatch(&pod, profile, settings)
	}
	if d, ok := webhook.IsDenial(err); ok {
		say("The injector refuses it now: %s", d.Msg)
		return e, nil
	}
	if err != nil {
		return e, err
	}
	say("The injector would inject it now with SidecarProfile %s/%s (identity %s): recreate the Pod (kubectl delete pod, or kubectl rollout restart its workload).", profile.Namespace, profile.Name, id)
	return e, nil
}

func revisionNote(rev string) string {
	if rev == "" {
		return ""
	}
	return " (revision " + rev + ")"
}

func reasonText(reason, namespace string) string {
	switch reason {
	case webhook.ReasonSystemNamespace:
		return "namespace " + namespace + " is kube-system or the injector's own, never injected"
	case webhook.ReasonNotOptedIn:
		return "it does not opt in: no annotation " + webhook.AnnotationInject + `: "true" and namespace ` + namespace + " is not labelled " + webhook.NamespaceLabelInject + "=" + webhook.NamespaceInjectEnabled
	case webhook.ReasonOptedOut:
		return "it opts out with " + webhook.AnnotationInject + `: "false"`
	case webhook.ReasonWindows:
		return "it runs on Windows, and namespace " + namespace + " opts in with its label: Windows Pods are left alone"
	}
	return reason
}

func failureNote(policy string) string {
	if policy == "Ignore" {
		return "a Pod created while the injector did not answer was admitted without the sidecar."
	}
	return "a Pod created while the injector did not answer was refused, so this one reached no injector that answered."
}
