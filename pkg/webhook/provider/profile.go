package provider

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/athenz-injector/athenz-injector/api/v1alpha1"
	"github.com/athenz-injector/athenz-injector/pkg/tokens"
	"github.com/athenz-injector/athenz-injector/pkg/webhook"
)

// identity is the Athenz identity a Pod may have, with what the checks
// need to explain a mismatch.
type identity struct {
	webhook.Identity
	profile     string // namespace/name of the SidecarProfile
	naming      tokens.Naming
	provider    string
	dnsSuffix   string
	trustDomain string
}

// identity finds the Pod's SidecarProfile and the identity the identity
// policy lets it have, exactly as the injector does at admission
// (webhook.Resolver), so that a Pod created while the injector was down,
// or annotated afterwards, gains nothing: the policy is checked at every
// register and refresh.
func (h *Handler) identity(ctx context.Context, pod *corev1.Pod) (*identity, error) {
	var ns corev1.Namespace
	if err := h.o.Reader.Get(ctx, types.NamespacedName{Name: pod.Namespace}, &ns); err != nil {
		return nil, unavailable("reading namespace %s: %v", pod.Namespace, err)
	}
	p, wid, err := webhook.Resolver{Reader: h.o.Reader, Namespace: h.o.InjectorNamespace}.Resolve(ctx, pod, ns.Labels)
	if err != nil {
		if d, ok := webhook.IsDenial(err); ok {
			check := d.Check
			if check == "" {
				check = webhook.CheckProfile
			}
			return nil, refuse(check, "%s", d.Msg)
		}
		return nil, unavailable("%v", err)
	}
	spec := &p.Spec
	id := &identity{
		Identity:    wid,
		profile:     p.Namespace + "/" + p.Name,
		naming:      webhook.Naming(p),
		provider:    spec.Identity.Provider,
		dnsSuffix:   spec.Identity.DNSSuffix,
		trustDomain: spec.Identity.TrustDomain,
	}
	if m := spec.Identity.Mode; m != "" && m != v1alpha1.IdentityCopperArgos {
		return nil, refuse(webhook.CheckProfile, "SidecarProfile %s is in %s mode: its Pods do not register with a provider", id.profile, m)
	}
	if id.dnsSuffix == "" {
		return nil, refuse(webhook.CheckProfile, "SidecarProfile %s has no identity.dnsSuffix", id.profile)
	}
	return id, nil
}

// getByList reads one Pod from the API server with a list by name rather
// than a get, so that the callback needs no verb on Pods beyond the list
// and watch its informer needs.
func getByList(ctx context.Context, r client.Reader, key types.NamespacedName, pod *corev1.Pod) error {
	var list corev1.PodList
	if err := r.List(ctx, &list, client.InNamespace(key.Namespace),
		client.MatchingFieldsSelector{Selector: fields.OneTermEqualSelector("metadata.name", key.Name)}); err != nil {
		return err
	}
	if len(list.Items) == 0 {
		return apierrors.NewNotFound(schema.GroupResource{Resource: "pods"}, key.Name)
	}
	list.Items[0].DeepCopyInto(pod)
	return nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
