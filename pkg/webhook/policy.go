package webhook

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/athenz-injector/athenz-injector/api/v1alpha1"
	"github.com/athenz-injector/athenz-injector/pkg/tokens"
)

// The identity policy (SidecarProfile spec.identityPolicy) decides what a
// namespace may become. The functions here are pure: Resolver feeds them
// from the informer cache, and both the admission handler and the provider
// callback call Authorize, so that what one admits the other confirms.

// wildcardSuffix ends a domain pattern that allows every subdomain.
const wildcardSuffix = ".*"

// anyService is the service pattern that allows every service.
const anyService = "*"

// Authorize checks that the identity policy lets the Pod have id with its
// profile p:
//
//   - a profile of the injector's namespace (s.Namespace) must serve the
//     Pod's namespace (spec.identityPolicy.namespaceSelector; unset, only
//     "default" serves every namespace) and allow id: the identity its
//     templates give, or one that spec.identityPolicy.allowedIdentities
//     lists for the namespace;
//   - the namespace's own profile must allow id the same way (so it can
//     narrow), and so must one of the profiles of the injector's namespace
//     that serve the namespace (cluster lists them): a tenant's profile
//     never widens what the platform team allows.
//
// nsLabels are the labels of the Pod's namespace. A refusal is a *Denial
// (CheckProfile or CheckPolicy) that names the profile and the field that
// would allow it; a profile whose policy is malformed is refused the same
// way. Profiles in cluster that are malformed only fail to allow.
func Authorize(pod *corev1.Pod, nsLabels map[string]string, p *v1alpha1.SidecarProfile, id Identity, cluster []v1alpha1.SidecarProfile, s Settings) error {
	ns := pod.Namespace
	key := profileKey(p)
	switch {
	case s.Namespace != "" && p.Namespace == s.Namespace:
		ok, err := serves(p, ns, nsLabels, s)
		if err != nil {
			return badPolicy(p, "namespaceSelector", err)
		}
		if !ok {
			why := "its spec.identityPolicy.namespaceSelector does not select it"
			if p.Spec.IdentityPolicy.NamespaceSelector == nil {
				why = fmt.Sprintf("only the profile named %q serves every namespace; select the namespace with spec.identityPolicy.namespaceSelector", DefaultProfileName)
			}
			return denyCheck(CheckProfile, "SidecarProfile %s does not serve namespace %q: %s", key, ns, why)
		}
		return checkAllows(pod, nsLabels, p, id)
	case p.Namespace == ns:
		if s.Namespace == "" {
			return denyCheck(CheckPolicy, "identity policy: SidecarProfile %s cannot be checked: the injector has no namespace of its own whose profiles bound the namespaces' profiles", key)
		}
		if id.DomainAnnotated || id.ServiceAnnotated {
			if err := checkAllows(pod, nsLabels, p, id); err != nil {
				return err
			}
		}
		for i := range cluster {
			c := &cluster[i]
			if c.Namespace != s.Namespace {
				continue
			}
			if ok, err := serves(c, ns, nsLabels, s); err != nil || !ok {
				continue
			}
			if ok, err := allows(c, pod, nsLabels, id); err == nil && ok {
				return nil
			}
		}
		return denyCheck(CheckPolicy, "identity policy: namespace %q may not be %s (%s): no SidecarProfile of the injector's namespace %s that serves the namespace allows it, and the namespace's own profile %s can only narrow what those allow; to allow it, list it in spec.identityPolicy.allowedIdentities of %s/%s",
			ns, id, claimSource(id, p), s.Namespace, key, s.Namespace, DefaultProfileName)
	default:
		return denyCheck(CheckProfile, "SidecarProfile %s is in neither the Pod's namespace %q nor the injector's", key, ns)
	}
}

