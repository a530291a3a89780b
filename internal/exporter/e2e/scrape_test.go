package e2e

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/proxbalance/proxbalance/internal/promtest"
	"github.com/proxbalance/proxbalance/internal/pve"
	"github.com/proxbalance/proxbalance/internal/pvesim"
	"github.com/proxbalance/proxbalance/internal/pvesim/pvesimtest"
	"github.com/proxbalance/proxbalance/rules"
)

var update = flag.Bool("update", false, "rewrite testdata/*.prom golden files from the current output")

// volatile matches the values that depend on the machine rather than the simulated cluster: how long each
// collector took.
var volatile = regexp.MustCompile(`(?m)^(pve_exporter_scrape_collector_duration_seconds\{[^}]*\}) .*$`)

func normalise(exposition string) string {
	return volatile.ReplaceAllString(exposition, "$1 <duration>")
}

// TestGoldenExposition compares a whole scrape of the default scenario with testdata/default.prom. The
// simulator runs on a manual clock, so every value but the collector durations is reproducible.
func TestGoldenExposition(t *testing.T) {
	h := startHarness(t)
	code, body := h.scrape(t, "", 0)
	if code != 200 {
		t.Fatalf("GET /pve = %d:\n%s", code, body)
	}
	got := normalise(body)
	golden := filepath.Join("testdata", "default.prom")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("exposition differs from %s (go test ./internal/exporter/e2e -run Golden -update rewrites it):\n%s", golden, lineDiff(string(want), got))
	}
}

// lineDiff lists the lines only in want (-) or only in got (+), at most 40 of them.
func lineDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	in := func(lines []string) map[string]bool {
		m := make(map[string]bool, len(lines))
		for _, l := range lines {
			m[l] = true
		}
		return m
	}
	wm, gm := in(wl), in(gl)
	var out []string
	for _, l := range wl {
		if !gm[l] {
			out = append(out, "- "+l)
		}
	}
	for _, l := range gl {
		if !wm[l] {
			out = append(out, "+ "+l)
		}
	}
	if len(out) > 40 {
		out = append(out[:40], fmt.Sprintf("… and %d more", len(out)-40))
	}
	return strings.Join(out, "\n")
}

func parseExposition(t testing.TB, body string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parsing exposition: %v", err)
	}
	return mfs
}

// TestExpositionLint runs client_golang's linter and promtool over a full scrape of the default scenario.
func TestExpositionLint(t *testing.T) {
	h := startHarness(t)
	_, body := h.scrape(t, "", 0)
	mfs := parseExposition(t, body)
	gatherer := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		out := make([]*dto.MetricFamily, 0, len(mfs))
		for _, mf := range mfs {
			out = append(out, mf)
		}
		return out, nil
	})
	problems, err := testutil.GatherAndLint(gatherer)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if knownLintExceptions[p.Metric] == p.Text {
			continue
		}
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, promtest.LookBinary(t, "promtool"), "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	_ = cmd.Run() // exits non-zero for the known exceptions; the findings are judged line by line
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if line == "" {
			continue
		}
		metric, text, _ := strings.Cut(line, " ")
		if knownLintExceptions[metric] != text {
			t.Errorf("promtool check metrics: %s", line)
		}
	}
}

// knownLintExceptions are lint findings that drop-in compatibility requires: prometheus-pve-exporter's
// pve_not_backed_up_total is a gauge, and dashboards query it by that name.
var knownLintExceptions = map[string]string{
	"pve_not_backed_up_total": `non-counter metrics should not have "_total" suffix`,
}

// TestRuleMetricsEmitted fails when a rule reads a pve_* series that a scrape of the default scenario lacks.
func TestRuleMetricsEmitted(t *testing.T) {
	names, err := rules.MetricNames(filepath.Join("..", "..", "..", "rules"))
	if err != nil {
		t.Fatal(err)
	}
	h := startHarness(t)
	_, body := h.scrape(t, "", 0)
	mfs := parseExposition(t, body)
	checked := 0
	for _, name := range names {
		if strings.HasPrefix(name, "proxbalance_") {
			continue // the balancer's own series
		}
		checked++
		if mf, ok := mfs[name]; !ok || len(mf.GetMetric()) == 0 {
			t.Errorf("rules read %s, which the exporter does not emit", name)
		}
	}
	if checked == 0 {
		t.Fatal("the rules name no pve_* metric: wrong directory?")
	}
}

