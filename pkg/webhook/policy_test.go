package webhook

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/athenz-injector/athenz-injector/api/v1alpha1"
)

// TestAuthorize is the identity policy's decision table: which identity a
// Pod of namespace shop may have with which profile. The same function
// decides at admission and in the provider callback; the envtest suites of
// pkg/webhook/app and pkg/webhook/provider run it on the real API server.
func TestAuthorize(t *testing.T) {
	const injectorNS = "athenz-injector"
	s := Settings{Namespace: injectorNS}
	profile := func(ns, name string, edit func(*v1alpha1.IdentityPolicy)) v1alpha1.SidecarProfile {
		p := v1alpha1.SidecarProfile{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
		if edit != nil {
			edit(&p.Spec.IdentityPolicy)
		}
		return p
	}
	allow := func(e ...v1alpha1.AllowedIdentity) func(*v1alpha1.IdentityPolicy) {
		return func(pol *v1alpha1.IdentityPolicy) { pol.AllowedIdentities = e }
	}
	shopLabels := map[string]string{"kubernetes.io/metadata.name": "shop", "team": "retail"}
	retail := &metav1.LabelSelector{MatchLabels: map[string]string{"team": "retail"}}

	plainDefault := profile(injectorNS, "default", nil)
	shopStar := profile(injectorNS, "default", allow(v1alpha1.AllowedIdentity{Namespaces: []string{"shop"}, Domains: []string{"shop.*"}}))
	ownSubdomains := profile(injectorNS, "default", allow(v1alpha1.AllowedIdentity{Domains: []string{"{namespace}.*"}, Services: []string{"*"}}))
	bySelector := profile(injectorNS, "default", allow(v1alpha1.AllowedIdentity{NamespaceSelector: retail, Domains: []string{"retail"}, Services: []string{"web", "batch"}}))
	otherNS := profile(injectorNS, "default", allow(v1alpha1.AllowedIdentity{Namespaces: []string{"media"}, Domains: []string{"shop.*"}}))
	builtin := profile(injectorNS, "builtin", nil)
	builtinServed := profile(injectorNS, "builtin", func(pol *v1alpha1.IdentityPolicy) { pol.NamespaceSelector = retail })
	builtinOthers := profile(injectorNS, "builtin", func(pol *v1alpha1.IdentityPolicy) {
		pol.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"team": "media"}}
	})
	badSelector := profile(injectorNS, "default", func(pol *v1alpha1.IdentityPolicy) {
		pol.NamespaceSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "team", Operator: "Near"}}}
	})
	shopOwn := profile("shop", "default", nil)
	shopWidens := profile("shop", "default", allow(v1alpha1.AllowedIdentity{Namespaces: []string{"shop"}, Domains: []string{"payments"}}))
	shopNarrows := profile("shop", "default", allow(v1alpha1.AllowedIdentity{Namespaces: []string{"shop"}, Domains: []string{"shop.batch"}}))
	shopTemplate := profile("shop", "default", nil)
	shopTemplate.Spec.DomainTemplate = "shop.jobs"

	tests := []struct {
		name    string
		profile v1alpha1.SidecarProfile
		cluster []v1alpha1.SidecarProfile
		domain  string // annotation; empty: none
		service string // annotation; empty: none
		want    string // part of the denial; empty: allowed
		check   string
	}{
		{name: "templates' identity", profile: plainDefault},
		{name: "domain annotation without policy", profile: plainDefault, domain: "payments",
			want:  `identity policy of SidecarProfile athenz-injector/default: namespace "shop" may not be payments.web (annotation athenz.io/domain "payments"): it allows only the identity its templates give (shop.web); to allow another, list it in spec.identityPolicy.allowedIdentities`,
			check: CheckPolicy},
		{name: "domain annotation naming the templates' domain", profile: plainDefault, domain: "shop"},
		{name: "service annotation without policy", profile: plainDefault, service: "admin", want: `annotation athenz.io/service "admin"`, check: CheckPolicy},
		{name: "shop.* allows shop.batch", profile: shopStar, domain: "shop.batch"},
		{name: "shop.* allows deeper subdomains", profile: shopStar, domain: "shop.batch.nightly"},
		{name: "shop.* is compared without case", profile: shopStar, domain: "Shop.Batch"},
		{name: "shop.* does not allow shop itself with another service", profile: shopStar, service: "admin", want: "no entry of its spec.identityPolicy.allowedIdentities allows it", check: CheckPolicy},
		{name: "shop.* refuses payments", profile: shopStar, domain: "payments", want: `may not be payments.web`, check: CheckPolicy},
		{name: "shop.* refuses a look-alike", profile: shopStar, domain: "shopping", want: `may not be shopping.web`, check: CheckPolicy},
		{name: "shop.* with services unset keeps the templates' service", profile: shopStar, domain: "shop.batch", service: "admin", want: `may not be shop.batch.admin`, check: CheckPolicy},
		{name: "an entry for another namespace", profile: otherNS, domain: "shop.batch", want: `may not be shop.batch.web`, check: CheckPolicy},
		{name: "{namespace}.* with any service", profile: ownSubdomains, domain: "shop.batch", service: "admin"},
		{name: "{namespace}.* is the namespace's own", profile: ownSubdomains, domain: "media.batch", want: `may not be media.batch.web`, check: CheckPolicy},
		{name: "entry by namespace selector", profile: bySelector, domain: "retail", service: "batch"},
		{name: "entry by namespace selector, service not listed", profile: bySelector, domain: "retail", service: "admin", want: `may not be retail.admin`, check: CheckPolicy},
		{name: "named profile not serving the namespace (unset selector)", profile: builtin,
			want: `SidecarProfile athenz-injector/builtin does not serve namespace "shop": only the profile named "default" serves every namespace; select the namespace with spec.identityPolicy.namespaceSelector`, check: CheckProfile},
		{name: "named profile serving other namespaces", profile: builtinOthers, want: "its spec.identityPolicy.namespaceSelector does not select it", check: CheckProfile},
		{name: "named profile serving the namespace", profile: builtinServed},
		{name: "malformed selector", profile: badSelector, want: "SidecarProfile athenz-injector/default: spec.identityPolicy.namespaceSelector: ", check: CheckPolicy},
		{name: "own profile within the cluster's", profile: shopOwn, cluster: []v1alpha1.SidecarProfile{plainDefault}},
		{name: "own profile without any cluster profile", profile: shopOwn,
			want: `identity policy: namespace "shop" may not be shop.web (from the templates of SidecarProfile shop/default): no SidecarProfile of the injector's namespace athenz-injector that serves the namespace allows it`, check: CheckPolicy},
		{name: "own profile, cluster profile serving others only", profile: shopOwn, cluster: []v1alpha1.SidecarProfile{builtin}, want: "no SidecarProfile of the injector's namespace", check: CheckPolicy},
		{name: "own profile, served by a named cluster profile", profile: shopOwn, cluster: []v1alpha1.SidecarProfile{builtinServed}},
		{name: "own profile cannot widen", profile: shopWidens, cluster: []v1alpha1.SidecarProfile{shopStar}, domain: "payments",
			want: "the namespace's own profile shop/default can only narrow what those allow; to allow it, list it in spec.identityPolicy.allowedIdentities of athenz-injector/default", check: CheckPolicy},
		{name: "own profile's templates cannot widen", profile: shopTemplate, cluster: []v1alpha1.SidecarProfile{plainDefault}, want: `may not be shop.jobs.web (from the templates of SidecarProfile shop/default)`, check: CheckPolicy},
		{name: "own profile's templates within the cluster's entries", profile: shopTemplate, cluster: []v1alpha1.SidecarProfile{shopStar}},
		{name: "own profile narrows: allowed by both", profile: shopNarrows, cluster: []v1alpha1.SidecarProfile{shopStar}, domain: "shop.batch"},
		{name: "own profile narrows: cluster allows, own does not", profile: shopNarrows, cluster: []v1alpha1.SidecarProfile{shopStar}, domain: "shop.web",
			want: "identity policy of SidecarProfile shop/default", check: CheckPolicy},
		{name: "own profile without policy refuses annotations", profile: shopOwn, cluster: []v1alpha1.SidecarProfile{shopStar}, domain: "shop.batch",
			want: "identity policy of SidecarProfile shop/default", check: CheckPolicy},
		{name: "profiles of other namespaces bound nothing", profile: shopOwn, cluster: []v1alpha1.SidecarProfile{profile("media", "default", nil)}, want: "no SidecarProfile of the injector's namespace", check: CheckPolicy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-0", Annotations: map[string]string{}},
				Spec:       corev1.PodSpec{ServiceAccountName: "web"},
			}
			if tt.domain != "" {
				pod.Annotations[AnnotationDomain] = tt.domain
			}
			if tt.service != "" {
				pod.Annotations[AnnotationService] = tt.service
			}
			id, err := PodIdentity(pod, &tt.profile)
			if err != nil {
				t.Fatalf("PodIdentity: %v", err)
			}
			err = Authorize(pod, shopLabels, &tt.profile, id, tt.cluster, s)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Authorize(%s) = %v, want allowed", id, err)
				}
				return
			}
			d, ok := IsDenial(err)
			if !ok {
				t.Fatalf("Authorize(%s) = %v, want a denial containing %q", id, err, tt.want)
			}
			if !strings.Contains(d.Msg, tt.want) || d.Check != tt.check {
				t.Errorf("Authorize(%s) = %q (check %q), want it to contain %q (check %q)", id, d.Msg, d.Check, tt.want, tt.check)
			}
		})
	}
}

