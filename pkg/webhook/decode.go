package webhook

import (
	"bytes"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	kjson "sigs.k8s.io/json"
)

// DecodePod decodes a Pod from an admission request the way the API server
// reads it (case-sensitive field names), so that the Pod the patch is
// built from is the document the patch is applied to. Fields this
// k8s.io/api version does not know are ignored; they stay in the request's
// JSON, which the API server patches.
func DecodePod(raw []byte) (*corev1.Pod, error) {
	if b := bytes.TrimLeft(raw, " \t\r\n"); len(b) == 0 || b[0] != '{' {
		return nil, fmt.Errorf("decoding pod: not a JSON object")
	}
	pod := &corev1.Pod{}
	if err := kjson.UnmarshalCaseSensitivePreserveInts(raw, pod); err != nil {
		return nil, fmt.Errorf("decoding pod: %w", err)
	}
	return pod, nil
}
