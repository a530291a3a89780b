package rules

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// promtool returns the promtool to run: $PROMTOOL if set (to test with another Prometheus release), else the
// one in PATH. A missing promtool fails the test: CI installs it, and a skipped rule test proves nothing.
func promtool(t *testing.T) string {
	t.Helper()
	if path := os.Getenv("PROMTOOL"); path != "" {
		return path
	}
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool is not installed: run `make deps` (it installs Debian's prometheus package), "+
			"or set PROMTOOL to a promtool binary: %v", err)
	}
	return path
}

func runPromtool(t *testing.T, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, promtool(t), args...)
	out, err := cmd.CombinedOutput()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("promtool %s timed out:\n%s", strings.Join(args, " "), out)
	}
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
}

func globAtLeastOne(t *testing.T, pattern string) []string {
	t.Helper()
	paths, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatalf("glob %s: %v", pattern, err)
	}
	if len(paths) == 0 {
		t.Fatalf("no files match %s", pattern)
	}
	return paths
}

func TestPromtoolCheckRules(t *testing.T) {
	runPromtool(t, append([]string{"check", "rules"}, globAtLeastOne(t, "*.yml")...)...)
}

func TestPromtoolTestRules(t *testing.T) {
	runPromtool(t, append([]string{"test", "rules"}, globAtLeastOne(t, filepath.Join("tests", "*.yml"))...)...)
}

// The exporter must emit each of these (the balancer emits proxbalance_*); a change here is a change of the
// metric-name contract and must be agreed with the exporter.
func TestMetricNames(t *testing.T) {
	got, err := MetricNames(".")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"proxbalance_node_maintenance",
		"pve_cluster_quorate",
		"pve_cpu_usage_limit",
		"pve_cpu_usage_ratio",
		"pve_disk_size_bytes",
		"pve_disk_usage_bytes",
		"pve_exporter_scrape_collector_success",
		"pve_guest_info",
		"pve_guest_tag_info",
		"pve_memory_size_bytes",
		"pve_memory_usage_bytes",
		"pve_node_iowait_ratio",
		"pve_up",
	}
	if !slices.Equal(got, want) {
		t.Errorf("MetricNames(.) =\n%q\nwant\n%q", got, want)
	}
}

