package tokens_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/athenz-injector/athenz-injector/pkg/tokens"
)

// FuzzParseTargets: target lists (ATHENZ_PREFETCH, ATHENZ_ROLE_CERTS,
// the injector's prefetch annotation) never panic; an accepted list holds
// valid names, has no duplicates, and its String() forms parse back to the
// same list.
func FuzzParseTargets(f *testing.F) {
	for _, s := range []string{
		"prov:role.reader", "prov:role.reader,other:domain", " a.b:role.c-d , a.b:domain ", "prov:role.reader,prov:role.reader",
		"prov", "prov:", ":role.x", "prov:role.", "prov:roles.x", "prov:role.a,", ",", "", "a:role.b:c", "sys.auth:role.admin",
		"x:role." + strings.Repeat("r", 300), "a-b:role._c",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, list string) {
		targets, err := tokens.ParseTargets(list)
		if err != nil {
			if targets != nil {
				t.Errorf("ParseTargets(%q) = %v with error %v, want no targets", list, targets, err)
			}
			return
		}
		forms := make([]string, len(targets))
		for i, tg := range targets {
			if err := tokens.ValidateDomain(tg.Domain); err != nil {
				t.Errorf("ParseTargets(%q) accepted domain %q: %v", list, tg.Domain, err)
			}
			if tg.Role != "" {
				if err := tokens.ValidateCompoundName(tg.Role); err != nil {
					t.Errorf("ParseTargets(%q) accepted role %q: %v", list, tg.Role, err)
				}
			}
			if slices.Contains(targets[:i], tg) {
				t.Errorf("ParseTargets(%q) = %v: duplicate %v", list, targets, tg)
			}
			back, err := tokens.ParseTarget(tg.String())
			if err != nil || back != tg {
				t.Errorf("ParseTarget(%q) = %v, %v; want %v back", tg.String(), back, err, tg)
			}
			forms[i] = tg.String()
		}
		again, err := tokens.ParseTargets(strings.Join(forms, ","))
		if err != nil || !slices.Equal(again, targets) {
			t.Errorf("ParseTargets of %q's forms = %v, %v; want %v", list, again, err, targets)
		}
	})
}

// FuzzParseRoles: role lists never panic; an accepted list is sorted,
// without duplicates, of valid names, does not depend on the order of the
// input, and its join parses back to itself.
func FuzzParseRoles(f *testing.F) {
	for _, s := range []string{
		"reader", "writer,reader", " a , b ,a", "reader,,writer", ",", "", "  ", "a.b.c,a-b", "-a", "a.", "read/er",
		"a," + strings.Repeat("b", 257), "Reader,reader",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, list string) {
		roles, err := tokens.ParseRoles(list)
		if err != nil {
			return
		}
		for i, r := range roles {
			if err := tokens.ValidateCompoundName(r); err != nil {
				t.Errorf("ParseRoles(%q) accepted %q: %v", list, r, err)
			}
			if i > 0 && roles[i-1] >= r {
				t.Errorf("ParseRoles(%q) = %q: not sorted and unique", list, roles)
			}
		}
		again, err := tokens.ParseRoles(strings.Join(roles, ","))
		if err != nil || !slices.Equal(again, roles) {
			t.Errorf("ParseRoles(join(%q)) = %q, %v; want %q", roles, again, err, roles)
		}
		parts := strings.Split(list, ",")
		slices.Reverse(parts)
		rev, err := tokens.ParseRoles(strings.Join(parts, ","))
		if err != nil || !slices.Equal(rev, roles) {
			t.Errorf("ParseRoles of %q reversed = %q, %v; want %q (order must not matter)", list, rev, err, roles)
		}
	})
}

