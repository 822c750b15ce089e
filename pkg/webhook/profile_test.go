package webhook

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/athenz-injector/athenz-injector/api/v1alpha1"
)

func TestValidateProfile(t *testing.T) {
	base := loadCase(t, "one-container").profile
	tests := []struct {
		name   string
		modify func(*v1alpha1.SidecarProfile)
		want   string // "" means valid
	}{
		{name: "valid", modify: func(*v1alpha1.SidecarProfile) {}},
		{name: "http URL", modify: func(p *v1alpha1.SidecarProfile) { p.Spec.ZTS.URL = "http://zts" }, want: "spec.zts.url"},
		{name: "unknown placeholder", modify: func(p *v1alpha1.SidecarProfile) { p.Spec.DomainTemplate = "k8s.{cluster}" }, want: "spec.domainTemplate"},
		{name: "bad service template", modify: func(p *v1alpha1.SidecarProfile) { p.Spec.ServiceTemplate = "{serviceaccount" }, want: "spec.serviceTemplate"},
		{name: "bad prefetch", modify: func(p *v1alpha1.SidecarProfile) { p.Spec.Prefetch = []string{"sports:role."} }, want: "spec.prefetch"},
		{name: "token files", modify: func(p *v1alpha1.SidecarProfile) {
			p.Spec.TokenFiles = []string{"accesstoken:sports:role.reader", "roletoken:sports:role.team.writer"}
		}},
		{name: "token file without kind", modify: func(p *v1alpha1.SidecarProfile) { p.Spec.TokenFiles = []string{"sports:role.reader"} }, want: "spec.tokenFiles"},
		{name: "token file of a domain", modify: func(p *v1alpha1.SidecarProfile) { p.Spec.TokenFiles = []string{"roletoken:sports:domain"} }, want: "spec.tokenFiles"},
		{name: "TLS hosts", modify: func(p *v1alpha1.SidecarProfile) {
			p.Spec.ProxyTLSHosts = []string{"api.example.com", "*.svc:8443", "*:443"}
		}},
		{name: "bad TLS host", modify: func(p *v1alpha1.SidecarProfile) { p.Spec.ProxyTLSHosts = []string{"https://api.example.com/"} }, want: "spec.proxyTLSHosts"},
		{name: "bad allowed host", modify: func(p *v1alpha1.SidecarProfile) { p.Spec.ProxyAllowedHosts = []string{"api:99999"} }, want: "spec.proxyAllowedHosts"},
		{name: "no provider", modify: func(p *v1alpha1.SidecarProfile) { p.Spec.Identity.Provider = "" }, want: "spec.identity.provider"},
		{name: "key-file without key", modify: func(p *v1alpha1.SidecarProfile) { p.Spec.Identity.Mode = v1alpha1.IdentityKeyFile }, want: "spec.identity.keyFile"},
		{name: "same ports", modify: func(p *v1alpha1.SidecarProfile) { p.Spec.Sidecar.Ports.API = DefaultHealthPort }, want: "spec.sidecar.ports"},
		{
			name: "request above limit",
			modify: func(p *v1alpha1.SidecarProfile) {
				p.Spec.Sidecar.Resources = &corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")},
					Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Mi")},
				}
			},
			want: "spec.sidecar.resources",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := base.DeepCopy()
			tt.modify(p)
			err := ValidateProfile(p)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("ValidateProfile(%s) = %v, want nil", tt.name, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ValidateProfile(%s) = %v, want an error naming %s", tt.name, err, tt.want)
			}
			cond := ProfileCondition(p)
			if cond.Status != "False" || !strings.HasPrefix(cond.Message, tt.want) {
				t.Errorf("ProfileCondition(%s) = %s %q, want False starting with %s", tt.name, cond.Status, cond.Message, tt.want)
			}
		})
	}
}
