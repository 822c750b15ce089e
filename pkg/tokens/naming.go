package tokens

import (
	"fmt"
	"strings"
)

// Default naming templates: the domain comes from the namespace, the service
// is the service account name.
const (
	DefaultDomainTemplate  = "{namespace}"
	DefaultServiceTemplate = "{serviceaccount}"
)

// Templates for ZTS's built-in Kubernetes provider, which requires the
// service account to be named "<domain>.<service>".
const (
	ServiceAccountDomainTemplate  = "{serviceaccount.domain}"
	ServiceAccountServiceTemplate = "{serviceaccount.service}"
)

// Naming maps a Pod's namespace and service account to its Athenz domain and
// service. The injector (to fill the sidecar's environment and to refuse
// Pods at admission), the sidecar, and the identity provider callback all
// use it, so they agree on every name.
//
// A template is literal text with these placeholders:
//
//	{namespace}               the namespace, mapped to a domain by NamespaceToDomain
//	{namespace.raw}           the namespace as it is
//	{serviceaccount}          the service account name as it is
//	{serviceaccount.domain}   the service account name before its last '.'
//	{serviceaccount.service}  the service account name after its last '.'
//
// For example "k8s.{namespace}" puts every namespace under the domain k8s.
type Naming struct {
	// DomainTemplate builds the domain. Default: DefaultDomainTemplate.
	DomainTemplate string
	// ServiceTemplate builds the service. Default: DefaultServiceTemplate.
	ServiceTemplate string
}

// Validate checks that both templates use only known placeholders and that
// their literal text could be part of an Athenz name.
func (n Naming) Validate() error {
	if _, err := expand(n.domainTemplate(), "ns", "sa.svc"); err != nil {
		return fmt.Errorf("domain template: %w", err)
	}
	if _, err := expand(n.serviceTemplate(), "ns", "sa.svc"); err != nil {
		return fmt.Errorf("service template: %w", err)
	}
	return nil
}

// Identity returns the Athenz domain and service for a Pod in namespace
// running as serviceAccount. The error names what is wrong, e.g. a
// namespace that does not map to a valid domain.
func (n Naming) Identity(namespace, serviceAccount string) (domain, service string, err error) {
	domain, err = expand(n.domainTemplate(), namespace, serviceAccount)
	if err != nil {
		return "", "", fmt.Errorf("domain template: %w", err)
	}
	if err := ValidateDomain(domain); err != nil {
		return "", "", fmt.Errorf("domain %q from template %q (namespace %q, service account %q): %w",
			domain, n.domainTemplate(), namespace, serviceAccount, err)
	}
	service, err = expand(n.serviceTemplate(), namespace, serviceAccount)
	if err != nil {
		return "", "", fmt.Errorf("service template: %w", err)
	}
	if err := ValidateService(service); err != nil {
		return "", "", fmt.Errorf("service %q from template %q (namespace %q, service account %q): %w",
			service, n.serviceTemplate(), namespace, serviceAccount, err)
	}
	return domain, service, nil
}

func (n Naming) domainTemplate() string {
	if n.DomainTemplate == "" {
		return DefaultDomainTemplate
	}
	return n.DomainTemplate
}

func (n Naming) serviceTemplate() string {
	if n.ServiceTemplate == "" {
		return DefaultServiceTemplate
	}
	return n.ServiceTemplate
}

func expand(tmpl, namespace, serviceAccount string) (string, error) {
	var b strings.Builder
	rest := tmpl
	for {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			if strings.IndexByte(rest, '}') >= 0 {
				return "", fmt.Errorf("%q has a '}' without '{'", tmpl)
			}
			b.WriteString(rest)
			return b.String(), nil
		}
		b.WriteString(rest[:open])
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return "", fmt.Errorf("%q has a '{' without '}'", tmpl)
		}
		name := rest[open+1 : open+end]
		rest = rest[open+end+1:]
		switch name {
		case "namespace":
			b.WriteString(NamespaceToDomain(namespace))
		case "namespace.raw":
			b.WriteString(namespace)
		case "serviceaccount":
			b.WriteString(serviceAccount)
		case "serviceaccount.domain", "serviceaccount.service":
			i := strings.LastIndexByte(serviceAccount, '.')
			if i <= 0 || i == len(serviceAccount)-1 {
				return "", fmt.Errorf("placeholder {%s} needs a service account named <domain>.<service>, got %q", name, serviceAccount)
			}
			if name == "serviceaccount.domain" {
				b.WriteString(serviceAccount[:i])
			} else {
				b.WriteString(serviceAccount[i+1:])
			}
		default:
			return "", fmt.Errorf("%q has unknown placeholder {%s} (known: {namespace}, {namespace.raw}, {serviceaccount}, {serviceaccount.domain}, {serviceaccount.service})", tmpl, name)
		}
	}
}

// NamespaceToDomain maps a Kubernetes namespace to an Athenz domain with the
// convention of the Athenz Kubernetes tools: '-' becomes '.', and "--"
// becomes a literal '-'. So "sports-api" is the domain "sports.api" and
// "my--team" is "my-team".
func NamespaceToDomain(namespace string) string {
	if !strings.Contains(namespace, "-") {
		return namespace
	}
	var b strings.Builder
	b.Grow(len(namespace))
	for i := 0; i < len(namespace); i++ {
		if namespace[i] != '-' {
			b.WriteByte(namespace[i])
			continue
		}
		if i+1 < len(namespace) && namespace[i+1] == '-' {
			b.WriteByte('-')
			i++
			continue
		}
		b.WriteByte('.')
	}
	return b.String()
}

// DomainToNamespace is the inverse of NamespaceToDomain.
func DomainToNamespace(domain string) string {
	r := strings.NewReplacer("-", "--", ".", "-")
	return r.Replace(domain)
}

// ServiceDNSName is the certificate's service SAN:
// <service>.<domain with '.' replaced by '-'>.<dnsSuffix>.
func ServiceDNSName(domain, service, dnsSuffix string) string {
	return service + "." + strings.ReplaceAll(domain, ".", "-") + "." + dnsSuffix
}

// InstanceIDDNSName is the SAN from which ZTS reads the instance id:
// <id>.instanceid.athenz.<dnsSuffix>.
func InstanceIDDNSName(instanceID, dnsSuffix string) string {
	return instanceID + ".instanceid.athenz." + dnsSuffix
}

// ServiceSPIFFEURI is the certificate's URI SAN. Without a trust domain it
// is the older spiffe://<domain>/sa/<service>; with one it is
// spiffe://<trust domain>/ns/<namespace>/sa/<domain>.<service>.
func ServiceSPIFFEURI(trustDomain, namespace, domain, service string) string {
	if trustDomain == "" {
		return "spiffe://" + domain + "/sa/" + service
	}
	return "spiffe://" + trustDomain + "/ns/" + namespace + "/sa/" + domain + "." + service
}

// RoleSPIFFEURI is a role certificate's URI SAN: spiffe://<domain>/ra/<role>,
// or spiffe://<trust domain>/ns/<domain>/ra/<role> with a trust domain.
func RoleSPIFFEURI(trustDomain, domain, role string) string {
	if trustDomain == "" {
		return "spiffe://" + domain + "/ra/" + role
	}
	return "spiffe://" + trustDomain + "/ns/" + domain + "/ra/" + role
}
