package app_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/athenz-injector/athenz-injector/api/v1alpha1"
	"github.com/athenz-injector/athenz-injector/pkg/webhook"
)

// TestZTSCACopies: the CA bundle of a cluster-wide profile, read in the
// injector's namespace, is kept in every other namespace: in one created
// afterwards, updated when the source changes, restored when a tenant
// edits or deletes it, and removed when the profile stops naming a CA;
// kube-system gets none.
func TestZTSCACopies(t *testing.T) {
	ctx := t.Context()
	const bundle1, bundle2 = "-----BEGIN CERTIFICATE-----\none\n-----END CERTIFICATE-----\n", "-----BEGIN CERTIFICATE-----\ntwo\n-----END CERTIFICATE-----\n"
	source := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: injectorNamespace, Name: "zts-ca-source"},
		Data:       map[string]string{"bundle.pem": bundle1},
	}
	if err := k8s.Create(ctx, source); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), source) })
	p := validProfile(injectorNamespace, "ca-copies")
	p.Spec.ZTS.CA = &v1alpha1.CABundle{ConfigMap: &v1alpha1.KeyReference{Name: source.Name, Key: "bundle.pem"}}
	createProfile(t, p)
	copyName := webhook.ZTSCACopyName(p.Name)
	ns := newNamespace(t, "ca-copies", nil)

	waitCopy(t, ns, copyName, bundle1)

	source.Data["bundle.pem"] = bundle2
	if err := k8s.Update(ctx, source); err != nil {
		t.Fatal(err)
	}
	waitCopy(t, ns, copyName, bundle2)

	var cm corev1.ConfigMap
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: copyName}, &cm); err != nil {
		t.Fatal(err)
	}
	cm.Data[webhook.ZTSCACopyKey] = "a tenant's own CA"
	if err := k8s.Update(ctx, &cm); err != nil {
		t.Fatal(err)
	}
	waitCopy(t, ns, copyName, bundle2)
	if err := k8s.Delete(ctx, &cm); err != nil {
		t.Fatal(err)
	}
	waitCopy(t, ns, copyName, bundle2)

	var sys corev1.ConfigMap
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: "kube-system", Name: copyName}, &sys); !apierrors.IsNotFound(err) {
		t.Errorf("kube-system got a copy of the ZTS CA (%v): no Pod there is injected", err)
	}

	if err := k8s.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
		t.Fatal(err)
	}
	p.Spec.ZTS.CA = nil
	if err := k8s.Update(ctx, p); err != nil {
		t.Fatal(err)
	}
	waitCopy(t, ns, copyName, "")
}

// waitCopy waits until namespace ns has the copy name with bundle, or
// none when bundle is empty.
func waitCopy(t *testing.T, ns, name, bundle string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var state string
	for time.Now().Before(deadline) {
		var cm corev1.ConfigMap
		err := k8s.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: name}, &cm)
		switch {
		case bundle == "" && apierrors.IsNotFound(err):
			return
		case err != nil:
			state = err.Error()
		case cm.Data[webhook.ZTSCACopyKey] == bundle && cm.Labels[webhook.LabelZTSCA] == "true":
			return
		default:
			state = fmt.Sprintf("data %q, labels %v", cm.Data, cm.Labels)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if bundle == "" {
		t.Fatalf("ConfigMap %s/%s is still there 20s after its profile stopped naming a CA: %s", ns, name, state)
	}
	t.Fatalf("ConfigMap %s/%s does not hold the source's bundle %q within 20s: %s", ns, name, bundle, state)
}

// TestZTSCACopiesOfAnotherRelease: two injectors (two releases in two
// namespaces) share the cluster; each keeps its own ZTS CA copies and
// leaves the other's alone, rather than deleting them as copies of
// profiles it does not have.
func TestZTSCACopiesOfAnotherRelease(t *testing.T) {
	ns := newNamespace(t, "two-releases", nil)
	foreign := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: webhook.ZTSCACopyName("other"),
			Labels:      map[string]string{webhook.LabelZTSCA: "true"},
			Annotations: map[string]string{webhook.AnnotationZTSCAProfile: "another-release/other"}},
		Data: map[string]string{webhook.ZTSCACopyKey: "the other release's CA"},
	}
	if err := k8s.Create(t.Context(), foreign); err != nil {
		t.Fatal(err)
	}
	source := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: injectorNamespace, Name: "zts-ca-two-releases"},
		Data: map[string]string{"ca.pem": "this release's CA"}}
	if err := k8s.Create(t.Context(), source); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), source) })
	p := validProfile(injectorNamespace, "two-releases")
	p.Spec.ZTS.CA = &v1alpha1.CABundle{ConfigMap: &v1alpha1.KeyReference{Name: source.Name, Key: "ca.pem"}}
	createProfile(t, p)

	own := client.ObjectKey{Namespace: ns, Name: webhook.ZTSCACopyName(p.Name)}
	deadline := time.Now().Add(20 * time.Second)
	for {
		var cm corev1.ConfigMap
		err := k8s.Get(t.Context(), own, &cm)
		if err == nil && cm.Data[webhook.ZTSCACopyKey] == "this release's CA" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the injector made no copy %s: %v", own, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var still corev1.ConfigMap
	if err := k8s.Get(t.Context(), client.ObjectKeyFromObject(foreign), &still); err != nil {
		t.Fatalf("the other release's copy: %v, want it left alone", err)
	}
	if still.Data[webhook.ZTSCACopyKey] != "the other release's CA" {
		t.Errorf("the other release's copy was changed: %v", still.Data)
	}
}
