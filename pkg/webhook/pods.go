package webhook

import (
	"context"
	"fmt"
	"net/http"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

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

	// The namespace's labels opt its Pods in and select what the identity
	// policy allows them.
	var nsLabels map[string]string
	if !h.o.Settings.untouchable(pod.Namespace) {
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
	if reason == ReasonAlreadyInjected {
		// Reinvocation: a mesh's webhook may have put its proxy after
		// the sidecar.
		if ops := Reinvoke(pod); len(ops) > 0 {
			log.Info("sidecar moved after the mesh proxy", "operations", len(ops))
			return OutcomeInjected, admission.Patched("", toAdmission(ops)...)
		}
	}
	if !inject {
		log.V(1).Info("pod skipped", "reason", reason)
		return OutcomeSkipped, admission.Allowed(reason)
	}

	profile, id, err := h.resolver().Resolve(ctx, pod, nsLabels)
	if err != nil {
		return h.refuse(log, err)
	}
	ops, err := BuildPatch(pod, profile, h.o.Settings)
	if err != nil {
		return h.refuse(log, err)
	}
	log.Info("pod injected", "profile", profileKey(profile), "domain", id.Domain, "service", id.Service, "reason", reason, "operations", len(ops))
	return OutcomeInjected, admission.Patched("", toAdmission(ops)...)
}

// refuse maps a *Denial to a denial and anything else to an error.
func (h *PodHandler) refuse(log logr.Logger, err error) (string, admission.Response) {
	if d, ok := IsDenial(err); ok {
		log.Info("pod denied", "reason", d.Msg)
		return OutcomeDenied, admission.Denied(d.Msg)
	}
	log.Error(err, "cannot inject pod")
	return OutcomeError, admission.Errored(http.StatusInternalServerError, err)
}

func (h *PodHandler) resolver() Resolver {
	return Resolver{Reader: h.o.Reader, Namespace: h.o.Settings.Namespace}
}

// podName is the Pod's name for logs; Pods of controllers often have only
// a generateName at admission.
func podName(req admission.Request) string {
	if req.Name != "" {
		return req.Name
	}
	return "(generated)"
}
