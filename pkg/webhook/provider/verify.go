package provider

import (
	"context"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	"github.com/athenz-injector/athenz-injector/pkg/tokens"
	"github.com/athenz-injector/athenz-injector/pkg/webhook"
)

// Attributes of the InstanceConfirmation that the checks read.
const (
	attrInstanceID = "instanceId"
	attrSANDNS     = "sanDNS"
	attrSANIP      = "sanIP"
	attrSANURI     = "sanURI"
)

// checkPodDeleted names the refusal for a token whose Pod is gone or going.
const checkPodDeleted = "pod deleted"

// instanceIDInfix is in the SAN DNS name that carries the instance id:
// <id>.instanceid.athenz.<dns suffix>.
const instanceIDInfix = ".instanceid.athenz."

// confirm runs every check on c. It returns the Pod once it is known, for
// the log, and an *apiError when a check fails.
func (h *Handler) confirm(ctx context.Context, c *InstanceConfirmation) (*corev1.Pod, error) {
	if p := h.o.Provider; p != "" && !strings.EqualFold(c.Provider, p) {
		return nil, refuse("provider", "this provider service is %q, not %q", p, c.Provider)
	}
	token, err := attestationToken(c.AttestationData)
	if err != nil {
		return nil, err
	}
	rv, err := h.review(ctx, token)
	if err != nil {
		return nil, err
	}
	pod, err := h.pod(ctx, rv.namespace, rv.podName, rv.podUID, false)
	if err != nil {
		return nil, err
	}
	if ns := pod.Namespace; ns == "kube-system" || ns == h.o.InjectorNamespace {
		return pod, refuse("namespace", "pods in namespace %s get no identity from this provider: the injector never injects kube-system or its own namespace", ns)
	}
	if sa := webhook.ServiceAccount(pod); sa != rv.serviceAccount {
		return pod, refuse("service account", "the token is for service account %q, pod %s/%s runs as %q",
			rv.serviceAccount, pod.Namespace, pod.Name, sa)
	}
	id, err := h.identity(ctx, pod)
	if err != nil {
		return pod, err
	}
	if id.provider != "" && !strings.EqualFold(id.provider, c.Provider) {
		return pod, refuse("provider", "SidecarProfile %s of pod %s/%s names provider %q, not %q",
			id.profile, pod.Namespace, pod.Name, id.provider, c.Provider)
	}
	if err := checkIdentity(c, pod, id); err != nil {
		return pod, err
	}
	attrs := attributes{c.Attributes}
	if err := checkInstanceID(c, attrs, pod); err != nil {
		return pod, err
	}
	pod = h.waitPodIP(ctx, pod, attrs)
	if err := checkSANs(c, attrs, pod, id); err != nil {
		return pod, err
	}
	return pod, nil
}

// pod reads the Pod that a verified token is bound to: from Pods (the
// cache), and from LiveReader when the cache does not have it or has an
// older Pod of that name, or at once with fresh. The Pod must have the
// token's uid and not be terminating.
func (h *Handler) pod(ctx context.Context, namespace, name, uid string, fresh bool) (*corev1.Pod, error) {
	key := types.NamespacedName{Namespace: namespace, Name: name}
	var pod corev1.Pod
	var err error
	if !fresh || h.o.LiveReader == nil {
		err = h.o.Pods.Get(ctx, key, &pod)
		if err != nil && !apierrors.IsNotFound(err) {
			return nil, unavailable("reading pod %s: %v", key, err)
		}
	}
	if (fresh || err != nil || string(pod.UID) != uid) && h.o.LiveReader != nil {
		pod = corev1.Pod{}
		err = getByList(ctx, h.o.LiveReader, key, &pod)
		if err != nil && !apierrors.IsNotFound(err) {
			return nil, unavailable("reading pod %s from the API server: %v", key, err)
		}
	}
	switch {
	case err != nil:
		return nil, refuse(checkPodDeleted, "pod %s (uid %s), to which the token is bound, does not exist", key, uid)
	case string(pod.UID) != uid:
		return nil, refuse(checkPodDeleted, "the token is bound to pod %s with uid %s, which was deleted; the Pod of that name now has uid %s",
			key, uid, pod.UID)
	case pod.DeletionTimestamp != nil:
		return nil, refuse(checkPodDeleted, "pod %s is terminating (deleted at %s)",
			key, pod.DeletionTimestamp.UTC().Format(time.RFC3339))
	}
	return &pod, nil
}

// checkIdentity compares the requested domain and service with the Pod's.
func checkIdentity(c *InstanceConfirmation, pod *corev1.Pod, id *identity) error {
	if !strings.EqualFold(c.Domain, id.Domain) {
		if id.DomainAnnotated {
			return refuse("domain", "pod %s/%s has the annotation athenz.io/domain %q, not %q", pod.Namespace, pod.Name, id.Domain, c.Domain)
		}
		tmpl := orDefault(id.naming.DomainTemplate, tokens.DefaultDomainTemplate)
		if strings.Contains(tmpl, "{serviceaccount") {
			return refuse("domain", "pod %s/%s runs as service account %q, which maps to domain %q, not %q (SidecarProfile %s, domainTemplate %q)",
				pod.Namespace, pod.Name, webhook.ServiceAccount(pod), id.Domain, c.Domain, id.profile, tmpl)
		}
		return refuse("domain", "namespace %q maps to domain %q, not %q (SidecarProfile %s, domainTemplate %q)",
			pod.Namespace, id.Domain, c.Domain, id.profile, tmpl)
	}
	if !strings.EqualFold(c.Service, id.Service) {
		if id.ServiceAnnotated {
			return refuse("service", "pod %s/%s has the annotation athenz.io/service %q, not %q", pod.Namespace, pod.Name, id.Service, c.Service)
		}
		return refuse("service account", "pod %s/%s runs as service account %q, which maps to service %q, not %q (SidecarProfile %s, serviceTemplate %q)",
			pod.Namespace, pod.Name, webhook.ServiceAccount(pod), id.Service, c.Service, id.profile, orDefault(id.naming.ServiceTemplate, tokens.DefaultServiceTemplate))
	}
	return nil
}

