package main

import (
	"context"
	"log/slog"
	"path/filepath"
	"runtime"
	"strconv"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
)

// goKitHandler is a slog.Handler that writes to a go-kit logger, so that exporter-toolkit (which wants a
// *slog.Logger) logs into the same leveled logfmt stream as the rest of the exporter. Level filtering is the
// go-kit logger's; the caller key comes from the record's call site.
type goKitHandler struct {
	logger log.Logger
	// prefix is the dot-joined group path applied to attribute keys.
	prefix string
}

func newSlogLogger(logger log.Logger) *slog.Logger { return slog.New(goKitHandler{logger: logger}) }

func (h goKitHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h goKitHandler) Handle(_ context.Context, r slog.Record) error {
	keyvals := make([]any, 0, 4+2*r.NumAttrs())
	if r.PC != 0 {
		frame, _ := runtime.CallersFrames([]uintptr{r.PC}).Next()
		keyvals = append(keyvals, "caller", filepath.Base(frame.File)+":"+strconv.Itoa(frame.Line))
	}
	keyvals = append(keyvals, "msg", r.Message)
	r.Attrs(func(a slog.Attr) bool {
		keyvals = appendAttr(keyvals, h.prefix, a)
		return true
	})
	return leveled(h.logger, r.Level).Log(keyvals...)
}

func (h goKitHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	keyvals := make([]any, 0, 2*len(attrs))
	for _, a := range attrs {
		keyvals = appendAttr(keyvals, h.prefix, a)
	}
	return goKitHandler{logger: log.With(h.logger, keyvals...), prefix: h.prefix}
}

func (h goKitHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return goKitHandler{logger: h.logger, prefix: h.prefix + name + "."}
}

// appendAttr flattens a (possibly group) attribute into go-kit key/value pairs.
func appendAttr(keyvals []any, prefix string, a slog.Attr) []any {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, ga := range v.Group() {
			keyvals = appendAttr(keyvals, p, ga)
		}
		return keyvals
	}
	if a.Equal(slog.Attr{}) {
		return keyvals
	}
	return append(keyvals, prefix+a.Key, v.Any())
}

func leveled(logger log.Logger, l slog.Level) log.Logger {
	switch {
	case l >= slog.LevelError:
		return level.Error(logger)
	case l >= slog.LevelWarn:
		return level.Warn(logger)
	case l >= slog.LevelInfo:
		return level.Info(logger)
	default:
		return level.Debug(logger)
	}
}
