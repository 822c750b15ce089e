package app_test

import (
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/athenz-injector/athenz-injector/api/v1alpha1"
)

// TestProfileSchema checks the CRD's schema and CEL rules as the API server
// applies them, from config/crd.
func TestProfileSchema(t *testing.T) {
	ns := newNamespace(t, "schema", nil)
	tests := []struct {
		name   string
		modify func(*v1alpha1.SidecarProfile)
		want   string // "" means accepted
	}{
		{name: "valid", modify: func(*v1alpha1.SidecarProfile) {}},
		{name: "http URL", modify: func(p *v1alpha1.SidecarProfile) { p.Spec.ZTS.URL = "http://zts.example.com/zts/v1" }, want: "must be an https:// URL"},
		{name: "not a URL", modify: func(p *v1alpha1.SidecarProfile) { p.Spec.ZTS.URL = "zts" }, want: "must be an https:// URL"},
		{name: "copper-argos without provider", modify: func(p *v1alpha1.SidecarProfile) { p.Spec.Identity.Provider = "" }, want: "provider is required in copper-argos mode"},
		{name: "copper-argos without dnsSuffix", modify: func(p *v1alpha1.SidecarProfile) { p.Spec.Identity.DNSSuffix = "" }, want: "dnsSuffix is required"},
		{name: "key-file without key", modify: func(p *v1alpha1.SidecarProfile) { p.Spec.Identity.Mode = v1alpha1.IdentityKeyFile }, want: "keyFile is required in key-file mode"},
		{name: "files without secret", modify: func(p *v1alpha1.SidecarProfile) { p.Spec.Identity.Mode = v1alpha1.IdentityFiles }, want: "files is required in files mode"},
		{
			name: "keyFile in copper-argos mode",
			modify: func(p *v1alpha1.SidecarProfile) {
				p.Spec.Identity.KeyFile = &v1alpha1.KeyFileIdentity{Secret: v1alpha1.KeyReference{Name: "k", Key: "k"}}
			},
			want: "keyFile is only used in key-file mode",
		},
		{name: "unknown mode", modify: func(p *v1alpha1.SidecarProfile) { p.Spec.Identity.Mode = "magic" }, want: "Unsupported value"},
		{
			name: "CA from both",
			modify: func(p *v1alpha1.SidecarProfile) {
				ref := &v1alpha1.KeyReference{Name: "ca", Key: "ca.pem"}
				p.Spec.ZTS.CA = &v1alpha1.CABundle{ConfigMap: ref, Secret: ref}
			},
			want: "set exactly one of configMap and secret",
		},
		{name: "same ports", modify: func(p *v1alpha1.SidecarProfile) { p.Spec.Sidecar.Ports.Health = 8081 }, want: "api and health must be different ports"},
		{name: "bad prefetch", modify: func(p *v1alpha1.SidecarProfile) { p.Spec.Prefetch = []string{"sports:reader"} }, want: "spec.prefetch[0]"},
		{name: "token file without kind", modify: func(p *v1alpha1.SidecarProfile) { p.Spec.TokenFiles = []string{"sports:role.reader"} }, want: "spec.tokenFiles[0]"},
		{name: "token files", modify: func(p *v1alpha1.SidecarProfile) { p.Spec.TokenFiles = []string{"roletoken:sports:role.reader"} }},
		{name: "bad nativeSidecar", modify: func(p *v1alpha1.SidecarProfile) { p.Spec.Sidecar.NativeSidecar = "Sometimes" }, want: "Unsupported value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := validProfile(ns, strings.ReplaceAll(strings.ToLower(tt.name), " ", "-"))
			p.Name = strings.ReplaceAll(p.Name, "_", "-")
			tt.modify(p)
			err := k8s.Create(t.Context(), p)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("creating %s = %v, want accepted", tt.name, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("creating %s succeeded, want rejected with %q", tt.name, tt.want)
			}
			if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("creating %s = %v, want Invalid saying %q", tt.name, err, tt.want)
			}
		})
	}
}
