// Package logging builds the commands' go-kit loggers: logfmt with a UTC timestamp, keeping only records at or
// above the level that a -log.level flag names.
package logging

import (
	"fmt"
	"io"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
)

// ParseLevel returns the filter that keeps records at the named level (debug, info, warn or error) and above.
// The error quotes the rejected name, so callers prefix only the flag: fmt.Errorf("-log.level %w", err).
func ParseLevel(name string) (level.Option, error) {
	switch name {
	case "debug":
		return level.AllowDebug(), nil
	case "info":
		return level.AllowInfo(), nil
	case "warn":
		return level.AllowWarn(), nil
	case "error":
		return level.AllowError(), nil
	}
	return nil, fmt.Errorf("%q: want debug, info, warn or error", name)
}

// New returns a logger writing logfmt lines to w (safe for concurrent use), each with a UTC "ts", dropping
// records below allow. Bind "caller" on the result (log.With(logger, "caller", log.DefaultCaller)), not inside
// it, so that log.DefaultCaller counts frames from the call site.
func New(w io.Writer, allow level.Option) log.Logger {
	return level.NewFilter(log.With(log.NewLogfmtLogger(log.NewSyncWriter(w)), "ts", log.DefaultTimestampUTC), allow)
}
