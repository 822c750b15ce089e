package main

import (
	"io"
	"log/slog"

	"github.com/go-logr/logr"
)

// levels maps ATHENZ_LOG_LEVEL to the least slog level logged. logr's
// V(1), the sidecar's debug lines, is slog level -1.
var levels = map[string]slog.Level{"debug": -1, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}

// newLogger returns the sidecar's logger: JSON lines on w with the keys
// docs/operations.md lists (level, ts in Unix seconds, logger, msg, error),
// through the standard library's log/slog. (The sidecar used zap; slog
// writes the same lines and keeps zap's 0.3 MB out of the binary, see
// docs/design/2026-12-02-sidecar-footprint.md.)
func newLogger(w io.Writer, level string) logr.Logger {
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level: levels[level], // validated by ConfigFromEnv; the zero value is info
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) > 0 {
				return a
			}
			switch a.Key {
			case slog.TimeKey:
				return slog.Float64("ts", float64(a.Value.Time().UnixNano())/1e9)
			case slog.LevelKey:
				return slog.String("level", levelName(a.Value.Any().(slog.Level)))
			case "err": // logr's key for Error's error
				return slog.Attr{Key: "error", Value: a.Value}
			}
			return a
		},
	})
	return logr.FromSlogHandler(h)
}

func levelName(l slog.Level) string {
	switch {
	case l < slog.LevelInfo:
		return "debug"
	case l < slog.LevelWarn:
		return "info"
	case l < slog.LevelError:
		return "warn"
	}
	return "error"
}
