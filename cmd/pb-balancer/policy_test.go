package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/proxbalance/proxbalance/internal/placement"
)

func TestParsePolicy(t *testing.T) {
	tests := []struct {
		name  string
		yaml  string
		check func(t *testing.T, p placement.Policy)
		err   string
	}{
		{name: "empty file is the default", yaml: "", check: func(t *testing.T, p placement.Policy) {
			if p.Thresholds != placement.DefaultPolicy().Thresholds || p.MaxMoves != placement.DefaultPolicy().MaxMoves {
				t.Fatalf("policy = %+v", p)
			}
		}},
		{name: "fields override the defaults, the rest stays", yaml: "thresholds:\n  cpu: 0.7\ncurrent_window: 10m\nmax_moves: 3\n",
			check: func(t *testing.T, p placement.Policy) {
				d := placement.DefaultPolicy()
				if p.Thresholds.CPU != 0.7 || p.Thresholds.Memory != d.Thresholds.Memory || p.CurrentWindow != 10*time.Minute ||
					p.MaxMoves != 3 || p.MinCoverage != d.MinCoverage {
					t.Fatalf("policy = %+v", p)
				}
			}},
		{name: "unknown field", yaml: "thresholds:\n  cpus: 0.7\n", err: "line 2: field cpus not found"},
		{name: "out of range", yaml: "thresholds: {cpu: 2}\n", err: "thresholds.cpu: 2 is outside [0.01, 0.99]"},
		{name: "weights must sum to 1", yaml: "windows: {current: 1, day: 1, week: 0}\n", err: "windows: weights sum to 2, want 1"},
		{name: "bad duration", yaml: "current_window: soon\n", err: "line 1: cannot unmarshal !!str `soon` into time.Duration"},
		{name: "not a mapping", yaml: "- 1\n", err: "line 1: cannot unmarshal !!seq into placement.Policy"},
		{name: "two documents", yaml: "max_moves: 1\n---\nmax_moves: 2\n", err: "more than one YAML document"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := parsePolicy([]byte(tt.yaml))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, p)
		})
	}
}

func TestLoadPolicyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yml")
	if err := os.WriteFile(path, []byte("min_improvement: 0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := loadPolicy(path)
	if err == nil || !strings.HasPrefix(err.Error(), "policy "+path+": min_improvement: 0 is outside") {
		t.Fatalf("loadPolicy = %v", err)
	}
	if _, err := loadPolicy(filepath.Join(t.TempDir(), "missing.yml")); err == nil || !strings.HasPrefix(err.Error(), "reading policy: ") {
		t.Fatalf("missing file: %v", err)
	}
	o, err := parsePlanFlags(append(strings.Fields(minimalFlags), "-policy.file="+path), &strings.Builder{})
	if err == nil || !strings.Contains(err.Error(), "-policy.file: policy "+path+": min_improvement") {
		t.Fatalf("flag error = %v (policy %+v)", err, o.policy)
	}
}

// FuzzParsePolicy: any bytes decode or fail cleanly, and a policy that decodes is valid.
func FuzzParsePolicy(f *testing.F) {
	for _, s := range []string{"", "thresholds: {cpu: 0.7}\n", "current_window: 10m\n", "max_moves: -1\n", "- 1\n",
		"a: b\n", "windows: {current: 0.5, day: 0.5, week: 0}\n", "distribute: {small_cpus: 0}\n", "---\n---\n", "{"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := parsePolicy(data)
		if err != nil {
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("parsePolicy(%q) returned an invalid policy: %v", data, err)
		}
	})
}
