package webhook

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/athenz-injector/athenz-injector/api/v1alpha1"
)

// RBAC of the ZTS CA copies:
//
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=list;watch;create;update;delete
//
// A source that is a Secret is read with get in the injector's namespace;
// the chart grants it for the profile it creates.

// The ZTS CA bundle of a cluster-wide SidecarProfile (one in the injector's
// namespace) is read there, and the injector keeps a copy of it in every
// namespace, as Istio keeps istio-ca-root-cert: a ConfigMap named
// ZTSCACopyName(profile) with the bundle under ZTSCACopyKey. Injected Pods
// mount the copy, so a new namespace needs no setup, and a CA rotation in
// the source reaches every Pod's sidecar through the kubelet's ConfigMap
// updates.
const (
	// ZTSCACopyKey is the key of the bundle in a copy.
	ZTSCACopyKey = "ca.pem"
	// LabelZTSCA marks the copies (value "true"): the injector caches,
	// updates and deletes only ConfigMaps with it.
	LabelZTSCA = "athenz.io/zts-ca"
	// AnnotationZTSCAProfile names the profile a copy is of.
	AnnotationZTSCAProfile = "athenz.io/profile"
	ztsCACopyPrefix        = "athenz-zts-ca-"
	// ztsCASecretResync is how often a Secret source is read again: the
	// injector does not watch Secrets (that would cache every Secret of its
	// namespace).
	ztsCASecretResync = 10 * time.Minute
)

// ZTSCACopyName is the name of the copies of a cluster-wide profile's ZTS
// CA bundle: athenz-zts-ca-<profile>, shortened with a hash when that is
// longer than a ConfigMap name may be.
func ZTSCACopyName(profile string) string {
	name := ztsCACopyPrefix + profile
	if len(name) <= 253 {
		return name
	}
	sum := sha256.Sum256([]byte(profile))
	return name[:253-17] + "-" + hex.EncodeToString(sum[:8])
}

// systemNamespaces never get copies: no Pod there is injected.
var systemNamespaces = map[string]bool{"kube-system": true, "kube-public": true, "kube-node-lease": true}

// ZTSCAReconciler keeps the copies of the cluster-wide profiles' ZTS CA
// bundles in one namespace (the request's name): one per profile in
// Namespace that names a CA, with the source's bundle; copies of profiles
// that no longer name one are deleted.
type ZTSCAReconciler struct {
	// Client reads profiles, the sources that are ConfigMaps and the
	// copies from the cache, and writes the copies.
	Client client.Client
	// Secrets reads sources that are Secrets (the API server).
	Secrets client.Reader
	// Namespace is the injector's.
	Namespace string
}

// Reconcile brings the copies in namespace req.Name up to date.
func (r *ZTSCAReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ns := req.Name
	if systemNamespaces[ns] || ns == r.Namespace {
		return ctrl.Result{}, nil
	}
	var namespace corev1.Namespace
	if err := r.Client.Get(ctx, types.NamespacedName{Name: ns}, &namespace); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if namespace.DeletionTimestamp != nil {
		return ctrl.Result{}, nil
	}
	want, result, err := r.bundles(ctx)
	if err != nil {
		return ctrl.Result{}, err
	}
	var have corev1.ConfigMapList
	if err := r.Client.List(ctx, &have, client.InNamespace(ns), client.MatchingLabels{LabelZTSCA: "true"}); err != nil {
		return ctrl.Result{}, err
	}
	log := ctrl.LoggerFrom(ctx)
	for i := range have.Items {
		cm := &have.Items[i]
		if !strings.HasPrefix(cm.Annotations[AnnotationZTSCAProfile], r.Namespace+"/") {
			continue // another injector's (another release), not ours to change
		}
		bundle, ok := want[cm.Name]
		if !ok {
			if err := r.Client.Delete(ctx, cm); client.IgnoreNotFound(err) != nil {
				return ctrl.Result{}, err
			}
			log.V(1).Info("deleted a ZTS CA copy whose profile names no CA", "configMap", cm.Name)
			continue
		}
		delete(want, cm.Name)
		if cm.Data[ZTSCACopyKey] == bundle.pem && len(cm.Data) == 1 && len(cm.BinaryData) == 0 {
			continue
		}
		cm.Data, cm.BinaryData = map[string]string{ZTSCACopyKey: bundle.pem}, nil
		if err := r.Client.Update(ctx, cm); err != nil {
			return ctrl.Result{}, err
		}
		log.V(1).Info("updated a ZTS CA copy", "configMap", cm.Name, "profile", bundle.profile)
	}
	for name, bundle := range want {
		cm := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{
				Namespace:   ns,
				Name:        name,
				Labels:      map[string]string{LabelZTSCA: "true", "app.kubernetes.io/managed-by": "athenz-injector"},
				Annotations: map[string]string{AnnotationZTSCAProfile: r.Namespace + "/" + bundle.profile},
			},
			Data: map[string]string{ZTSCACopyKey: bundle.pem},
		}
		if err := r.Client.Create(ctx, cm); err != nil {
			if apierrors.IsAlreadyExists(err) {
				return ctrl.Result{RequeueAfter: time.Second}, nil // not in the cache yet, or not ours: look again
			}
			return ctrl.Result{}, err
		}
		log.V(1).Info("created a ZTS CA copy", "configMap", name, "profile", bundle.profile)
	}
	return result, nil
}

