package webhook

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	kjson "sigs.k8s.io/json"
)

// workloadTemplates maps the kinds whose Pod template the workload webhook
// keeps in step with the workload's athenz.io/inject annotation to the
// template's path.
var workloadTemplates = map[string][]string{
	"Deployment":  {"spec", "template"},
	"StatefulSet": {"spec", "template"},
	"DaemonSet":   {"spec", "template"},
	"Job":         {"spec", "template"},
	"CronJob":     {"spec", "jobTemplate", "spec", "template"},
}

// workload is the part of a workload object the webhook reads. Pointers
// tell an absent object from an empty one.
type workload struct {
	Metadata *objectMeta `json:"metadata"`
	Spec     *struct {
		Template    *podTemplate `json:"template"`
		JobTemplate *struct {
			Spec *struct {
				Template *podTemplate `json:"template"`
			} `json:"spec"`
		} `json:"jobTemplate"`
	} `json:"spec"`
}

type objectMeta struct {
	Annotations map[string]string `json:"annotations"`
}

type podTemplate struct {
	Metadata *objectMeta `json:"metadata"`
}

// WorkloadPatch returns the operations that carry athenz.io/inject from a
// workload's metadata into its Pod template, so that annotating a
// Deployment rolls out injected Pods:
//
//   - the workload says v and its template does not: the template gets v,
//     and the workload gets athenz.io/inject-copied to remember the copy;
//   - the workload no longer says anything but carries that marker: the
//     template's copy and the marker are removed.
//
// A template annotation the user set with no copy marker is never removed.
// kind is the workload's Kind; raw its JSON.
func WorkloadPatch(kind string, raw []byte) ([]PatchOp, error) {
	at, ok := workloadTemplates[kind]
	if !ok {
		return nil, fmt.Errorf("kind %q is not a workload the injector handles", kind)
	}
	var w workload
	if err := kjson.UnmarshalCaseSensitivePreserveInts(raw, &w); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", kind, err)
	}
	if w.Metadata == nil {
		return nil, fmt.Errorf("decoding %s: no metadata", kind)
	}
	var tmpl *podTemplate
	if w.Spec != nil {
		if kind == "CronJob" {
			if jt := w.Spec.JobTemplate; jt != nil && jt.Spec != nil {
				tmpl = jt.Spec.Template
			}
		} else {
			tmpl = w.Spec.Template
		}
	}
	if tmpl == nil {
		return nil, denyf("the %s has no Pod template (%s)", kind, pointer(toAny(at)...))
	}

	value, set := w.Metadata.Annotations[AnnotationInject]
	_, copied := w.Metadata.Annotations[AnnotationInjectCopied]
	if set && value != "true" && value != "false" {
		return nil, annotationError(AnnotationInject, value, `want "true" or "false"`)
	}
	var tmplAnn map[string]string
	if tmpl.Metadata != nil {
		tmplAnn = tmpl.Metadata.Annotations
	}
	current, inTemplate := tmplAnn[AnnotationInject]
	tmplPath := pointer(toAny(at)...)
	annPath := tmplPath + "/metadata/annotations"

	var ops []PatchOp
	switch {
	case set && (!inTemplate || current != value):
		switch {
		case tmpl.Metadata == nil:
			ops = append(ops, PatchOp{Op: "add", Path: tmplPath + "/metadata", Value: map[string]any{
				"annotations": map[string]string{AnnotationInject: value},
			}})
		case inTemplate:
			ops = append(ops, PatchOp{Op: "replace", Path: annPath + "/" + escapePointer(AnnotationInject), Value: value})
		default:
			ops = addToMap(ops, annPath, tmplAnn != nil, AnnotationInject, value)
		}
		if !copied {
			ops = addToMap(ops, "/metadata/annotations", true, AnnotationInjectCopied, "true")
		}
	case !set && copied:
		if inTemplate {
			ops = append(ops, PatchOp{Op: "remove", Path: annPath + "/" + escapePointer(AnnotationInject)})
		}
		ops = append(ops, PatchOp{Op: "remove", Path: pointer("metadata", "annotations", AnnotationInjectCopied)})
	}
	return ops, nil
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// WorkloadHandler serves /mutate-workloads.
type WorkloadHandler struct {
	o Options
}

// NewWorkloadHandler returns the workload handler.
func NewWorkloadHandler(o Options) *WorkloadHandler {
	return &WorkloadHandler{o: o}
}

// Handle answers one admission request for a workload.
func (h *WorkloadHandler) Handle(ctx context.Context, req admission.Request) admission.Response {
	outcome, resp := h.handle(req)
	h.o.Metrics.observe(webhookWorkloads, outcome)
	return resp
}

func (h *WorkloadHandler) handle(req admission.Request) (string, admission.Response) {
	log := h.o.logger().WithValues("namespace", req.Namespace, "kind", req.Kind.Kind, "name", req.Name)
	switch {
	case req.Operation != admissionv1.Create && req.Operation != admissionv1.Update, req.SubResource != "":
		return OutcomeSkipped, admission.Allowed("not a workload creation or update")
	case h.o.Settings.untouchable(req.Namespace):
		return OutcomeSkipped, admission.Allowed(ReasonSystemNamespace)
	case req.Kind.Kind == "Job" && req.Operation == admissionv1.Update:
		// A Job's Pod template is immutable.
		return OutcomeSkipped, admission.Allowed("a Job's Pod template cannot change")
	}
	if _, ok := workloadTemplates[req.Kind.Kind]; !ok {
		return OutcomeSkipped, admission.Allowed("not a workload")
	}
	ops, err := WorkloadPatch(req.Kind.Kind, req.Object.Raw)
	if err != nil {
		var d *Denial
		if errors.As(err, &d) {
			log.Info("workload denied", "reason", d.Msg)
			return OutcomeDenied, admission.Denied(d.Msg)
		}
		log.Error(err, "cannot patch workload")
		return OutcomeError, admission.Errored(http.StatusBadRequest, err)
	}
	if len(ops) == 0 {
		return OutcomeSkipped, admission.Allowed("pod template up to date")
	}
	log.Info("workload template updated", "operations", len(ops))
	return OutcomeInjected, admission.Patched("", toAdmission(ops)...)
}
