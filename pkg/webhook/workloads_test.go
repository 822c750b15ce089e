package webhook

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestWorkloadPatch(t *testing.T) {
	tests := []struct {
		name string
		kind string
		obj  string
		// wantTemplate is the template's athenz.io/inject after the patch,
		// "" for absent; wantMarker whether the workload then carries
		// athenz.io/inject-copied.
		wantTemplate string
		wantMarker   bool
		wantOps      int
		wantDenial   string
	}{
		{
			name:         "annotate deployment",
			kind:         "Deployment",
			obj:          `{"metadata":{"name":"web","annotations":{"athenz.io/inject":"true"}},"spec":{"template":{"metadata":{"labels":{"app":"web"}},"spec":{}}}}`,
			wantTemplate: "true", wantMarker: true, wantOps: 2,
		},
		{
			name:         "template without metadata",
			kind:         "StatefulSet",
			obj:          `{"metadata":{"annotations":{"athenz.io/inject":"true"}},"spec":{"template":{"spec":{}}}}`,
			wantTemplate: "true", wantMarker: true, wantOps: 2,
		},
		{
			name:         "template with other annotations",
			kind:         "DaemonSet",
			obj:          `{"metadata":{"annotations":{"athenz.io/inject":"false"}},"spec":{"template":{"metadata":{"annotations":{"a":"b"}}}}}`,
			wantTemplate: "false", wantMarker: true, wantOps: 2,
		},
		{
			name:         "already in step",
			kind:         "Deployment",
			obj:          `{"metadata":{"annotations":{"athenz.io/inject":"true","athenz.io/inject-copied":"true"}},"spec":{"template":{"metadata":{"annotations":{"athenz.io/inject":"true"}}}}}`,
			wantTemplate: "true", wantMarker: true, wantOps: 0,
		},
		{
			name:         "value changed",
			kind:         "Deployment",
			obj:          `{"metadata":{"annotations":{"athenz.io/inject":"false","athenz.io/inject-copied":"true"}},"spec":{"template":{"metadata":{"annotations":{"athenz.io/inject":"true"}}}}}`,
			wantTemplate: "false", wantMarker: true, wantOps: 1,
		},
		{
			name:         "annotation removed from the workload",
			kind:         "Deployment",
			obj:          `{"metadata":{"annotations":{"athenz.io/inject-copied":"true"}},"spec":{"template":{"metadata":{"annotations":{"athenz.io/inject":"true","x":"y"}}}}}`,
			wantTemplate: "", wantMarker: false, wantOps: 2,
		},
		{
			name:         "template annotation set by the user is kept",
			kind:         "Deployment",
			obj:          `{"metadata":{"name":"web"},"spec":{"template":{"metadata":{"annotations":{"athenz.io/inject":"true"}}}}}`,
			wantTemplate: "true", wantMarker: false, wantOps: 0,
		},
		{
			name:         "cronjob",
			kind:         "CronJob",
			obj:          `{"metadata":{"annotations":{"athenz.io/inject":"true"}},"spec":{"schedule":"@daily","jobTemplate":{"spec":{"template":{"metadata":{},"spec":{}}}}}}`,
			wantTemplate: "true", wantMarker: true, wantOps: 2,
		},
		{
			name:         "job",
			kind:         "Job",
			obj:          `{"metadata":{"annotations":{"athenz.io/inject":"true"}},"spec":{"template":{"metadata":{"annotations":{}}}}}`,
			wantTemplate: "true", wantMarker: true, wantOps: 2,
		},
		{
			name:       "invalid value",
			kind:       "Deployment",
			obj:        `{"metadata":{"annotations":{"athenz.io/inject":"yes"}},"spec":{"template":{}}}`,
			wantDenial: "annotation athenz.io/inject",
		},
		{
			name:       "no template",
			kind:       "CronJob",
			obj:        `{"metadata":{"annotations":{"athenz.io/inject":"true"}},"spec":{}}`,
			wantDenial: "no Pod template (/spec/jobTemplate/spec/template)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ops, err := WorkloadPatch(tt.kind, []byte(tt.obj))
			if tt.wantDenial != "" {
				var d *Denial
				if !errors.As(err, &d) || !strings.Contains(err.Error(), tt.wantDenial) {
					t.Fatalf("WorkloadPatch(%s) = %v, want a denial containing %q", tt.name, err, tt.wantDenial)
				}
				return
			}
			if err != nil {
				t.Fatalf("WorkloadPatch(%s) = %v", tt.name, err)
			}
			if len(ops) != tt.wantOps {
				t.Errorf("WorkloadPatch(%s) = %d operations %+v, want %d", tt.name, len(ops), ops, tt.wantOps)
			}
			patched, err := applyPatch([]byte(tt.obj), ops)
			if err != nil {
				t.Fatalf("applying %+v: %v", ops, err)
			}
			var w workload
			if err := json.Unmarshal(patched, &w); err != nil {
				t.Fatal(err)
			}
			tmpl := w.Spec.Template
			if tt.kind == "CronJob" {
				tmpl = w.Spec.JobTemplate.Spec.Template
			}
			var got string
			if tmpl.Metadata != nil {
				got = tmpl.Metadata.Annotations[AnnotationInject]
			}
			if got != tt.wantTemplate {
				t.Errorf("template %s = %q, want %q", AnnotationInject, got, tt.wantTemplate)
			}
			if _, marker := w.Metadata.Annotations[AnnotationInjectCopied]; marker != tt.wantMarker {
				t.Errorf("workload has %s = %v, want %v", AnnotationInjectCopied, marker, tt.wantMarker)
			}
			again, err := WorkloadPatch(tt.kind, patched)
			if err != nil || len(again) != 0 {
				t.Errorf("WorkloadPatch(patched) = %+v, %v; want no operations", again, err)
			}
		})
	}
}
