package webhook

import (
	"context"
	"errors"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/athenz-injector/athenz-injector/api/v1alpha1"
)

// RBAC of the injector (controller-gen writes config/rbac/role.yaml). Only
// what the code does: profiles and namespaces are read through informers
// (list, watch; a cached Get is no API call), and status is written with a
// merge patch. test/chart's TestRBACLeastPrivilege runs the injector with
// each verb removed.
//
// +kubebuilder:rbac:groups=athenz.io,resources=sidecarprofiles,verbs=list;watch
// +kubebuilder:rbac:groups=athenz.io,resources=sidecarprofiles/status,verbs=patch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=list;watch

// ProfileReconciler keeps the Ready condition of every SidecarProfile: True
// when the injector can use it, False with a message naming the field at
// fault otherwise.
type ProfileReconciler struct {
	// Client reads profiles (from the cache) and writes their status.
	Client client.Client
	// Version is this injector's version, recorded in the profiles'
	// status.injectorVersion.
	Version string
}

// Reconcile validates one profile and records the result.
func (r *ProfileReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var p v1alpha1.SidecarProfile
	if err := r.Client.Get(ctx, req.NamespacedName, &p); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	cond := ProfileCondition(&p)
	before := p.DeepCopy()
	changed := meta.SetStatusCondition(&p.Status.Conditions, cond)
	if !changed && p.Status.ObservedGeneration == p.Generation && p.Status.InjectorVersion == r.Version {
		return ctrl.Result{}, nil
	}
	p.Status.ObservedGeneration = p.Generation
	p.Status.InjectorVersion = r.Version
	if err := r.Client.Status().Patch(ctx, &p, client.MergeFrom(before)); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	ctrl.LoggerFrom(ctx).V(1).Info("profile status updated", "ready", cond.Status, "reason", cond.Reason)
	return ctrl.Result{}, nil
}

// ProfileCondition is the Ready condition the profile deserves now.
func ProfileCondition(p *v1alpha1.SidecarProfile) metav1.Condition {
	cond := metav1.Condition{
		Type:               v1alpha1.ConditionReady,
		Status:             metav1.ConditionTrue,
		Reason:             v1alpha1.ReasonValid,
		Message:            "the injector can use this profile",
		ObservedGeneration: p.Generation,
	}
	if err := ValidateProfile(p); err != nil {
		msg := err.Error()
		var d *Denial
		if errors.As(err, &d) {
			msg = strings.TrimPrefix(d.Msg, "SidecarProfile "+p.Namespace+"/"+p.Name+": ")
		}
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, v1alpha1.ReasonInvalid, msg
	}
	return cond
}

// SetupWithManager registers the reconciler. Only spec changes (a new
// generation) trigger it, not its own status writes.
func (r *ProfileReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("sidecarprofile").
		For(&v1alpha1.SidecarProfile{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Complete(r)
}