func TestMetricNamesOfOtherDirectories(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("a.yml", `
groups:
  - name: a
    rules:
      - record: job:up_total:sum
        expr: sum without (instance) (up_total{job="x"})
      - alert: Down
        expr: job:up_total:sum == 0 or absent(other_metric)
`)
	write("b.yaml", `
groups:
  - name: b
    rules:
      - record: job:errors:rate5m
        expr: rate(errors_total[5m]) / on (job) group_left job:up_total:sum
`)
	write("notes.txt", "not a rule file")
	if err := os.Mkdir(filepath.Join(dir, "tests"), 0o700); err != nil {
		t.Fatal(err)
	}
	write("tests/t.yml", "rule_files: [../a.yml]\ntests: []\n")

	names, err := MetricNames(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"errors_total", "other_metric", "up_total"}; !slices.Equal(names, want) {
		t.Errorf("MetricNames = %q, want %q", names, want)
	}
	recorded, err := RecordedNames(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"job:errors:rate5m", "job:up_total:sum"}; !slices.Equal(recorded, want) {
		t.Errorf("RecordedNames = %q, want %q", recorded, want)
	}

	if _, err := MetricNames(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no rule files") {
		t.Errorf("MetricNames(empty dir) error = %v, want one saying there are no rule files", err)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, yaml, wantErr string
	}{
		{"empty", ``, `x.yml: empty rule file`},
		{"not yaml", "groups: [", `x.yml: yaml: line 1: did not find expected node content`},
		{"no groups", `groups: []`, `x.yml: no rule groups`},
		{"unknown top-level field", "groups: []\nrules: []", `x.yml: line 2: unknown field "rules" in rule file`},
		{"groups not a list", `groups: {a: b}`, `x.yml: line 1: groups must be a list`},
		{"group not a mapping", "groups:\n  - a", `x.yml: line 2: group must be a mapping`},
		{"group without name", "groups:\n  - rules: []", `x.yml: line 2: group without a name`},
		{
			"unknown group field", "groups:\n  - name: a\n    intervall: 1m",
			`x.yml: line 3: unknown field "intervall" in group`,
		},
		{
			"bad limit", "groups:\n  - name: a\n    limit: many",
			"x.yml: line 3: field \"limit\": line 3: cannot unmarshal !!str `many` into int",
		},
		{
			"unknown rule field", "groups:\n  - name: a\n    rules:\n      - record: r\n        exp: up",
			`x.yml: line 5: unknown field "exp" in rule`,
		},
		{
			"repeated field", "groups:\n  - name: a\n    rules:\n      - alert: A\n        expr: up\n        expr: down",
			`x.yml: line 6: field "expr" repeated in rule`,
		},
		{
			"neither record nor alert", "groups:\n  - name: a\n    rules:\n      - expr: up",
			`x.yml: line 4: rule has neither record nor alert`,
		},
		{
			"both record and alert", "groups:\n  - name: a\n    rules:\n      - record: r\n        alert: A\n        expr: up",
			`x.yml: line 4: rule has both record "r" and alert "A"`,
		},
		{
			"no expr", "groups:\n  - name: a\n    rules:\n      - alert: A",
			`x.yml: line 4: rule A has no expr`,
		},
		{
			"expr not a string", "groups:\n  - name: a\n    rules:\n      - alert: A\n        expr: [up]",
			`x.yml: line 5: expected a string`,
		},
		{
			"label value not a string", "groups:\n  - name: a\n    rules:\n      - alert: A\n        expr: up\n        labels: {a: [b]}",
			`x.yml: line 6: value of "a" must be a string`,
		},
		{
			"expr names cannot be listed", "groups:\n  - name: a\n    rules:\n      - alert: A\n        expr: '{__name__=~\"x.*\"}'",
			`x.yml: line 4: rule A: expr: offset 1: __name__=~"x.*" names metrics that cannot be listed; select them by name`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse("x.yml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("Parse = %+v, want error %q", f, tt.wantErr)
			}
			if err.Error() != tt.wantErr {
				t.Errorf("Parse error =\n%q\nwant\n%q", err, tt.wantErr)
			}
		})
	}
}

func TestParseKeepsEveryField(t *testing.T) {
	f, err := Parse("x.yml", []byte(`
groups:
  - name: g
    interval: 30s
    query_offset: 1m
    limit: 10
    labels: {team: infra}
    rules:
      - record: a:b:c
        expr: sum(x)
        labels: {l: v}
      - alert: A
        expr: a:b:c > 1
        for: 5m
        keep_firing_for: 10m
        labels: {severity: warning}
        annotations: {summary: s}
`))
	if err != nil {
		t.Fatal(err)
	}
	g := f.Groups[0]
	if g.Name != "g" || g.Interval != "30s" || g.QueryOffset != "1m" || g.Limit != 10 || g.Labels["team"] != "infra" || g.Line != 3 {
		t.Errorf("group = %+v", g)
	}
	rec, alert := g.Rules[0], g.Rules[1]
	if rec.Name() != "a:b:c" || rec.Expr != "sum(x)" || rec.Labels["l"] != "v" || rec.Line != 9 {
		t.Errorf("recording rule = %+v", rec)
	}
	if alert.Name() != "A" || alert.For != "5m" || alert.KeepFiringFor != "10m" ||
		alert.Labels["severity"] != "warning" || alert.Annotations["summary"] != "s" || alert.Line != 12 {
		t.Errorf("alerting rule = %+v", alert)
	}
}

func FuzzParse(f *testing.F) {
	for _, path := range []string{"recording.yml", "alerts.yml"} {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("groups:\n  - name: a\n    rules:\n      - record: r\n        expr: up{a=\"b\"}\n"))
	f.Add([]byte("groups: [{name: a, rules: [{alert: A, expr: 'x', labels: {a: b}}]}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse("fuzz.yml", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.yml: ") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		for _, g := range file.Groups {
			for _, r := range g.Rules {
				if (r.Record == "") == (r.Alert == "") || strings.TrimSpace(r.Expr) == "" {
					t.Fatalf("Parse accepted an invalid rule %+v", r)
				}
			}
		}
	})
}

