package logging

import (
	"bytes"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
)

func TestParseLevelFilters(t *testing.T) {
	tests := []struct {
		name string
		kept []string // levels that reach the writer, in logging order
	}{
		{"debug", []string{"debug", "info", "warn", "error"}},
		{"info", []string{"info", "warn", "error"}},
		{"warn", []string{"warn", "error"}},
		{"error", []string{"error"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			allow, err := ParseLevel(tt.name)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			logger := New(&buf, allow)
			for _, l := range []func(log.Logger) log.Logger{level.Debug, level.Info, level.Warn, level.Error} {
				if err := l(logger).Log("msg", "m"); err != nil {
					t.Fatal(err)
				}
			}
			var got []string
			for line := range strings.Lines(buf.String()) {
				if !strings.HasPrefix(line, "ts=") || !strings.HasSuffix(line, " msg=m\n") {
					t.Errorf("line %q: want ts=... level=... msg=m", line)
				}
				_, rest, _ := strings.Cut(line, " level=")
				lvl, _, _ := strings.Cut(rest, " ")
				got = append(got, lvl)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.kept) {
				t.Errorf("levels written = %v, want %v", got, tt.kept)
			}
		})
	}
}

func TestParseLevelRejects(t *testing.T) {
	for _, name := range []string{"", "loud", "INFO", "warning", " info"} {
		_, err := ParseLevel(name)
		if err == nil {
			t.Errorf("ParseLevel(%q): no error", name)
			continue
		}
		if want := fmt.Sprintf("%q", name); !strings.Contains(err.Error(), want) {
			t.Errorf("ParseLevel(%q) = %v, want the error to quote %s", name, err, want)
		}
	}
}

func TestCallerCountsFromCallSite(t *testing.T) {
	var buf bytes.Buffer
	logger := log.With(New(&buf, level.AllowInfo()), "caller", log.DefaultCaller)
	_, _, line, _ := runtime.Caller(0)
	level.Info(logger).Log("msg", "hello")
	if want := fmt.Sprintf(" level=info caller=logging_test.go:%d msg=hello\n", line+1); !strings.HasSuffix(buf.String(), want) {
		t.Errorf("got %q, want a line ending in %q", buf.String(), want)
	}
}