// checkAllows refuses id unless p allows it.
func checkAllows(pod *corev1.Pod, nsLabels map[string]string, p *v1alpha1.SidecarProfile, id Identity) error {
	ok, err := allows(p, pod, nsLabels, id)
	if err != nil {
		return err
	}
	if ok {
		return nil
	}
	hint := "no entry of its spec.identityPolicy.allowedIdentities allows it for this namespace"
	if len(p.Spec.IdentityPolicy.AllowedIdentities) == 0 {
		hint = "it allows only the identity its templates give"
		if d, s, err := Naming(p).Identity(pod.Namespace, ServiceAccount(pod)); err == nil {
			hint += " (" + d + "." + s + ")"
		}
		hint += "; to allow another, list it in spec.identityPolicy.allowedIdentities"
	}
	return denyCheck(CheckPolicy, "identity policy of SidecarProfile %s: namespace %q may not be %s (%s): %s",
		profileKey(p), pod.Namespace, id, claimSource(id, p), hint)
}

// claimSource says where the Pod's identity comes from.
func claimSource(id Identity, p *v1alpha1.SidecarProfile) string {
	var parts []string
	if id.DomainAnnotated {
		parts = append(parts, fmt.Sprintf("annotation %s %q", AnnotationDomain, truncate(id.Domain)))
	}
	if id.ServiceAnnotated {
		parts = append(parts, fmt.Sprintf("annotation %s %q", AnnotationService, truncate(id.Service)))
	}
	if len(parts) == 0 {
		return "from the templates of SidecarProfile " + profileKey(p)
	}
	return strings.Join(parts, ", ")
}

// badPolicy refuses a Pod whose profile has a malformed policy.
func badPolicy(p *v1alpha1.SidecarProfile, field string, err error) error {
	return denyCheck(CheckPolicy, "SidecarProfile %s: spec.identityPolicy.%s: %v", profileKey(p), field, err)
}

// serves reports whether p serves namespace ns (with its labels): a
// namespace's own profiles serve it, a profile of the injector's namespace
// serves what its namespaceSelector selects (unset: every namespace if it
// is "default", none otherwise).
func serves(p *v1alpha1.SidecarProfile, ns string, nsLabels map[string]string, s Settings) (bool, error) {
	if p.Namespace != s.Namespace {
		return p.Namespace == ns, nil
	}
	sel := p.Spec.IdentityPolicy.NamespaceSelector
	if sel == nil {
		return p.Name == DefaultProfileName, nil
	}
	return selects(sel, nsLabels)
}

func selects(sel *metav1.LabelSelector, nsLabels map[string]string) (bool, error) {
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return false, err
	}
	return s.Matches(labels.Set(nsLabels)), nil
}

// allows reports whether p lets the Pod have id: the identity p's templates
// give it, or one that an entry of p's allowedIdentities lists for the
// Pod's namespace. The error is a *Denial for a malformed entry.
func allows(p *v1alpha1.SidecarProfile, pod *corev1.Pod, nsLabels map[string]string, id Identity) (bool, error) {
	ns, sa := pod.Namespace, ServiceAccount(pod)
	domain, service, tmplErr := Naming(p).Identity(ns, sa)
	fromTemplate := tmplErr == nil && strings.EqualFold(id.Service, service)
	if fromTemplate && strings.EqualFold(id.Domain, domain) {
		return true, nil
	}
	for i := range p.Spec.IdentityPolicy.AllowedIdentities {
		e := &p.Spec.IdentityPolicy.AllowedIdentities[i]
		ok, err := appliesTo(e, ns, nsLabels)
		if err != nil {
			return false, badPolicy(p, fmt.Sprintf("allowedIdentities[%d].namespaceSelector", i), err)
		}
		if !ok || !matchesAny(e.Domains, id.Domain, ns, sa, domainPattern) {
			continue
		}
		if len(e.Services) == 0 {
			if fromTemplate {
				return true, nil
			}
			continue
		}
		if matchesAny(e.Services, id.Service, ns, sa, servicePattern) {
			return true, nil
		}
	}
	return false, nil
}

