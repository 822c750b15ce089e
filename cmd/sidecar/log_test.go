package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestLogger: the sidecar's log lines are zap's layout (docs/operations.md):
// level, ts, logger, msg, error, then the pairs; ATHENZ_LOG_LEVEL gates
// them; values that are errors or Stringers are written as text, others
// as JSON, strings escaped.
func TestLogger(t *testing.T) {
	tests := []struct {
		level string
		log   func(w *bytes.Buffer)
		want  []string // lines, ts replaced by 1
	}{
		{"info", func(w *bytes.Buffer) {
			l := newLogger(w, "info").WithName("identity").WithValues("mode", "files")
			l.Info("in place", "serial", "ab\"c", "n", 3, "wait", time.Minute)
			l.V(1).Info("debug line")
			l.Error(errors.New("zts down"), "attempt failed", "attempt", 2, "odd")
		}, []string{
			`{"level":"info","ts":1,"logger":"identity","msg":"in place","mode":"files","serial":"ab\"c","n":3,"wait":"1m0s"}`,
			`{"level":"error","ts":1,"logger":"identity","msg":"attempt failed","error":"zts down","mode":"files","attempt":2,"odd":null}`,
		}},
		{"debug", func(w *bytes.Buffer) {
			l := newLogger(w, "debug").WithName("a").WithName("b")
			l.V(1).Info("debug line", "ok", true)
			l.V(2).Info("too verbose")
		}, []string{`{"level":"debug","ts":1,"logger":"a.b","msg":"debug line","ok":true}`}},
		{"warn", func(w *bytes.Buffer) {
			l := newLogger(w, "warn")
			l.Info("quiet")
			l.Error(errors.New("e"), "loud")
		}, []string{`{"level":"error","ts":1,"msg":"loud","error":"e"}`}},
	}
	for _, tt := range tests {
		t.Run(tt.level, func(t *testing.T) {
			var w bytes.Buffer
			tt.log(&w)
			var got []string
			for line := range strings.SplitSeq(strings.TrimSpace(w.String()), "\n") {
				i := strings.Index(line, `"ts":`)
				j := strings.IndexByte(line[i:], ',')
				if i < 0 || j < 0 {
					t.Fatalf("line without ts: %s", line)
				}
				got = append(got, line[:i]+`"ts":1`+line[i+j:])
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("logged\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}
