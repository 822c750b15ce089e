package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/go-logr/logr"
)

// newLogger returns the sidecar's logger: JSON lines on w with the keys
// docs/operations.md lists, in zap's layout (level, ts in Unix seconds,
// logger, msg, error, then the key/value pairs). It is a small logr sink
// of its own: zap and log/slog's JSON handler would add 0.3 MB and 0.1 MB
// to the binary for the same lines
// (docs/design/2026-12-02-sidecar-footprint.md). level is ATHENZ_LOG_LEVEL,
// validated by ConfigFromEnv: debug logs V(1) too; warn and error log
// errors only (the sidecar has no warnings).
func newLogger(w io.Writer, level string) logr.Logger {
	maxV := 0
	switch level {
	case "debug":
		maxV = 1
	case "warn", "error":
		maxV = -1
	}
	return logr.New(&jsonSink{out: &lockedWriter{w: w}, maxV: maxV, now: time.Now})
}

// lockedWriter writes each line in one call, one line at a time.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) write(b []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = l.w.Write(b) // nowhere to report a failed write of the log
}

// jsonSink is a logr.LogSink writing JSON lines. WithName and WithValues
// return copies; the writer is shared.
type jsonSink struct {
	out    *lockedWriter
	maxV   int
	now    func() time.Time
	name   string
	values []byte // the WithValues pairs, encoded, each with a leading comma
}

func (s *jsonSink) Init(logr.RuntimeInfo) {}

func (s *jsonSink) Enabled(level int) bool { return level <= s.maxV }

func (s *jsonSink) Info(level int, msg string, kv ...any) {
	lvl := "info"
	if level > 0 {
		lvl = "debug"
	}
	s.write(lvl, msg, nil, kv)
}

func (s *jsonSink) Error(err error, msg string, kv ...any) { s.write("error", msg, err, kv) }

func (s *jsonSink) WithValues(kv ...any) logr.LogSink {
	c := *s
	c.values = appendPairs(append([]byte(nil), s.values...), kv)
	return &c
}

func (s *jsonSink) WithName(name string) logr.LogSink {
	c := *s
	if c.name != "" {
		c.name += "."
	}
	c.name += name
	return &c
}

func (s *jsonSink) write(level, msg string, err error, kv []any) {
	b := make([]byte, 0, 256)
	b = append(b, `{"level":"`...)
	b = append(b, level...)
	b = append(b, `","ts":`...)
	b = strconv.AppendFloat(b, float64(s.now().UnixNano())/1e9, 'f', -1, 64)
	if s.name != "" {
		b = appendPair(b, "logger", s.name)
	}
	b = appendPair(b, "msg", msg)
	if err != nil {
		b = appendPair(b, "error", err)
	}
	b = append(b, s.values...)
	b = appendPairs(b, kv)
	b = append(b, "}\n"...)
	s.out.write(b)
}

// appendPairs appends key/value pairs, each with a leading comma; a key
// without a value gets null, as zapr logs it.
func appendPairs(b []byte, kv []any) []byte {
	for i := 0; i < len(kv); i += 2 {
		key, ok := kv[i].(string)
		if !ok {
			key = fmt.Sprint(kv[i])
		}
		var v any
		if i+1 < len(kv) {
			v = kv[i+1]
		}
		b = appendPair(b, key, v)
	}
	return b
}

func appendPair(b []byte, key string, v any) []byte {
	b = append(b, ',')
	b = appendJSON(b, key)
	b = append(b, ':')
	switch x := v.(type) {
	case error:
		v = x.Error()
	case fmt.Stringer:
		v = x.String()
	}
	return appendJSON(b, v)
}

func appendJSON(b []byte, v any) []byte {
	enc, err := json.Marshal(v)
	if err != nil {
		enc, _ = json.Marshal(fmt.Sprintf("%+v", v))
	}
	return append(b, enc...)
}
