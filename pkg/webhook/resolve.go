package webhook

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/athenz-injector/athenz-injector/api/v1alpha1"
)

// DefaultProfileName is the profile a Pod gets when it names none.
const DefaultProfileName = "default"

// Resolver finds the SidecarProfile a Pod uses and the Athenz identity the
// identity policy lets it have. The admission handler and the provider
// callback both use it.
type Resolver struct {
	// Reader reads SidecarProfiles; in the injector, the informer cache.
	// Required.
	Reader client.Reader
	// Namespace is the injector's namespace, whose profiles serve the
	// other namespaces and bound their own profiles. Required.
	Namespace string
}

// Resolve returns the Pod's profile and identity once the policy allows
// them (Authorize). nsLabels are the labels of the Pod's namespace. A
// refusal is a *Denial; any other error is a failure to read the cache.
func (r Resolver) Resolve(ctx context.Context, pod *corev1.Pod, nsLabels map[string]string) (*v1alpha1.SidecarProfile, Identity, error) {
	p, err := r.profile(ctx, pod, nsLabels)
	if err != nil {
		return nil, Identity{}, err
	}
	id, err := PodIdentity(pod, p)
	if err != nil {
		return p, id, err
	}
	var cluster []v1alpha1.SidecarProfile
	if p.Namespace != r.Namespace && r.Namespace != "" {
		var list v1alpha1.SidecarProfileList
		if err := r.Reader.List(ctx, &list, client.InNamespace(r.Namespace)); err != nil {
			return p, id, fmt.Errorf("listing the SidecarProfiles of namespace %s: %w", r.Namespace, err)
		}
		cluster = list.Items
	}
	if err := Authorize(pod, nsLabels, p, id, cluster, Settings{Namespace: r.Namespace}); err != nil {
		return p, id, err
	}
	return p, id, nil
}

// IsDenial reports whether err is a refusal to show the user rather than a
// fault of the injector.
func IsDenial(err error) (*Denial, bool) {
	var d *Denial
	ok := errors.As(err, &d)
	return d, ok
}

// profile finds the Pod's SidecarProfile: the one named by athenz.io/profile
// in the Pod's namespace, else the one of that name in the injector's
// namespace; with no such annotation, the one whose spec.revision is the
// athenz.io/rev label of the Pod or its namespace, if either has one, else
// the one named "default", looked up the same way. Whether it serves the
// Pod's namespace is Authorize's question.
func (r Resolver) profile(ctx context.Context, pod *corev1.Pod, nsLabels map[string]string) (*v1alpha1.SidecarProfile, error) {
	name, err := ProfileName(pod.Annotations)
	if err != nil {
		return nil, err
	}
	if name == "" {
		if rev, from := Revision(pod, nsLabels); rev != "" {
			return r.revisionProfile(ctx, pod, rev, from)
		}
		name = DefaultProfileName
	}
	keys := []types.NamespacedName{{Namespace: pod.Namespace, Name: name}}
	if ns := r.Namespace; ns != "" && ns != pod.Namespace {
		keys = append(keys, types.NamespacedName{Namespace: ns, Name: name})
	}
	for _, key := range keys {
		var p v1alpha1.SidecarProfile
		err := r.Reader.Get(ctx, key, &p)
		if err == nil {
			return &p, nil
		}
		if !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("reading SidecarProfile %s: %w", key, err)
		}
	}
	looked := make([]string, len(keys))
	for i, k := range keys {
		looked[i] = fmt.Sprintf("%q", k.String())
	}
	return nil, denyCheck(CheckProfile, "no SidecarProfile for this Pod: looked for %s; create one, or name an existing one with the annotation %s",
		strings.Join(looked, " and "), AnnotationProfile)
}

// Revision is the revision the Pod asks for with the label athenz.io/rev,
// its own or else its namespace's, and which of the two said it.
func Revision(pod *corev1.Pod, nsLabels map[string]string) (rev, from string) {
	if v := pod.Labels[LabelRevision]; v != "" {
		return v, "the Pod's label " + LabelRevision
	}
	if v := nsLabels[LabelRevision]; v != "" {
		return v, "the namespace's label " + LabelRevision
	}
	return "", ""
}

// revisionProfile finds the profile whose spec.revision is rev: in the
// Pod's namespace, else in the injector's. Two in one namespace is a
// mistake the message names.
func (r Resolver) revisionProfile(ctx context.Context, pod *corev1.Pod, rev, from string) (*v1alpha1.SidecarProfile, error) {
	namespaces := []string{pod.Namespace}
	if r.Namespace != "" && r.Namespace != pod.Namespace {
		namespaces = append(namespaces, r.Namespace)
	}
	for _, ns := range namespaces {
		var list v1alpha1.SidecarProfileList
		if err := r.Reader.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return nil, fmt.Errorf("listing the SidecarProfiles of namespace %s: %w", ns, err)
		}
		var found []*v1alpha1.SidecarProfile
		for i := range list.Items {
			if list.Items[i].Spec.Revision == rev {
				found = append(found, &list.Items[i])
			}
		}
		switch len(found) {
		case 0:
			continue
		case 1:
			return found[0], nil
		}
		names := make([]string, len(found))
		for i, p := range found {
			names[i] = profileKey(p)
		}
		sort.Strings(names)
		return nil, denyCheck(CheckProfile, "%s asks for revision %q, and the SidecarProfiles %s all have it: give each revision to one profile per namespace",
			from, rev, strings.Join(names, ", "))
	}
	return nil, denyCheck(CheckProfile, "%s asks for revision %q, and no SidecarProfile in %s has spec.revision %q; create one, or remove the label",
		from, rev, strings.Join(namespaces, " or "), rev)
}