// FuzzNames: the name rules agree with each other and the namespace
// mapping is reversible for every valid domain.
func FuzzNames(f *testing.F) {
	for _, s := range []string{"sports", "sports.api", "a-b.c_d", "my--team", "a-.b", "-a", "a..b", ".a", "a.", "", "A9_-", "sports-api", "x---y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		simple := tokens.ValidateSimpleName(s) == nil
		compound := tokens.ValidateCompoundName(s) == nil
		if simple && !compound {
			t.Errorf("%q is a simple name but not a compound name", s)
		}
		if simple && strings.Contains(s, ".") {
			t.Errorf("simple name %q contains a dot", s)
		}
		if compound {
			for part := range strings.SplitSeq(s, ".") {
				if tokens.ValidateSimpleName(part) != nil {
					t.Errorf("compound name %q has part %q that is not a simple name", s, part)
				}
			}
			ns := tokens.DomainToNamespace(s)
			if got := tokens.NamespaceToDomain(ns); got != s {
				t.Errorf("NamespaceToDomain(DomainToNamespace(%q) = %q) = %q, want the domain back", s, ns, got)
			}
			if strings.Contains(ns, ".") {
				t.Errorf("DomainToNamespace(%q) = %q contains a dot", s, ns)
			}
		}
		tokens.NamespaceToDomain(s) // never panics
	})
}

// FuzzNamingIdentity: naming templates never panic; a name they produce is
// valid; a template that fails Validate fails for every Pod; the default
// templates give NamespaceToDomain(namespace) and the service account.
func FuzzNamingIdentity(f *testing.F) {
	for _, s := range []struct{ domainTmpl, serviceTmpl, ns, sa string }{
		{"", "", "sports-api", "web"},
		{"k8s.{namespace}", "{serviceaccount}", "team", "api"},
		{"{serviceaccount.domain}", "{serviceaccount.service}", "ns", "sports.api"},
		{"{namespace.raw}", "svc-{serviceaccount}", "my--team", "a"},
		{"{namespace", "{serviceaccount}", "ns", "sa"},
		{"x}", "{unknown}", "ns", "sa"},
		{"{serviceaccount.domain}", "{serviceaccount.service}", "ns", "nodot"},
		{"{serviceaccount.domain}", "{serviceaccount.service}", "ns", ".x"},
		{"{}", "{{namespace}}", "", ""},
	} {
		f.Add(s.domainTmpl, s.serviceTmpl, s.ns, s.sa)
	}
	f.Fuzz(func(t *testing.T, domainTmpl, serviceTmpl, namespace, serviceAccount string) {
		n := tokens.Naming{DomainTemplate: domainTmpl, ServiceTemplate: serviceTmpl}
		valid := n.Validate() == nil
		domain, service, err := n.Identity(namespace, serviceAccount)
		if err != nil {
			if domain != "" || service != "" {
				t.Errorf("Identity(%q, %q) with %+v = %q, %q and error %v, want no names", namespace, serviceAccount, n, domain, service, err)
			}
			return
		}
		if !valid {
			t.Errorf("%+v fails Validate (%v) but Identity(%q, %q) = %q, %q", n, n.Validate(), namespace, serviceAccount, domain, service)
		}
		if err := tokens.ValidateDomain(domain); err != nil {
			t.Errorf("Identity(%q, %q) with %+v gave domain %q: %v", namespace, serviceAccount, n, domain, err)
		}
		if err := tokens.ValidateService(service); err != nil {
			t.Errorf("Identity(%q, %q) with %+v gave service %q: %v", namespace, serviceAccount, n, service, err)
		}
		if domainTmpl == "" && serviceTmpl == "" {
			if domain != tokens.NamespaceToDomain(namespace) || service != serviceAccount {
				t.Errorf("default naming of %q, %q = %q, %q; want %q, %q", namespace, serviceAccount, domain, service, tokens.NamespaceToDomain(namespace), serviceAccount)
			}
		}
		if !strings.ContainsAny(domainTmpl, "{}") && domainTmpl != "" && domain != domainTmpl {
			t.Errorf("literal domain template %q gave %q", domainTmpl, domain)
		}
	})
}
