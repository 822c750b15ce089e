package webhook

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/athenz-injector/athenz-injector/api/v1alpha1"
)

// Reasons ShouldInject gives for leaving a Pod alone, also used as log
// values.
const (
	ReasonSystemNamespace = "system namespace"
	ReasonAlreadyInjected = "already injected"
	ReasonOptedOut        = "opted out by annotation"
	ReasonNotOptedIn      = "not opted in"
	ReasonAnnotationOptIn = "annotation"
	ReasonNamespaceOptIn  = "namespace label"
)

// ShouldInject decides whether the Pod gets the sidecar, and says why. The
// Pod opts in with athenz.io/inject: "true", or by living in a namespace
// labelled athenz.io/inject=enabled without saying "false". Pods in
// kube-system and in the injector's namespace, and Pods that carry
// athenz.io/status (injected already), are left alone. A value of
// athenz.io/inject other than "true" or "false" is a *Denial.
//
// namespaceLabels matter only for a Pod without athenz.io/inject; pod's
// Namespace must be set.
func ShouldInject(pod *corev1.Pod, namespaceLabels map[string]string, s Settings) (bool, string, error) {
	if s.untouchable(pod.Namespace) {
		return false, ReasonSystemNamespace, nil
	}
	if _, ok := pod.Annotations[AnnotationStatus]; ok {
		return false, ReasonAlreadyInjected, nil
	}
	inject, set, err := parseInject(pod.Annotations)
	switch {
	case err != nil:
		return false, "", err
	case set && inject:
		return true, ReasonAnnotationOptIn, nil
	case set:
		return false, ReasonOptedOut, nil
	case namespaceLabels[NamespaceLabelInject] == NamespaceInjectEnabled:
		return true, ReasonNamespaceOptIn, nil
	}
	return false, ReasonNotOptedIn, nil
}

// Mutate is the whole decision for one Pod: ShouldInject, then BuildPatch.
// A Pod that does not opt in gets no operations and no error; profile may
// then be nil.
func Mutate(pod *corev1.Pod, namespaceLabels map[string]string, profile *v1alpha1.SidecarProfile, s Settings) ([]PatchOp, error) {
	ok, _, err := ShouldInject(pod, namespaceLabels, s)
	if err != nil || !ok {
		return nil, err
	}
	return BuildPatch(pod, profile, s)
}
