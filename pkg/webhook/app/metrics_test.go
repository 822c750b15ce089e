package app_test

import (
	"testing"
)

// admissionCount reads athenz_injector_admissions_total{webhook, outcome}
// from the injector's registry.
func admissionCount(t *testing.T, webhook, outcome string) float64 {
	t.Helper()
	families, err := registry.Gather()
	if err != nil {
		t.Fatalf("gathering metrics: %v", err)
	}
	for _, f := range families {
		if f.GetName() != "athenz_injector_admissions_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["webhook"] == webhook && labels["outcome"] == outcome {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no athenz_injector_admissions_total{webhook=%q,outcome=%q}", webhook, outcome)
	return 0
}