// checkInstanceID requires an instance id, and every one the request
// names (attribute, SAN DNS, athenz://instanceid URI) to be the Pod's uid.
func checkInstanceID(c *InstanceConfirmation, attrs attributes, pod *corev1.Pod) error {
	type named struct{ id, where string }
	var ids []named
	if v := strings.TrimSpace(attrs.m[attrInstanceID]); v != "" {
		ids = append(ids, named{v, "attribute " + attrInstanceID})
	}
	for _, name := range attrs.list(attrSANDNS) {
		if id, _, ok := strings.Cut(name, instanceIDInfix); ok {
			ids = append(ids, named{id, "SAN DNS " + name})
		}
	}
	for _, u := range attrs.list(attrSANURI) {
		if id, ok := athenzInstanceID(u, c.Provider); ok {
			ids = append(ids, named{id, "SAN URI " + u})
		}
	}
	if len(ids) == 0 {
		return refuse("instance id", "the request names none (attribute %s, or SAN DNS <id>%s<dns suffix>)", attrInstanceID, instanceIDInfix)
	}
	for _, n := range ids {
		if !strings.EqualFold(n.id, string(pod.UID)) {
			return refuse("instance id", "%q (%s) is not the uid %s of pod %s/%s", n.id, n.where, pod.UID, pod.Namespace, pod.Name)
		}
	}
	return nil
}

// athenzInstanceID reads athenz://instanceid/<provider>/<id>.
func athenzInstanceID(s, provider string) (string, bool) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "athenz" || u.Host != "instanceid" {
		return "", false
	}
	p, id, ok := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
	if !ok || id == "" || !strings.EqualFold(p, provider) {
		return "", false
	}
	return id, true
}

// checkSANs requires every SAN ZTS forwards to be the Pod's.
func checkSANs(c *InstanceConfirmation, attrs attributes, pod *corev1.Pod, id *identity) error {
	podIPs := podAddrs(pod)
	for _, s := range attrs.list(attrSANIP) {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return refuse("san ip", "%q is not an IP address", s)
		}
		if !slices.Contains(podIPs, ip.Unmap()) {
			if len(podIPs) == 0 {
				return refuse("san ip", "%s is not an IP of pod %s/%s, which has no IP yet", s, pod.Namespace, pod.Name)
			}
			return refuse("san ip", "%s is not an IP of pod %s/%s (its IPs: %s)", s, pod.Namespace, pod.Name, joinAddrs(podIPs))
		}
	}
	dnsNames := []string{
		tokens.ServiceDNSName(id.Domain, id.Service, id.dnsSuffix),
		tokens.InstanceIDDNSName(string(pod.UID), id.dnsSuffix),
	}
	for _, s := range attrs.list(attrSANDNS) {
		if !containsFold(dnsNames, s) {
			return refuse("san dns", "%q is not one of the names of pod %s/%s: %s", s, pod.Namespace, pod.Name, strings.Join(dnsNames, ", "))
		}
	}
	uris := []string{tokens.ServiceSPIFFEURI("", pod.Namespace, id.Domain, id.Service)}
	if id.trustDomain != "" {
		uris = append(uris, tokens.ServiceSPIFFEURI(id.trustDomain, pod.Namespace, id.Domain, id.Service))
	}
	uris = append(uris, "athenz://instanceid/"+c.Provider+"/"+string(pod.UID))
	for _, s := range attrs.list(attrSANURI) {
		if !containsFold(uris, s) {
			return refuse("san uri", "%q is not one of the URIs of pod %s/%s: %s", s, pod.Namespace, pod.Name, strings.Join(uris, ", "))
		}
	}
	return nil
}

// attributes reads the confirmation's attributes.
type attributes struct{ m map[string]string }

// list splits a comma-separated attribute, dropping empty entries.
func (a attributes) list(key string) []string {
	var out []string
	for v := range strings.SplitSeq(a.m[key], ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func podAddrs(pod *corev1.Pod) []netip.Addr {
	var out []netip.Addr
	add := func(s string) {
		if ip, err := netip.ParseAddr(s); err == nil && !slices.Contains(out, ip.Unmap()) {
			out = append(out, ip.Unmap())
		}
	}
	add(pod.Status.PodIP)
	for _, ip := range pod.Status.PodIPs {
		add(ip.IP)
	}
	return out
}

func joinAddrs(list []netip.Addr) string {
	s := make([]string, len(list))
	for i, ip := range list {
		s[i] = ip.String()
	}
	return strings.Join(s, ", ")
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}
