package webhook

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/athenz-injector/athenz-injector/api/v1alpha1"
)

// DefaultProfileName is the profile a Pod gets when it names none.
const DefaultProfileName = "default"

// PodHandler serves /mutate-pods: it injects the sidecar into Pods that opt
// in, on creation.
type PodHandler struct {
	o Options
}

// NewPodHandler returns the Pod handler; o.Reader is required.
func NewPodHandler(o Options) *PodHandler {
	return &PodHandler{o: o}
}

// Handle answers one admission request. User mistakes are denied with a
// message that names what to fix; the injector's own faults are errors
// (and, with failurePolicy Fail, block the Pod until retried).
func (h *PodHandler) Handle(ctx context.Context, req admission.Request) admission.Response {
	outcome, resp := h.handle(ctx, req)
	h.o.Metrics.observe(webhookPods, outcome)
	return resp
}

func (h *PodHandler) handle(ctx context.Context, req admission.Request) (string, admission.Response) {
	log := h.o.logger().WithValues("namespace", req.Namespace, "pod", podName(req), "dryRun", req.DryRun != nil && *req.DryRun)
	if req.Operation != admissionv1.Create || req.Kind.Kind != "Pod" || req.SubResource != "" {
		return OutcomeSkipped, admission.Allowed("not a Pod creation")
	}
	pod, err := DecodePod(req.Object.Raw)
	if err != nil {
		log.Error(err, "cannot decode pod")
		return OutcomeError, admission.Errored(http.StatusBadRequest, err)
	}
	if pod.Namespace == "" {
		pod.Namespace = req.Namespace
	}

	var nsLabels map[string]string
	if _, annotated := pod.Annotations[AnnotationInject]; !annotated && !h.o.Settings.untouchable(pod.Namespace) {
		var ns corev1.Namespace
		if err := h.o.Reader.Get(ctx, types.NamespacedName{Name: pod.Namespace}, &ns); err != nil {
			log.Error(err, "cannot read namespace")
			return OutcomeError, admission.Errored(http.StatusInternalServerError,
				fmt.Errorf("reading namespace %q from the injector's cache: %w", pod.Namespace, err))
		}
		nsLabels = ns.Labels
	}
	inject, reason, err := ShouldInject(pod, nsLabels, h.o.Settings)
	if err != nil {
		return h.refuse(log, err)
	}
	if !inject {
		log.V(1).Info("pod skipped", "reason", reason)
		return OutcomeSkipped, admission.Allowed(reason)
	}

	profile, err := h.profile(ctx, pod)
	if err != nil {
		return h.refuse(log, err)
	}
	ops, err := BuildPatch(pod, profile, h.o.Settings)
	if err != nil {
		return h.refuse(log, err)
	}
	log.Info("pod injected", "profile", profile.Namespace+"/"+profile.Name, "reason", reason, "operations", len(ops))
	return OutcomeInjected, admission.Patched("", toAdmission(ops)...)
}

// refuse maps a *Denial to a denial and anything else to an error.
func (h *PodHandler) refuse(log logr.Logger, err error) (string, admission.Response) {
	var d *Denial
	if errors.As(err, &d) {
		log.Info("pod denied", "reason", d.Msg)
		return OutcomeDenied, admission.Denied(d.Msg)
	}
	log.Error(err, "cannot inject pod")
	return OutcomeError, admission.Errored(http.StatusInternalServerError, err)
}

// profile finds the Pod's SidecarProfile: the one named by athenz.io/profile
// (else "default") in the Pod's namespace, else the one of that name in the
// injector's namespace. It reads the informer cache only.
func (h *PodHandler) profile(ctx context.Context, pod *corev1.Pod) (*v1alpha1.SidecarProfile, error) {
	name, err := ProfileName(pod.Annotations)
	if err != nil {
		return nil, err
	}
	if name == "" {
		name = DefaultProfileName
	}
	keys := []types.NamespacedName{{Namespace: pod.Namespace, Name: name}}
	if ns := h.o.Settings.Namespace; ns != "" && ns != pod.Namespace {
		keys = append(keys, types.NamespacedName{Namespace: ns, Name: name})
	}
	for _, key := range keys {
		var p v1alpha1.SidecarProfile
		err := h.o.Reader.Get(ctx, key, &p)
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
	return nil, denyf("no SidecarProfile for this Pod: looked for %s; create one, or name an existing one with the annotation %s",
		strings.Join(looked, " and "), AnnotationProfile)
}

// podName is the Pod's name for logs; Pods of controllers often have only
// a generateName at admission.
func podName(req admission.Request) string {
	if req.Name != "" {
		return req.Name
	}
	return "(generated)"
}
