package v1alpha1

import (
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
)

func TestAddToScheme(t *testing.T) {
	s := runtime.NewScheme()
	if err := AddToScheme(s); err != nil {
		t.Fatalf("AddToScheme = %v", err)
	}
	for _, kind := range []string{"SidecarProfile", "SidecarProfileList"} {
		if !s.Recognizes(GroupVersion.WithKind(kind)) {
			t.Errorf("scheme does not recognize %s", GroupVersion.WithKind(kind))
		}
	}
}

func TestDeepCopy(t *testing.T) {
	p := &SidecarProfile{Spec: SidecarProfileSpec{
		ZTS:      ZTS{URL: "https://zts", CA: &CABundle{ConfigMap: &KeyReference{Name: "ca", Key: "ca.pem"}}},
		Prefetch: []string{"a:domain"},
	}}
	c := p.DeepCopy()
	if !reflect.DeepEqual(p, c) {
		t.Fatalf("DeepCopy = %+v, want %+v", c, p)
	}
	c.Spec.ZTS.CA.ConfigMap.Name = "other"
	c.Spec.Prefetch[0] = "b:domain"
	if p.Spec.ZTS.CA.ConfigMap.Name != "ca" || p.Spec.Prefetch[0] != "a:domain" {
		t.Errorf("changing the copy changed the original: %+v", p.Spec)
	}
}
