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
	ReasonWindows         = "windows pod in an opted-in namespace"
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
		if why := windowsPod(pod); why != "" {
			return false, "", denyf("the Pod opted in with %s, but it runs on Windows (%s): the Athenz sidecar is a Linux image; remove the annotation or set it to \"false\"", AnnotationInject, why)
		}
		return true, ReasonAnnotationOptIn, nil
	case set:
		return false, ReasonOptedOut, nil
	case namespaceLabels[NamespaceLabelInject] == NamespaceInjectEnabled:
		if windowsPod(pod) != "" {
			// A namespace-wide opt-in must not block the namespace's
			// Windows Pods, which cannot run the sidecar.
			return false, ReasonWindows, nil
		}
		return true, ReasonNamespaceOptIn, nil
	}
	return false, ReasonNotOptedIn, nil
}

// osLabel is the node label the kubelet sets to its OS.
const osLabel = "kubernetes.io/os"

// windowsPod says why the Pod runs on Windows, or "" when it does not:
// spec.os.name, a nodeSelector on kubernetes.io/os, or required node
// affinity whose every term asks for Windows nodes.
func windowsPod(pod *corev1.Pod) string {
	if os := pod.Spec.OS; os != nil && os.Name == corev1.Windows {
		return "spec.os.name: windows"
	}
	if pod.Spec.NodeSelector[osLabel] == string(corev1.Windows) {
		return "nodeSelector " + osLabel + ": windows"
	}
	a := pod.Spec.Affinity
	if a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return ""
	}
	terms := a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
	for _, t := range terms {
		if !termWindowsOnly(t) {
			return ""
		}
	}
	if len(terms) == 0 {
		return ""
	}
	return "required node affinity on " + osLabel + " in [windows]"
}

func termWindowsOnly(t corev1.NodeSelectorTerm) bool {
	for _, e := range t.MatchExpressions {
		if e.Key == osLabel && e.Operator == corev1.NodeSelectorOpIn && len(e.Values) > 0 {
			for _, v := range e.Values {
				if v != string(corev1.Windows) {
					return false
				}
			}
			return true
		}
	}
	return false
}

// Mutate is the whole decision for one Pod: ShouldInject, then BuildPatch;
// a Pod injected already gets Reinvoke's operations. A Pod that does not
// opt in gets no operations and no error; profile may then be nil.
func Mutate(pod *corev1.Pod, namespaceLabels map[string]string, profile *v1alpha1.SidecarProfile, s Settings) ([]PatchOp, error) {
	ok, reason, err := ShouldInject(pod, namespaceLabels, s)
	if reason == ReasonAlreadyInjected {
		return Reinvoke(pod), nil
	}
	if err != nil || !ok {
		return nil, err
	}
	return BuildPatch(pod, profile, s)
}
