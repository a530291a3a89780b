package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/proxbalance/proxbalance/internal/promtest"
	"github.com/proxbalance/proxbalance/internal/pvesim/pvesimtest"
)

// TestPlanEndToEnd runs the whole read path: the PVE simulator's default cluster, the exporter scraping it, a
// real Prometheus scraping the exporter every second and evaluating the project's recording rules, and the plan
// command reading both the simulator (with the read-only PVEAuditor token, over TLS with the cluster's CA) and
// Prometheus. A few seconds of history are far less than the planner's 7-day horizon, so a rebalance must
// decline for lack of coverage, while an evacuation, which needs no history, must move pve1's guests and leave
// its PCI-passthrough VM to the operator.
func TestPlanEndToEnd(t *testing.T) {
	sim := pvesimtest.Start(t)
	caFile := sim.CAFile(t)

	// The exporter, on its own client of the simulator (as in production: a separate process).
	instance := startExporter(t, sim, caFile)

	rules, err := filepath.Abs("../../rules/recording.yml")
	if err != nil {
		t.Fatal(err)
	}
	prom := promtest.StartPrometheus(t, promtest.PrometheusOptions{Config: fmt.Sprintf(`global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}
rule_files: [%q]
scrape_configs:
  - job_name: pve
    metrics_path: /pve
    params: {target: [sim]}
    static_configs: [{targets: [%q]}]
`, rules, instance)})
	api := promtest.API(t, prom)
	for _, rule := range []string{"guest:pve_cpu_usage_cores:avg5m", "guest:pve_memory_usage_bytes:avg5m",
		"node:pve_cpu_usage_ratio:avg5m", "node:pve_memory_usage_ratio:avg5m", "node:pve_node_iowait_ratio:avg5m"} {
		if v, err := promtest.QueryUntil(t.Context(), t, api, "count("+rule+") >= 5", 60*time.Second); err != nil || len(v) != 1 || v[0].Value < 5 {
			t.Fatalf("recorded series %s: %v, %v", rule, v, err)
		}
	}
	time.Sleep(7 * time.Second) // a full 5s window of every recorded series

	secretFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(secretFile, []byte(sim.AuditTokenSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	plan := func(extra ...string) (string, string) {
		t.Helper()
		args := append([]string{
			"-pve.url=" + sim.BaseURL, "-pve.token-id=" + sim.AuditTokenID, "-pve.token-file=" + secretFile, "-pve.ca-file=" + caFile,
			"-prometheus.url=" + prom.URL(), "-prometheus.selector=job=pve,instance=" + instance,
			"-history.windows=5s", "-history.resolution=1s",
		}, extra...)
		var stdout, stderr bytes.Buffer
		if code := runPlan(t.Context(), args, &stdout, &stderr); code != 0 {
			t.Fatalf("plan %q: exit %d\nstdout:\n%s\nstderr:\n%s", extra, code, stdout.String(), stderr.String())
		}
		return stdout.String(), stderr.String()
	}

	t.Run("rebalance declines on short history", func(t *testing.T) {
		out, _ := plan()
		for _, want := range []string{": rebalance at ", "no moves\n", "note LowCoverage: "} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		// Normally complete; a scrape that times out on a loaded machine leaves a gap (or a fallback query).
		m := regexp.MustCompile(`step 1s, coverage ([01]\.\d\d), ([89]) queries\n`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no history line with a 1s step and 8 or 9 queries:\n%s", out)
		}
		if c, _ := strconv.ParseFloat(m[1], 64); c < 0.5 {
			t.Errorf("history coverage %v, want most of the window:\n%s", c, out)
		}
	})

	t.Run("evacuate pve1", func(t *testing.T) {
		out, _ := plan("-action=evacuate", "-node=pve1")
		for _, want := range []string{": evacuate pve1 at ", "1  qemu/", "LocalDevice"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		if !regexp.MustCompile(`\nqemu/110 +pve1 +manual +`).MatchString(out) {
			t.Errorf("the PCI-passthrough VM qemu/110 is not listed as manual:\n%s", out)
		}
		if strings.Contains(out, "  pve1  live") || strings.Contains(out, "  pve1  offline") {
			t.Errorf("a move targets the node being evacuated:\n%s", out)
		}
	})

	t.Run("explain a guest with its history", func(t *testing.T) {
		out, _ := plan("-action=evacuate", "-node=pve1", "-explain=100")
		for _, want := range []string{"qemu/100 on pve1: selected", "CANDIDATE", "    cpu          mean ", " coverage "} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})
}