func TestValidateProfilePolicy(t *testing.T) {
	base := loadCase(t, "one-container").profile
	tests := []struct {
		name string
		pol  v1alpha1.IdentityPolicy
		want string // in the error; empty: valid
	}{
		{name: "none"},
		{name: "namespaced entry", pol: v1alpha1.IdentityPolicy{AllowedIdentities: []v1alpha1.AllowedIdentity{{Namespaces: []string{"shop"}, Domains: []string{"shop.*", "k8s.{namespace}"}, Services: []string{"*", "{serviceaccount}-batch"}}}}},
		{name: "every namespace, own domains", pol: v1alpha1.IdentityPolicy{AllowedIdentities: []v1alpha1.AllowedIdentity{{Domains: []string{"{namespace}.*"}}}}},
		{name: "every namespace, explicit", pol: v1alpha1.IdentityPolicy{AllowedIdentities: []v1alpha1.AllowedIdentity{{NamespaceSelector: &metav1.LabelSelector{}, Domains: []string{"shared"}}}}},
		{name: "every namespace, fixed domain", pol: v1alpha1.IdentityPolicy{AllowedIdentities: []v1alpha1.AllowedIdentity{{Domains: []string{"payments"}}}}, want: "spec.identityPolicy.allowedIdentities[0].domains[0]: \"payments\" has no {namespace}"},
		{name: "no domains", pol: v1alpha1.IdentityPolicy{AllowedIdentities: []v1alpha1.AllowedIdentity{{Namespaces: []string{"shop"}}}}, want: "allowedIdentities[0].domains: list at least one"},
		{name: "bad domain", pol: v1alpha1.IdentityPolicy{AllowedIdentities: []v1alpha1.AllowedIdentity{{Namespaces: []string{"shop"}, Domains: []string{"shop..x"}}}}, want: "allowedIdentities[0].domains[0]"},
		{name: "unknown placeholder", pol: v1alpha1.IdentityPolicy{AllowedIdentities: []v1alpha1.AllowedIdentity{{Namespaces: []string{"shop"}, Domains: []string{"{cluster}"}}}}, want: "unknown placeholder {cluster}"},
		{name: "bad service", pol: v1alpha1.IdentityPolicy{AllowedIdentities: []v1alpha1.AllowedIdentity{{Namespaces: []string{"shop"}, Domains: []string{"shop"}, Services: []string{"a.b"}}}}, want: "allowedIdentities[0].services[0]"},
		{name: "bad selector", pol: v1alpha1.IdentityPolicy{NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "x", Operator: "In"}}}}, want: "spec.identityPolicy.namespaceSelector"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := base.DeepCopy()
			p.Spec.IdentityPolicy = tt.pol
			err := ValidateProfile(p)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("ValidateProfile = %v, want valid", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("ValidateProfile = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
