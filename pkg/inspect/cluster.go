package inspect

import (
	"context"
	"fmt"
	"strings"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// PodWebhook is the name of the injector's Pod webhook entry in its
// MutatingWebhookConfiguration (config/webhook/manifests.yaml).
const PodWebhook = "pods.injector.athenz.io"

// Injector is what the cluster says about the installed injector.
type Injector struct {
	// Config is the MutatingWebhookConfiguration with PodWebhook; nil when
	// none is installed.
	Config *admissionregv1.MutatingWebhookConfiguration
	// Namespace is the injector's namespace: the namespace of the
	// webhook's Service, else the one given.
	Namespace string
	// DefaultImage is the injector's --sidecar-image, read from its
	// Deployment; "" when not found (an injector outside the cluster).
	DefaultImage string
}

// FindInjector finds the installed injector. namespace is used when the
// webhook calls a URL rather than a Service (an injector outside the
// cluster).
func FindInjector(ctx context.Context, c client.Reader, namespace string) (Injector, error) {
	inj := Injector{Namespace: namespace}
	var configs admissionregv1.MutatingWebhookConfigurationList
	if err := c.List(ctx, &configs); err != nil {
		return inj, fmt.Errorf("listing mutating webhook configurations: %w", err)
	}
	for i := range configs.Items {
		for _, w := range configs.Items[i].Webhooks {
			if w.Name != PodWebhook {
				continue
			}
			inj.Config = &configs.Items[i]
			if s := w.ClientConfig.Service; s != nil {
				inj.Namespace = s.Namespace
			}
		}
	}
	if inj.Namespace == "" {
		return inj, nil
	}
	var deps appsv1.DeploymentList
	sel := labels.SelectorFromSet(labels.Set{"app.kubernetes.io/component": "injector"})
	if err := c.List(ctx, &deps, client.InNamespace(inj.Namespace), client.MatchingLabelsSelector{Selector: sel}); err != nil {
		return inj, nil // not readable: the image is then unknown, which Status says
	}
	for _, d := range deps.Items {
		for _, ctr := range d.Spec.Template.Spec.Containers {
			for _, a := range ctr.Args {
				if v, ok := strings.CutPrefix(a, "--sidecar-image="); ok {
					inj.DefaultImage = v
				}
			}
		}
	}
	return inj, nil
}

// NamespacePodWebhook is the entry for Pods of namespaces labelled
// athenz.io/inject=enabled.
const NamespacePodWebhook = "namespace-" + PodWebhook

// webhook is the entry of the injector's configuration named name.
func (inj Injector) webhook(name string) *admissionregv1.MutatingWebhook {
	if inj.Config == nil {
		return nil
	}
	for i := range inj.Config.Webhooks {
		if inj.Config.Webhooks[i].Name == name {
			return &inj.Config.Webhooks[i]
		}
	}
	return nil
}

// selects reports whether the webhook entry sends Pods of a namespace with
// these labels to the injector.
func selects(w *admissionregv1.MutatingWebhook, nsLabels map[string]string) (bool, error) {
	if w.NamespaceSelector == nil {
		return true, nil
	}
	sel, err := metav1.LabelSelectorAsSelector(w.NamespaceSelector)
	if err != nil {
		return false, fmt.Errorf("webhook %s: namespaceSelector: %w", w.Name, err)
	}
	return sel.Matches(labels.Set(nsLabels)), nil
}
