package rules

import (
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestExprMetricNames(t *testing.T) {
	tests := []struct {
		name string
		expr string
		want []string
	}{
		{"bare name", `pve_up`, []string{"pve_up"}},
		{"recorded name with colons", `node:pve_cpu_usage_ratio:avg5m > 0.8`, []string{"node:pve_cpu_usage_ratio:avg5m"}},
		{
			"label names and values in a selector are not names",
			`pve_up{id=~"node/.+", instance!="pve_cpu_usage_ratio", job!~'x', le="0.5"}`,
			[]string{"pve_up"},
		},
		{"functions, ranges and durations", `avg_over_time(pve_cpu_usage_ratio[5m])`, []string{"pve_cpu_usage_ratio"}},
		{
			"subquery, offset and @ modifiers",
			`max_over_time(rate(pve_network_receive_bytes_total[5m])[1h:30s] offset 1h30m) @ end() - pve_up @ 1609746000`,
			[]string{"pve_network_receive_bytes_total", "pve_up"},
		},
		{
			"aggregation with by before and after, label lists that look like metrics",
			`sum by (node, pve_up) (pve_memory_usage_bytes) / sum(pve_memory_size_bytes) without (id, instance)`,
			[]string{"pve_memory_size_bytes", "pve_memory_usage_bytes"},
		},
		{
			"joins: on, ignoring, group_left with and without labels, bool",
			`a * on (id) group_left (node, name) b + ignoring(x) group_right c == bool on() group_left d`,
			[]string{"a", "b", "c", "d"},
		},
		{"group_left followed directly by a metric", `a * on (id) group_left b`, []string{"a", "b"}},
		{
			"aggregators and keywords used as label names",
			`count without (group, sum, by) (x) and on (on, offset) y unless z or w`,
			[]string{"w", "x", "y", "z"},
		},
		{"group is an aggregator", `group by (node) (pve_guest_info)`, []string{"pve_guest_info"}},
		{
			"string arguments that look like names",
			`label_replace(pve_up, "node", "$1", "id", "node/(.+)") + count_values("pve_guest_info", pve_cpu_usage_limit)`,
			[]string{"pve_cpu_usage_limit", "pve_up"},
		},
		{
			"topk with a number, timestamp(), quantile",
			`topk by (job, instance, id) (1, timestamp(pve_guest_info{template!="1"})) + quantile(0.9, x)`,
			[]string{"pve_guest_info", "x"},
		},
		{"numbers: exponent, hex, Inf, NaN, leading dot", `a > 1e-3 and b < 0x1F and c != Inf and d != -nan and e > .5`, []string{"a", "b", "c", "d", "e"}},
		{"keywords are case-insensitive", `SUM BY (x) (a) AND b`, []string{"a", "b"}},
		{"escaped quotes and other quote kinds", `a{x="say \"b{c}\"", y='it\'s', z=` + "`raw \\`" + `}`, []string{"a"}},
		{"comments", "a # b{c=\"d\"} + e\n+ f", []string{"a", "f"}},
		{"__name__ equality", `{__name__="pve_up", id="node/pve1"}`, []string{"pve_up"}},
		{"Prometheus 3 quoted name", `{"pve.up", id="x"} + rate({"a.b_total"}[5m])`, []string{"a.b_total", "pve.up"}},
		{"duplicates are listed once, sorted", `b + a + b{x="1"} + a`, []string{"a", "b"}},
		{"scalar-only expression", `vector(1) + time() * 2`, nil},
		{"metric named like a function when not called", `rate + abs`, []string{"abs", "rate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ExprMetricNames(tt.expr)
			if err != nil {
				t.Fatalf("ExprMetricNames(%q): %v", tt.expr, err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("ExprMetricNames(%q) = %q, want %q", tt.expr, got, tt.want)
			}
		})
	}
}

func TestExprMetricNamesErrors(t *testing.T) {
	tests := []struct {
		name, expr, wantErr string
	}{
		{"unterminated string", `a{x="b}`, `offset 4: unterminated string`},
		{"newline in a quoted string", "a{x=\"b\n\"}", `offset 4: unterminated string (newline inside "-quoted string)`},
		{"dangling escape", `a{x="b\`, `offset 4: unterminated string`},
		{"unclosed brace", `a{x="b"`, `offset 1: unclosed {`},
		{"unclosed bracket", `rate(a[5m)`, `offset 6: unclosed [`},
		{"unclosed paren", `sum(rate(a[5m])`, `offset 3: unclosed (`},
		{"unexpected paren", `a)`, `offset 1: unexpected )`},
		{"unexpected brace", `a}`, `offset 1: unexpected }`},
		{"unclosed label list", `sum by (a, b`, `offset 7: unclosed label list`},
		{"junk in label list", `sum by (a + b) (c)`, `offset 10: unexpected "+" in label list`},
		{"regex on __name__", `{__name__=~"pve_.+"}`, `offset 1: __name__=~"pve_.+" names metrics that cannot be listed; select them by name`},
		{"negated __name__", `a{__name__!="b"}`, `offset 2: __name__!="b" names metrics that cannot be listed; select them by name`},
		{"selector without a name", `{job="pve"}`, `offset 0: selector without a metric name`},
		{"matcher without value", `a{x=}`, `offset 2: matcher x= without a quoted value`},
		{"label without matcher", `a{x}`, `offset 2: label x without a matcher`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ExprMetricNames(tt.expr)
			if err == nil {
				t.Fatalf("ExprMetricNames(%q) = %q, want error %q", tt.expr, got, tt.wantErr)
			}
			if err.Error() != tt.wantErr {
				t.Errorf("ExprMetricNames(%q) error = %q, want %q", tt.expr, err, tt.wantErr)
			}
		})
	}
}

// unquotedName is what a name outside quotes can look like; quoted names ({"x"}) can hold anything.
var unquotedName = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)

func FuzzExprMetricNames(f *testing.F) {
	for _, seed := range []string{
		`pve_up{id=~"node/.+"} == 0`,
		`sum without (id) (a * on (job, instance, id) group_left (node) b)`,
		`max_over_time(rate(x[5m])[1h:1m] offset -5m) @ start()`,
		`{"a.b", c="d"} + {__name__="e"}`,
		"a # comment\n+ b{x='y\\'z'}",
		`topk by (x) (1, timestamp(y)) > 1e-3`,
		`a{x="`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		names, err := ExprMetricNames(expr)
		if err != nil {
			return
		}
		if !slices.IsSorted(names) || len(slices.Compact(slices.Clone(names))) != len(names) {
			t.Fatalf("ExprMetricNames(%q) = %q: not sorted and distinct", expr, names)
		}
		for _, name := range names {
			if name == "" {
				continue // {""} is accepted here and rejected by Prometheus; it is not worth a rule of its own.
			}
			quoted := strings.ContainsAny(expr, "\"'`")
			if keywords[strings.ToLower(name)] && !quoted {
				t.Fatalf("ExprMetricNames(%q) lists keyword %q as a metric", expr, name)
			}
			// Escapes change quoted names, so only an expression without them must contain each name verbatim.
			if !strings.Contains(expr, name) && !strings.Contains(expr, `\`) {
				t.Fatalf("ExprMetricNames(%q) invented name %q", expr, name)
			}
			if !quoted && !unquotedName.MatchString(name) {
				t.Fatalf("ExprMetricNames(%q) = %q: %q is no metric name", expr, names, name)
			}
		}
	})
}
