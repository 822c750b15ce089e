package webhook

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/athenz-injector/athenz-injector/api/v1alpha1"
	"github.com/athenz-injector/athenz-injector/pkg/tokens"
)

// Identity is the Athenz identity a Pod asks for: the profile's templates
// applied to its namespace and service account, or what its
// athenz.io/domain and athenz.io/service annotations name instead. The
// injector (for the sidecar's ATHENZ_DOMAIN and ATHENZ_SERVICE) and the
// provider callback (to compare with what ZTS is asked to sign) both
// compute it with PodIdentity. Whether the Pod may have it is Authorize's
// question.
type Identity struct {
	Domain, Service string
	// DomainAnnotated and ServiceAnnotated say the value comes from the
	// annotation, not the template.
	DomainAnnotated, ServiceAnnotated bool
}

// String is domain.service, as ZTS names the principal.
func (id Identity) String() string { return id.Domain + "." + id.Service }

// Naming is the profile's naming templates.
func Naming(p *v1alpha1.SidecarProfile) tokens.Naming {
	return tokens.Naming{DomainTemplate: p.Spec.DomainTemplate, ServiceTemplate: p.Spec.ServiceTemplate}
}

// ServiceAccount is the Pod's service account; the API server's default is
// "default".
func ServiceAccount(pod *corev1.Pod) string {
	if pod.Spec.ServiceAccountName == "" {
		return "default"
	}
	return pod.Spec.ServiceAccountName
}

// PodIdentity returns the identity the Pod asks for with profile p. A bad
// annotation or a namespace or service account that the templates cannot
// map is a *Denial that says what to change.
func PodIdentity(pod *corev1.Pod, p *v1alpha1.SidecarProfile) (Identity, error) {
	var id Identity
	if v, ok := pod.Annotations[AnnotationDomain]; ok {
		if err := tokens.ValidateDomain(v); err != nil {
			return id, annotationError(AnnotationDomain, v, "not an Athenz domain: %v", err)
		}
		id.Domain, id.DomainAnnotated = v, true
	}
	if v, ok := pod.Annotations[AnnotationService]; ok {
		if err := tokens.ValidateService(v); err != nil {
			return id, annotationError(AnnotationService, v, "not an Athenz service: %v", err)
		}
		id.Service, id.ServiceAnnotated = v, true
	}
	if id.DomainAnnotated && id.ServiceAnnotated {
		return id, nil
	}
	domain, service, err := Naming(p).Identity(pod.Namespace, ServiceAccount(pod))
	if err != nil {
		return id, denyCheck(CheckProfile, "cannot derive the Pod's Athenz identity with SidecarProfile %s: %v (change the profile's templates, or set the annotations %s and %s where its spec.identityPolicy allows them)",
			profileKey(p), err, AnnotationDomain, AnnotationService)
	}
	if !id.DomainAnnotated {
		id.Domain = domain
	}
	if !id.ServiceAnnotated {
		id.Service = service
	}
	return id, nil
}

func profileKey(p *v1alpha1.SidecarProfile) string { return p.Namespace + "/" + p.Name }
