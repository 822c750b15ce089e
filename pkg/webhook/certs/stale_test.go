package certs_test

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/athenz-injector/athenz-injector/pkg/webhook/certs"
)

// staleReader answers the first Get of a Secret with an old copy, as a
// replica would see it that read just before another replica wrote.
type staleReader struct {
	client.Reader
	once sync.Once
	old  *corev1.Secret
}

func (r *staleReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if s, ok := obj.(*corev1.Secret); ok {
		stale := false
		r.once.Do(func() { stale = true })
		if stale {
			r.old.DeepCopyInto(s)
			return nil
		}
	}
	return r.Reader.Get(ctx, key, obj, opts...)
}

// A replica with a stale view of the Secret must not take the current CA
// out of the caBundle: it notices the Secret moved on and starts over.
func TestStaleReadDoesNotRevertCABundle(t *testing.T) {
	f := newFixture(t)
	if err := f.newManager(t, f.options(t, t.TempDir())).Sync(t.Context()); err != nil {
		t.Fatalf("first Sync: %v", err)
	}
	old := f.getSecret(t)

	// The Secret is deleted and a fresh replica creates a new CA.
	if err := k8s.Delete(t.Context(), old); err != nil {
		t.Fatal(err)
	}
	if err := f.newManager(t, f.options(t, t.TempDir())).Sync(t.Context()); err != nil {
		t.Fatalf("Sync after delete: %v", err)
	}
	current := f.getSecret(t)
	bundle := f.caBundle(t)

	dir := t.TempDir()
	o := f.options(t, dir)
	o.Reader = &staleReader{Reader: k8s, old: old}
	if err := f.newManager(t, o).Sync(t.Context()); err != nil {
		t.Fatalf("Sync with a stale read: %v", err)
	}
	if got := f.caBundle(t); !bytes.Equal(got, bundle) {
		t.Fatalf("caBundle changed by a replica with a stale view:\n%s\nwant\n%s", got, bundle)
	}
	assertConverged(t, f, time.Now(), dir)
	if got := f.getSecret(t); got.ResourceVersion != current.ResourceVersion {
		t.Error("secret rewritten by a replica with a stale view, want no change")
	}
}

// When a replica must make a new CA because the Secret was deleted, the CA
// it last synced stays in the bundle, so replicas still serving the old
// certificate keep working until they sync.
func TestDeletedSecretKeepsOldCA(t *testing.T) {
	f := newFixture(t)
	oldDir, dir := t.TempDir(), t.TempDir()
	if err := f.newManager(t, f.options(t, oldDir)).Sync(t.Context()); err != nil {
		t.Fatalf("Sync of the other replica: %v", err)
	}
	m := f.newManager(t, f.options(t, dir))
	if err := m.Sync(t.Context()); err != nil {
		t.Fatalf("first Sync: %v", err)
	}
	old := f.getSecret(t)
	oldCA := pemCerts(t, old.Data[certs.KeyCACert])[0]
	if err := k8s.Delete(t.Context(), old); err != nil {
		t.Fatal(err)
	}
	if err := m.Sync(t.Context()); err != nil {
		t.Fatalf("Sync after delete: %v", err)
	}
	s := f.getSecret(t)
	newCA := pemCerts(t, s.Data[certs.KeyCACert])[0]
	if newCA.Equal(oldCA) {
		t.Fatal("the deleted secret's CA came back, want a new one")
	}
	if got := pemCerts(t, f.caBundle(t)); len(got) != 2 || !got[0].Equal(newCA) || !got[1].Equal(oldCA) {
		t.Fatalf("caBundle holds %d certificates, want the new CA then the old one", len(got))
	}
	now := time.Now()
	verify(t, f.caBundle(t), dir, f.serviceName(), now)
	verify(t, f.caBundle(t), oldDir, f.serviceName(), now)
}
