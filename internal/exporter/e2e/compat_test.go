package e2e

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/proxbalance/proxbalance/internal/promtest"
)

// TestCommunityDashboardQueries is the drop-in compatibility test: a real Prometheus scrapes the exporter on the
// simulator through the multi-target form prometheus-pve-exporter documents (/pve?target=, relabelled), and
// every query of the community dashboards (testdata/community-dashboard-queries.txt, a copy of
// /work/shared/testdata) must return data. The same Prometheus evaluates rules/recording.yml, and the main
// recorded series must have data too: the rules and the exporter agree on names and labels.
func TestCommunityDashboardQueries(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Prometheus")
	}
	h := startHarness(t)
	recording, err := os.ReadFile(filepath.Join("..", "..", "..", "rules", "recording.yml"))
	if err != nil {
		t.Fatal(err)
	}
	exporterAddr := h.server.Listener.Addr().String()
	prom := promtest.StartPrometheus(t, promtest.PrometheusOptions{
		Config: fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [recording.yml]
scrape_configs:
  - job_name: pve
    metrics_path: /pve
    params:
      module: [default]
      cluster: ['1']
      node: ['1']
    static_configs:
      - targets: [%q]
    relabel_configs:
      - source_labels: [__address__]
        target_label: __param_target
      - source_labels: [__param_target]
        target_label: instance
      - target_label: __address__
        replacement: %q
`, h.target, exporterAddr),
		Files: map[string]string{"recording.yml": string(recording)},
	})
	api := promtest.API(t, prom)

	queries := readQueries(t, filepath.Join("testdata", "community-dashboard-queries.txt"))
	if len(queries) < 20 {
		t.Fatalf("only %d queries read", len(queries))
	}
	recorded := []string{
		"node:pve_cpu_usage_ratio:avg5m", "node:pve_memory_usage_ratio:avg5m", "node:pve_node_iowait_ratio:avg5m",
		"guest:pve_cpu_usage_cores:avg5m", "guest:pve_memory_usage_bytes:avg5m", "guest:pve_cpu_usage_node_ratio:avg5m",
		"cluster:pve_cpu_usage_ratio:cv5m", "cluster:pve_memory_usage_ratio:cv5m",
	}
	for _, q := range append(queries, recorded...) {
		q = strings.ReplaceAll(q, "$instance", h.target)
		// rate() needs two samples and the rules an evaluation after them: a few seconds at 1s intervals.
		vec, err := promtest.QueryUntil(t.Context(), t, api, q, 30*time.Second)
		if err != nil {
			t.Errorf("%s: %v", q, err)
			continue
		}
		if len(vec) == 0 {
			t.Errorf("no data: %s", q)
		}
	}
}

// readQueries returns the non-comment, non-empty lines of a queries file.
func readQueries(t testing.TB, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line != "" && !strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
