package provider

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	"github.com/athenz-injector/athenz-injector/api/v1alpha1"
	"github.com/athenz-injector/athenz-injector/pkg/tokens"
	"github.com/athenz-injector/athenz-injector/pkg/webhook"
)

// identity is the Athenz identity a Pod may claim, with what the checks
// need to explain a mismatch.
type identity struct {
	profile          string // namespace/name of the SidecarProfile
	domain, service  string
	domainAnnotated  bool // from athenz.io/domain, not the template
	serviceAnnotated bool // from athenz.io/service
	naming           tokens.Naming
	provider         string
	dnsSuffix        string
	trustDomain      string
}

// findProfile finds the Pod's SidecarProfile as the injector does: the one
// named by athenz.io/profile (else "default") in the Pod's namespace, else
// the one of that name in the injector's namespace. It reads Reader (the
// cache) only, as the injector does.
func (h *Handler) findProfile(ctx context.Context, pod *corev1.Pod) (*v1alpha1.SidecarProfile, error) {
	name, err := webhook.ProfileName(pod.Annotations)
	if err != nil {
		return nil, refuse("profile", "%v", err)
	}
	if name == "" {
		name = webhook.DefaultProfileName
	}
	keys := []types.NamespacedName{{Namespace: pod.Namespace, Name: name}}
	if ns := h.o.InjectorNamespace; ns != "" && ns != pod.Namespace {
		keys = append(keys, types.NamespacedName{Namespace: ns, Name: name})
	}
	for _, key := range keys {
		var p v1alpha1.SidecarProfile
		err := h.o.Reader.Get(ctx, key, &p)
		if err == nil {
			return &p, nil
		}
		if !apierrors.IsNotFound(err) {
			return nil, unavailable("reading SidecarProfile %s: %v", key, err)
		}
	}
	looked := make([]string, len(keys))
	for i, k := range keys {
		looked[i] = fmt.Sprintf("%q", k.String())
	}
	return nil, refuse("profile", "no SidecarProfile applies to pod %s/%s: looked for %s",
		pod.Namespace, pod.Name, strings.Join(looked, " and "))
}

// podIdentity is the identity the injector gives pod with profile p: the
// athenz.io/domain and athenz.io/service annotations if set, else the
// profile's templates applied to the namespace and service account.
func podIdentity(pod *corev1.Pod, p *v1alpha1.SidecarProfile) (*identity, error) {
	spec := &p.Spec
	id := &identity{
		profile:     p.Namespace + "/" + p.Name,
		naming:      tokens.Naming{DomainTemplate: spec.DomainTemplate, ServiceTemplate: spec.ServiceTemplate},
		provider:    spec.Identity.Provider,
		dnsSuffix:   spec.Identity.DNSSuffix,
		trustDomain: spec.Identity.TrustDomain,
	}
	if m := spec.Identity.Mode; m != "" && m != v1alpha1.IdentityCopperArgos {
		return nil, refuse("profile", "SidecarProfile %s is in %s mode: its Pods do not register with a provider", id.profile, m)
	}
	if id.dnsSuffix == "" {
		return nil, refuse("profile", "SidecarProfile %s has no identity.dnsSuffix", id.profile)
	}
	if v, ok := pod.Annotations[webhook.AnnotationDomain]; ok {
		if err := tokens.ValidateDomain(v); err != nil {
			return nil, refuse("domain", "the Pod's annotation %s is not an Athenz domain: %v", webhook.AnnotationDomain, err)
		}
		id.domain, id.domainAnnotated = v, true
	}
	if v, ok := pod.Annotations[webhook.AnnotationService]; ok {
		if err := tokens.ValidateService(v); err != nil {
			return nil, refuse("service", "the Pod's annotation %s is not an Athenz service: %v", webhook.AnnotationService, err)
		}
		id.service, id.serviceAnnotated = v, true
	}
	if id.domain == "" || id.service == "" {
		domain, service, err := id.naming.Identity(pod.Namespace, serviceAccount(pod))
		if err != nil {
			return nil, refuse("profile", "cannot derive the Pod's Athenz identity with SidecarProfile %s: %v", id.profile, err)
		}
		if id.domain == "" {
			id.domain = domain
		}
		if id.service == "" {
			id.service = service
		}
	}
	return id, nil
}

// serviceAccount is the Pod's service account; the API server's default
// is "default".
func serviceAccount(pod *corev1.Pod) string {
	if pod.Spec.ServiceAccountName == "" {
		return "default"
	}
	return pod.Spec.ServiceAccountName
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