// TestSteadyStateAPICalls checks the cost contract: once the caches are warm, a scrape costs at most
// 1 + (online nodes) API calls: /cluster/resources and one /nodes/{node}/status each.
func TestSteadyStateAPICalls(t *testing.T) {
	h := startHarness(t)
	nodes := len(h.sim.Sim.Scenario().Nodes)
	h.scrape(t, "", 0) // fills the caches
	before, _ := h.apiCalls()
	const scrapes = 5
	for range scrapes {
		if code, body := h.scrape(t, "", 0); code != 200 || !strings.Contains(body, `pve_exporter_scrape_collector_success{collector="inventory"} 1`) {
			t.Fatalf("scrape = %d:\n%.2000s", code, body)
		}
	}
	after, byEndpoint := h.apiCalls()
	perScrape := float64(after-before) / scrapes
	if limit := float64(1 + nodes); perScrape > limit {
		t.Errorf("%.1f API calls per steady-state scrape, want at most %.0f; calls so far by endpoint: %v", perScrape, limit, byEndpoint)
	}
	t.Logf("%.1f API calls per steady-state scrape of %d nodes", perScrape, nodes)
}

// TestConcurrentScrapesShareARound: with a cache age, scrapes arriving together (an HA Prometheus pair and the
// balancer) cost one round of API calls.
func TestConcurrentScrapesShareARound(t *testing.T) {
	h := startHarness(t)
	nodes := len(h.sim.Sim.Scenario().Nodes)
	h.scrape(t, "", 0)
	before, _ := h.apiCalls()
	done := make(chan int, 3)
	for range 3 {
		go func() {
			code, _ := h.scrape(t, "", 0)
			done <- code
		}()
	}
	for range 3 {
		if code := <-done; code != 200 {
			t.Errorf("scrape = %d", code)
		}
	}
	after, _ := h.apiCalls()
	// Three scrapes arriving together either share a round in flight or start at most one round each after
	// another finished; without sharing they would cost 3 × (1 + nodes).
	if got := after - before; got > uint64(2*(1+nodes)) {
		t.Errorf("3 concurrent scrapes made %d API calls, want them to share rounds (≤ %d)", got, 2*(1+nodes))
	}
}

// TestCacheMaxAgeSavesCalls: a scrape within the cache age of the last round reuses its inventory without a
// single API call.
func TestCacheMaxAgeSavesCalls(t *testing.T) {
	h := startHarness(t, withSnapshotter(pve.SnapshotterConfig{MaxAge: time.Minute}))
	_, first := h.scrape(t, "", 0)
	before, _ := h.apiCalls()
	_, second := h.scrape(t, "", 0)
	after, _ := h.apiCalls()
	if after != before {
		t.Errorf("a scrape within the cache age made %d API calls", after-before)
	}
	if normalise(first) != normalise(second) {
		t.Errorf("the cached scrape differs:\n%s", lineDiff(normalise(first), normalise(second)))
	}
}

