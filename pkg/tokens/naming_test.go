package tokens_test

import (
	"strings"
	"testing"

	"github.com/athenz-injector/athenz-injector/pkg/tokens"
)

func TestNamingIdentity(t *testing.T) {
	tests := []struct {
		name                      string
		naming                    tokens.Naming
		namespace, serviceAccount string
		wantDomain, wantService   string
		wantErr                   string
	}{
		{name: "defaults", namespace: "sports", serviceAccount: "api", wantDomain: "sports", wantService: "api"},
		{name: "dashes become dots", namespace: "sports-frontend", serviceAccount: "web", wantDomain: "sports.frontend", wantService: "web"},
		{name: "double dash is a dash", namespace: "my--team-prod", serviceAccount: "web", wantDomain: "my-team.prod", wantService: "web"},
		{name: "prefix template", naming: tokens.Naming{DomainTemplate: "k8s.{namespace}"}, namespace: "sports", serviceAccount: "api", wantDomain: "k8s.sports", wantService: "api"},
		{name: "raw namespace", naming: tokens.Naming{DomainTemplate: "{namespace.raw}"}, namespace: "sports", serviceAccount: "api", wantDomain: "sports", wantService: "api"},
		{name: "built-in provider convention",
			naming:    tokens.Naming{DomainTemplate: tokens.ServiceAccountDomainTemplate, ServiceTemplate: tokens.ServiceAccountServiceTemplate},
			namespace: "anything", serviceAccount: "sports.prod.api", wantDomain: "sports.prod", wantService: "api"},
		{name: "built-in convention needs a dot",
			naming:    tokens.Naming{DomainTemplate: tokens.ServiceAccountDomainTemplate, ServiceTemplate: tokens.ServiceAccountServiceTemplate},
			namespace: "ns", serviceAccount: "default", wantErr: "<domain>.<service>"},
		{name: "service account that is not a service name", namespace: "ns", serviceAccount: "my.sa", wantErr: "service \"my.sa\""},
		{name: "namespace that is not a domain", namespace: "ns-", serviceAccount: "sa", wantErr: "domain \"ns.\""},
		{name: "unknown placeholder", naming: tokens.Naming{DomainTemplate: "{cluster}"}, namespace: "ns", serviceAccount: "sa", wantErr: "unknown placeholder {cluster}"},
		{name: "unclosed placeholder", naming: tokens.Naming{ServiceTemplate: "{serviceaccount"}, namespace: "ns", serviceAccount: "sa", wantErr: "without '}'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, s, err := tt.naming.Identity(tt.namespace, tt.serviceAccount)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Identity(%q, %q) = %q, %q, %v; want error containing %q", tt.namespace, tt.serviceAccount, d, s, err, tt.wantErr)
				}
				return
			}
			if err != nil || d != tt.wantDomain || s != tt.wantService {
				t.Errorf("Identity(%q, %q) = %q, %q, %v; want %q, %q", tt.namespace, tt.serviceAccount, d, s, err, tt.wantDomain, tt.wantService)
			}
		})
	}
}

func TestNamingValidate(t *testing.T) {
	if err := (tokens.Naming{}).Validate(); err != nil {
		t.Errorf("zero Naming: %v", err)
	}
	if err := (tokens.Naming{DomainTemplate: "x.{nope}"}).Validate(); err == nil || !strings.Contains(err.Error(), "domain template") {
		t.Errorf("bad domain template: %v, want an error naming the domain template", err)
	}
}

func TestNamespaceDomainRoundTrip(t *testing.T) {
	for _, ns := range []string{"sports", "sports-api", "my--team", "a--b-c", "x-y-z"} {
		if got := tokens.DomainToNamespace(tokens.NamespaceToDomain(ns)); got != ns {
			t.Errorf("DomainToNamespace(NamespaceToDomain(%q)) = %q", ns, got)
		}
	}
}

func TestSANNames(t *testing.T) {
	tests := []struct{ name, got, want string }{
		{name: "service DNS", got: tokens.ServiceDNSName("sports.prod", "api", "athenz.cloud"), want: "api.sports-prod.athenz.cloud"},
		{name: "instance id DNS", got: tokens.InstanceIDDNSName("0c9d-uid", "athenz.cloud"), want: "0c9d-uid.instanceid.athenz.athenz.cloud"},
		{name: "SPIFFE without trust domain", got: tokens.ServiceSPIFFEURI("", "ns", "sports", "api"), want: "spiffe://sports/sa/api"},
		{name: "SPIFFE with trust domain", got: tokens.ServiceSPIFFEURI("athenz.io", "sports-ns", "sports", "api"), want: "spiffe://athenz.io/ns/sports-ns/sa/sports.api"},
		{name: "role SPIFFE", got: tokens.RoleSPIFFEURI("", "sports", "reader"), want: "spiffe://sports/ra/reader"},
		{name: "role SPIFFE with trust domain", got: tokens.RoleSPIFFEURI("athenz.io", "sports", "reader"), want: "spiffe://athenz.io/ns/sports/ra/reader"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %q, want %q", tt.name, tt.got, tt.want)
		}
	}
}
