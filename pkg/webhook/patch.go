package webhook

import (
	"strconv"
	"strings"

	"gomodules.xyz/jsonpatch/v2"
)

// PatchOp is one RFC 6902 JSON patch operation. The injector emits "add"
// for Pods, and a "remove" only to move its own sidecar on reinvocation
// (Reinvoke); the workload webhook also emits "replace" and "remove" for
// the one annotation it owns. Value is omitted only when nil (a "remove"), so
// an empty string is still sent.
type PatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// toAdmission converts ops for controller-runtime's admission.Response.
func toAdmission(ops []PatchOp) []jsonpatch.JsonPatchOperation {
	out := make([]jsonpatch.JsonPatchOperation, len(ops))
	for i, o := range ops {
		out[i] = jsonpatch.JsonPatchOperation{Operation: o.Op, Path: o.Path, Value: o.Value}
	}
	return out
}

// escapePointer escapes one JSON pointer segment (RFC 6901): '~' becomes
// "~0" and '/' becomes "~1", so "athenz.io/status" is "athenz.io~1status".
func escapePointer(s string) string {
	if !strings.ContainsAny(s, "~/") {
		return s
	}
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
}

// pointer joins segments into a JSON pointer, escaping string segments.
func pointer(segments ...any) string {
	var b strings.Builder
	for _, s := range segments {
		b.WriteByte('/')
		switch v := s.(type) {
		case string:
			b.WriteString(escapePointer(v))
		case int:
			b.WriteString(strconv.Itoa(v))
		default:
			panic("pointer: segment must be string or int")
		}
	}
	return b.String()
}

// addToMap adds key=value to the string map at path. When the map is absent
// the whole map is added instead, since JSON patch cannot add a member to
// an object that does not exist.
func addToMap(ops []PatchOp, path string, exists bool, key string, value any) []PatchOp {
	if !exists {
		return append(ops, PatchOp{Op: "add", Path: path, Value: map[string]any{key: value}})
	}
	return append(ops, PatchOp{Op: "add", Path: path + "/" + escapePointer(key), Value: value})
}

// appendToList appends items to the list at path, adding the list when it
// is absent.
func appendToList[T any](ops []PatchOp, path string, exists bool, items ...T) []PatchOp {
	if len(items) == 0 {
		return ops
	}
	if !exists {
		return append(ops, PatchOp{Op: "add", Path: path, Value: items})
	}
	for _, it := range items {
		ops = append(ops, PatchOp{Op: "add", Path: path + "/-", Value: it})
	}
	return ops
}
