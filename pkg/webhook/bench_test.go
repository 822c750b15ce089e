package webhook

import (
	"encoding/json"
	"testing"
)

// BenchmarkBuildPatch measures the mutation of one Pod with three
// containers: ShouldInject, BuildPatch and the JSON encoding of the patch,
// which is what the handler does per admission besides decoding.
func BenchmarkBuildPatch(b *testing.B) {
	c := loadCase(b, "several-containers")
	b.ReportAllocs()
	for b.Loop() {
		ops, err := Mutate(c.pod, c.nsLabels, c.profile, testSettings)
		if err != nil || len(ops) == 0 {
			b.Fatalf("Mutate = %d operations, %v", len(ops), err)
		}
		if _, err := json.Marshal(ops); err != nil {
			b.Fatal(err)
		}
	}
}