// appliesTo reports whether entry e covers namespace ns (with its labels):
// named in namespaces, selected by namespaceSelector, or, with neither,
// every namespace.
func appliesTo(e *v1alpha1.AllowedIdentity, ns string, nsLabels map[string]string) (bool, error) {
	if len(e.Namespaces) == 0 && e.NamespaceSelector == nil {
		return true, nil
	}
	for _, n := range e.Namespaces {
		if n == ns {
			return true, nil
		}
	}
	if e.NamespaceSelector == nil {
		return false, nil
	}
	return selects(e.NamespaceSelector, nsLabels)
}

func matchesAny(patterns []string, name, ns, sa string, match func(pattern, name, ns, sa string) bool) bool {
	for _, pat := range patterns {
		if match(pat, name, ns, sa) {
			return true
		}
	}
	return false
}

// domainPattern: a domain template, with a trailing ".*" for every
// subdomain below it. A template that cannot be expanded for this Pod
// (a {serviceaccount.domain} of a service account without a '.') allows
// nothing.
func domainPattern(pat, domain, ns, sa string) bool {
	base, wildcard := strings.CutSuffix(pat, wildcardSuffix)
	expanded, _, err := tokens.Naming{DomainTemplate: base, ServiceTemplate: "x"}.Identity(ns, sa)
	if err != nil {
		return false
	}
	if !wildcard {
		return strings.EqualFold(domain, expanded)
	}
	prefix := expanded + "."
	return len(domain) > len(prefix) && strings.EqualFold(domain[:len(prefix)], prefix)
}

// servicePattern: "*", or a service template.
func servicePattern(pat, service, ns, sa string) bool {
	if pat == anyService {
		return true
	}
	_, expanded, err := tokens.Naming{DomainTemplate: "x", ServiceTemplate: pat}.Identity(ns, sa)
	return err == nil && strings.EqualFold(service, expanded)
}

// validatePolicy checks what the CRD schema cannot: label selectors and
// patterns, with the rules of pkg/tokens. It returns the field at fault,
// relative to spec.identityPolicy.
func validatePolicy(pol *v1alpha1.IdentityPolicy) (string, error) {
	if pol.NamespaceSelector != nil {
		if _, err := metav1.LabelSelectorAsSelector(pol.NamespaceSelector); err != nil {
			return "namespaceSelector", err
		}
	}
	for i, e := range pol.AllowedIdentities {
		at := fmt.Sprintf("allowedIdentities[%d]", i)
		if e.NamespaceSelector != nil {
			if _, err := metav1.LabelSelectorAsSelector(e.NamespaceSelector); err != nil {
				return at + ".namespaceSelector", err
			}
		}
		if len(e.Domains) == 0 {
			return at + ".domains", fmt.Errorf("list at least one domain")
		}
		for j, d := range e.Domains {
			base, _ := strings.CutSuffix(d, wildcardSuffix)
			if err := validatePattern(tokens.Naming{DomainTemplate: base, ServiceTemplate: "x"}); err != nil {
				return fmt.Sprintf("%s.domains[%d]", at, j), fmt.Errorf("%q: %v", truncate(d), err)
			}
			if len(e.Namespaces) == 0 && e.NamespaceSelector == nil && !strings.Contains(d, "{namespace") {
				return fmt.Sprintf("%s.domains[%d]", at, j), fmt.Errorf("%q has no {namespace}, and the entry names no namespaces: it would let every namespace claim it (set namespaceSelector: {} if that is meant)", truncate(d))
			}
		}
		for j, svc := range e.Services {
			if svc == anyService {
				continue
			}
			if err := validatePattern(tokens.Naming{DomainTemplate: "x", ServiceTemplate: svc}); err != nil {
				return fmt.Sprintf("%s.services[%d]", at, j), fmt.Errorf("%q: %v", truncate(svc), err)
			}
		}
	}
	return "", nil
}

// validatePattern checks that a pattern's templates expand to a valid name
// for some service account: a plain one, or one named <domain>.<service>
// as {serviceaccount.domain} needs.
func validatePattern(n tokens.Naming) error {
	_, _, err := n.Identity("ns", "sa")
	if err == nil {
		return nil
	}
	if _, _, err2 := n.Identity("ns", "sa.svc"); err2 == nil {
		return nil
	}
	return err
}