type caBundle struct{ profile, pem string }

// bundles reads the CA bundle of every cluster-wide profile that names
// one, by copy name. A source that is missing is skipped (the copy goes
// away too; Pods of that profile wait for it): the profile's status says
// why.
func (r *ZTSCAReconciler) bundles(ctx context.Context) (map[string]caBundle, ctrl.Result, error) {
	var profiles v1alpha1.SidecarProfileList
	if err := r.Client.List(ctx, &profiles, client.InNamespace(r.Namespace)); err != nil {
		return nil, ctrl.Result{}, err
	}
	want := map[string]caBundle{}
	var result ctrl.Result
	for _, p := range profiles.Items {
		ca := p.Spec.ZTS.CA
		if ca == nil {
			continue
		}
		var pem string
		var found bool
		switch {
		case ca.ConfigMap != nil:
			var cm corev1.ConfigMap
			err := r.Client.Get(ctx, types.NamespacedName{Namespace: r.Namespace, Name: ca.ConfigMap.Name}, &cm)
			if client.IgnoreNotFound(err) != nil {
				return nil, result, err
			}
			pem, found = cm.Data[ca.ConfigMap.Key]
		case ca.Secret != nil:
			var s corev1.Secret
			err := r.Secrets.Get(ctx, types.NamespacedName{Namespace: r.Namespace, Name: ca.Secret.Name}, &s)
			if client.IgnoreNotFound(err) != nil {
				return nil, result, err
			}
			var b []byte
			b, found = s.Data[ca.Secret.Key]
			pem = string(b)
			result.RequeueAfter = ztsCASecretResync
		}
		if found {
			want[ZTSCACopyName(p.Name)] = caBundle{profile: p.Name, pem: pem}
		}
	}
	return want, result, nil
}

// SetupWithManager registers the reconciler: a namespace is reconciled
// when it is created, when one of its copies changes, and all are when a
// cluster-wide profile or a ConfigMap in the injector's namespace changes.
func (r *ZTSCAReconciler) SetupWithManager(mgr ctrl.Manager) error {
	allNamespaces := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, _ client.Object) []reconcile.Request {
		var list corev1.NamespaceList
		if err := r.Client.List(ctx, &list); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "listing namespaces for the ZTS CA copies")
			return nil
		}
		reqs := make([]reconcile.Request, 0, len(list.Items))
		for _, n := range list.Items {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Name: n.Name}})
		}
		return reqs
	})
	inInjectorNamespace := predicate.NewPredicateFuncs(func(o client.Object) bool { return o.GetNamespace() == r.Namespace })
	isCopy := predicate.NewPredicateFuncs(func(o client.Object) bool { return o.GetLabels()[LabelZTSCA] == "true" })
	return ctrl.NewControllerManagedBy(mgr).
		Named("zts-ca").
		For(&corev1.Namespace{}, builder.WithPredicates(predicate.Funcs{
			UpdateFunc: func(event.UpdateEvent) bool { return false }, // only creation matters
		})).
		Watches(&v1alpha1.SidecarProfile{}, allNamespaces, builder.WithPredicates(inInjectorNamespace)).
		Watches(&corev1.ConfigMap{}, allNamespaces, builder.WithPredicates(inInjectorNamespace, predicate.Not(isCopy))).
		Watches(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: o.GetNamespace()}}}
		}), builder.WithPredicates(isCopy)).
		Complete(r)
}