var (
	// level:metric:operations, each part a plain name (https://prometheus.io/docs/practices/rules/).
	recordName = regexp.MustCompile(`^[a-z][a-z0-9_]*:[a-z][a-z0-9_]*:[a-z][a-z0-9_]*$`)
	alertName  = regexp.MustCompile(`^PVE[A-Z][A-Za-z]+$`)
	actions    = []string{"relieve", "rebalance", "evacuate", "repair-anti-affinity"}
	severities = []string{"critical", "warning", "info"}
)

// TestRuleConventions holds every rule to the conventions rules/README.md promises.
func TestRuleConventions(t *testing.T) {
	files, err := Load(".")
	if err != nil {
		t.Fatal(err)
	}
	for path, r := range allRules(files) {
		where := path + ": " + r.Name()
		if r.Record != "" {
			if !recordName.MatchString(r.Record) {
				t.Errorf("%s: recorded name is not level:metric:operations", where)
			}
			continue
		}
		if !alertName.MatchString(r.Alert) {
			t.Errorf("%s: alert name must be PVE followed by CamelCase", where)
		}
		if !slices.Contains(severities, r.Labels["severity"]) {
			t.Errorf("%s: severity %q is not one of %q", where, r.Labels["severity"], severities)
		}
		for _, key := range []string{"summary", "description"} {
			if strings.TrimSpace(r.Annotations[key]) == "" {
				t.Errorf("%s: no %s annotation", where, key)
			}
		}
		if r.For == "" {
			t.Errorf("%s: no `for`: every alert must wait out a blip", where)
		}
		action, acted := r.Labels["proxbalance_action"]
		if acted && !slices.Contains(actions, action) {
			t.Errorf("%s: proxbalance_action %q is not one of %q", where, action, actions)
		}
	}
}

// unitTests is the part of a promtool test file that tells which rules it exercises.
type unitTests struct {
	Tests []struct {
		PromQLExprTest []struct {
			Expr       string `yaml:"expr"`
			ExpSamples []any  `yaml:"exp_samples"`
		} `yaml:"promql_expr_test"`
		AlertRuleTest []struct {
			Alertname string `yaml:"alertname"`
			ExpAlerts []any  `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

// TestEveryRuleIsUnitTested fails when a recording rule is never evaluated by a promtool test with an expected
// sample, or an alert is not shown both firing and not firing.
func TestEveryRuleIsUnitTested(t *testing.T) {
	sampled := map[string]bool{}
	firing := map[string]bool{}
	silent := map[string]bool{}
	for _, path := range globAtLeastOne(t, filepath.Join("tests", "*.yml")) {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var ut unitTests
		if err := yaml.Unmarshal(data, &ut); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		for _, tc := range ut.Tests {
			for _, pt := range tc.PromQLExprTest {
				names, err := ExprMetricNames(pt.Expr)
				if err != nil {
					t.Fatalf("%s: expr %q: %v", path, pt.Expr, err)
				}
				if len(pt.ExpSamples) > 0 {
					for _, name := range names {
						sampled[name] = true
					}
				}
			}
			for _, at := range tc.AlertRuleTest {
				if len(at.ExpAlerts) > 0 {
					firing[at.Alertname] = true
				} else {
					silent[at.Alertname] = true
				}
			}
		}
	}
	files, err := Load(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range allRules(files) {
		switch {
		case r.Record != "" && !sampled[r.Record]:
			t.Errorf("recording rule %s has no promql_expr_test with expected samples", r.Record)
		case r.Alert != "" && !firing[r.Alert]:
			t.Errorf("alert %s has no alert_rule_test in which it fires", r.Alert)
		case r.Alert != "" && !silent[r.Alert]:
			t.Errorf("alert %s has no alert_rule_test in which it stays silent", r.Alert)
		}
	}
}
