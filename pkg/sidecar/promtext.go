package sidecar

import (
	"math"
	"strconv"
	"strings"
)

// promWriter appends metrics in the Prometheus text exposition format
// (version 0.0.4). The sidecar writes its few metrics itself rather than
// link prometheus/client_golang, which adds more than 2 MB to the binary
// and to the resident memory (docs/design/2026-11-23-sidecar-metrics.md).
//
// The caller writes each family once, header first, then its samples; the
// order of the calls is the order of the output.
type promWriter struct{ b []byte }

// promContentType is the Content-Type of the text format.
const promContentType = "text/plain; version=0.0.4; charset=utf-8"

// family writes the HELP and TYPE lines of a metric family.
func (w *promWriter) family(name, typ, help string) {
	w.b = append(w.b, "# HELP "...)
	w.b = append(w.b, name...)
	w.b = append(w.b, ' ')
	w.b = appendHelp(w.b, help)
	w.b = append(w.b, "\n# TYPE "...)
	w.b = append(w.b, name...)
	w.b = append(w.b, ' ')
	w.b = append(w.b, typ...)
	w.b = append(w.b, '\n')
}

// sample writes one sample; labels alternate names and values.
func (w *promWriter) sample(name string, value float64, labels ...string) {
	w.b = append(w.b, name...)
	w.b = appendLabels(w.b, labels)
	w.b = append(w.b, ' ')
	w.b = appendFloat(w.b, value)
	w.b = append(w.b, '\n')
}

// sampleUint is sample for counters, exact beyond 2^53.
func (w *promWriter) sampleUint(name string, value uint64, labels ...string) {
	w.b = append(w.b, name...)
	w.b = appendLabels(w.b, labels)
	w.b = append(w.b, ' ')
	w.b = strconv.AppendUint(w.b, value, 10)
	w.b = append(w.b, '\n')
}

func appendLabels(b []byte, labels []string) []byte {
	if len(labels) == 0 {
		return b
	}
	b = append(b, '{')
	for i := 0; i+1 < len(labels); i += 2 {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, labels[i]...)
		b = append(b, `="`...)
		b = appendLabelValue(b, labels[i+1])
		b = append(b, '"')
	}
	return append(b, '}')
}

// appendLabelValue escapes a label value: backslash, double quote and line
// feed.
func appendLabelValue(b []byte, v string) []byte {
	if !strings.ContainsAny(v, "\\\"\n") {
		return append(b, v...)
	}
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '\\':
			b = append(b, `\\`...)
		case '"':
			b = append(b, `\"`...)
		case '\n':
			b = append(b, `\n`...)
		default:
			b = append(b, c)
		}
	}
	return b
}

// appendHelp escapes HELP text: backslash and line feed.
func appendHelp(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			b = append(b, `\\`...)
		case '\n':
			b = append(b, `\n`...)
		default:
			b = append(b, c)
		}
	}
	return b
}

func appendFloat(b []byte, v float64) []byte {
	switch {
	case math.IsInf(v, 1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	case math.IsNaN(v):
		return append(b, "NaN"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}