// TestFailures: one node offline, refusing (403), failing (5xx), or slower than the scrape timeout never fails the scrape: the answer
// is 200, the rest of the cluster is exported, and pve_up and the collector success gauges say what failed.
func TestFailures(t *testing.T) {
	tests := []struct {
		name    string
		faults  pvesim.Faults
		timeout time.Duration
		// want are lines the exposition must contain, absent lines it must not.
		want, absent []string
		logs         string
		// apiError is a pve_exporter_api_request_errors_total series /metrics must have.
		apiError string
	}{
		{
			name:   "node offline",
			faults: pvesim.Faults{OfflineNodes: []string{"pve3"}},
			want: []string{
				`pve_up{id="node/pve3"} 0`, `pve_up{id="node/pve1"} 1`, `pve_up{id="qemu/100"} 1`,
				`pve_exporter_scrape_collector_success{collector="inventory"} 1`,
			},
		},
		{
			name:   "403 on one node",
			faults: pvesim.Faults{ForbiddenNodes: []string{"pve2"}},
			want: []string{
				`pve_up{id="node/pve1"} 1`, `pve_up{id="qemu/100"} 1`, `pve_node_load1{id="node/pve1"}`,
				`pve_exporter_scrape_collector_success{collector="inventory"} 1`,
				`pve_exporter_scrape_collector_success{collector="node"} 0`,
			},
			absent:   []string{`pve_node_load1{id="node/pve2"}`},
			logs:     "403",
			apiError: `{code="403",endpoint="/nodes/{node}/status"}`,
		},
		{
			name:   "5xx on one node",
			faults: pvesim.Faults{NodeErrors: map[string]int{"pve2": 500}},
			want: []string{
				`pve_up{id="node/pve2"} 1`, `pve_up{id="node/pve1"} 1`, `pve_up{id="qemu/100"} 1`,
				`pve_node_load1{id="node/pve1"}`,
				`pve_exporter_scrape_collector_success{collector="inventory"} 1`,
				`pve_exporter_scrape_collector_success{collector="node"} 0`,
			},
			absent:   []string{`pve_node_load1{id="node/pve2"}`},
			logs:     "500",
			apiError: `{code="500",endpoint="/nodes/{node}/status"}`,
		},
		{
			name:    "node slower than the scrape timeout",
			faults:  pvesim.Faults{NodeLatency: map[string]pvesim.Duration{"pve4": pvesim.Duration(30 * time.Second)}},
			timeout: 3 * time.Second,
			want: []string{
				`pve_up{id="node/pve1"} 1`, `pve_node_load1{id="node/pve1"}`,
				`pve_exporter_scrape_collector_success{collector="inventory"} 1`,
				`pve_exporter_scrape_collector_success{collector="node"} 0`,
			},
			absent:   []string{`pve_node_load1{id="node/pve4"}`},
			logs:     "/nodes/pve4/status",
			apiError: `{code="0",endpoint="/nodes/{node}/status"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := startHarness(t)
			if err := h.sim.Sim.SetFaults(tt.faults); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			code, body := h.scrape(t, "", tt.timeout)
			took := time.Since(start)
			if code != 200 {
				t.Fatalf("GET /pve = %d:\n%.2000s", code, body)
			}
			if tt.timeout > 0 && took > tt.timeout {
				t.Errorf("scrape took %s, beyond the %s scrape timeout", took, tt.timeout)
			}
			for _, w := range tt.want {
				if !strings.Contains(body, w) {
					t.Errorf("exposition lacks %s", w)
				}
			}
			for _, a := range tt.absent {
				if strings.Contains(body, a) {
					t.Errorf("exposition has %s", a)
				}
			}
			if tt.apiError != "" && !strings.Contains(h.selfExposition(t), "pve_exporter_api_request_errors_total"+tt.apiError) {
				t.Errorf("/metrics lacks pve_exporter_api_request_errors_total%s:\n%s", tt.apiError, h.selfExposition(t))
			}
			if !strings.Contains(h.logs.String(), tt.logs) {
				t.Errorf("log does not mention %q:\n%s", tt.logs, h.logs.String())
			}
			if t.Failed() {
				t.Logf("exposition:\n%.4000s", body)
			}
		})
	}
}

// TestPVE8HasNoPressure: PVE 8 reports no PSI, so the pressure families are absent rather than zero; the rest
// (pve_up, usage) is there.
func TestPVE8HasNoPressure(t *testing.T) {
	for _, tt := range []struct {
		version string
		psi     bool
	}{{"8.4.14", false}, {"", true}} {
		t.Run("version "+tt.version, func(t *testing.T) {
			h := startHarness(t, withSim(pvesimtest.WithPVEVersion(tt.version)))
			_, body := h.scrape(t, "", 0)
			mfs := parseExposition(t, body)
			if _, ok := mfs["pve_up"]; !ok {
				t.Fatalf("no pve_up in:\n%.2000s", body)
			}
			for _, name := range []string{"pve_node_pressure_ratio", "pve_guest_pressure_ratio", "pve_node_memory_available_bytes"} {
				_, has := mfs[name]
				if has != tt.psi {
					t.Errorf("%s present = %t, want %t", name, has, tt.psi)
				}
			}
		})
	}
}

// TestQDevice runs the QDevice families end to end: a scenario's QDevice, as the simulator answers
// /cluster/config/qdevice, reaches pve_qdevice_up and pve_qdevice_info; without one (the default scenario, whose
// golden exposition has neither) both are absent and the qdevice collector still succeeds.
func TestQDevice(t *testing.T) {
	tests := []struct {
		name    string
		qdevice *pvesim.QDeviceSpec
		wantUp  string // "" for no pve_qdevice_* at all
		wantTxt string // the pve_qdevice_info series
	}{
		{name: "none"},
		{name: "connected", qdevice: &pvesim.QDeviceSpec{Host: "10.0.0.9"}, wantUp: `pve_qdevice_up{id="cluster/demo"} 1`,
			wantTxt: `pve_qdevice_info{algorithm="Fifty-Fifty split",id="cluster/demo",model="Net",qnetd_host="10.0.0.9:5403",state="Connected",tie_breaker="Node with lowest node ID"} 1`},
		{name: "connect failed", qdevice: &pvesim.QDeviceSpec{Host: "qnetd.example", Algorithm: "lms", State: "Connect failed"}, wantUp: `pve_qdevice_up{id="cluster/demo"} 0`,
			wantTxt: `pve_qdevice_info{algorithm="LMS",id="cluster/demo",model="Net",qnetd_host="qnetd.example:5403",state="Connect failed",tie_breaker="Node with lowest node ID"} 1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			scn, err := pvesim.Builtin("default")
			if err != nil {
				t.Fatal(err)
			}
			scn.QDevice = tt.qdevice
			h := startHarness(t, withSim(pvesimtest.WithScenario(scn)))
			code, body := h.scrape(t, "", 0)
			if code != 200 || !strings.Contains(body, `pve_exporter_scrape_collector_success{collector="qdevice"} 1`) {
				t.Fatalf("scrape = %d, qdevice collector not successful:\n%.3000s", code, body)
			}
			if tt.wantUp == "" {
				if strings.Contains(body, "pve_qdevice_") {
					t.Errorf("pve_qdevice_* without a QDevice:\n%s", grepLines(body, "pve_qdevice_"))
				}
				return
			}
			for _, want := range []string{tt.wantUp, tt.wantTxt} {
				if !strings.Contains(body, "\n"+want+"\n") {
					t.Errorf("missing %s in:\n%s", want, grepLines(body, "pve_qdevice_"))
				}
			}
		})
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for line := range strings.Lines(s) {
		if strings.Contains(line, sub) {
			out = append(out, strings.TrimSuffix(line, "\n"))
		}
	}
	return strings.Join(out, "\n")
}

// TestExporterMetricsCountAPIRequests: the exporter's own registry shows the PVE requests by endpoint template.
func TestExporterMetricsCountAPIRequests(t *testing.T) {
	h := startHarness(t)
	h.scrape(t, "", 0)
	mfs, err := h.self.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]uint64{}
	for _, mf := range mfs {
		if mf.GetName() != "pve_exporter_api_request_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "endpoint" {
					counts[l.GetValue()] = m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	_, byEndpoint := h.apiCalls()
	if len(counts) == 0 || len(counts) != len(byEndpoint) {
		t.Fatalf("histogram endpoints %v, client endpoints %v", counts, byEndpoint)
	}
	for ep, n := range byEndpoint {
		if counts[ep] != n {
			t.Errorf("%s: histogram counts %d requests, the client made %d", ep, counts[ep], n)
		}
	}
	endpoints := slices.Sorted(func(yield func(string) bool) {
		for ep := range counts {
			if !yield(ep) {
				return
			}
		}
	})
	for _, ep := range endpoints {
		if strings.Contains(ep, "pve1") || !model.LabelValue(ep).IsValid() {
			t.Errorf("endpoint label %q is not a template", ep)
		}
	}
}
