package history

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"

	"github.com/proxbalance/proxbalance/internal/promtest"
)

// exporterPage is what a scrape of the exporter returns for a one-node cluster with one running VM: enough for
// every recording rule the history queries read.
const exporterPage = `# TYPE pve_up gauge
pve_up{id="node/pve1"} 1
pve_up{id="qemu/100"} 1
# TYPE pve_guest_info gauge
pve_guest_info{id="qemu/100",node="pve1",name="db1",type="qemu",template="0",tags=""} 1
# TYPE pve_cpu_usage_ratio gauge
pve_cpu_usage_ratio{id="node/pve1"} 0.5
pve_cpu_usage_ratio{id="qemu/100"} 0.25
# TYPE pve_cpu_usage_limit gauge
pve_cpu_usage_limit{id="node/pve1"} 8
pve_cpu_usage_limit{id="qemu/100"} 4
# TYPE pve_memory_usage_bytes gauge
pve_memory_usage_bytes{id="node/pve1"} 4294967296
pve_memory_usage_bytes{id="qemu/100"} 1073741824
# TYPE pve_memory_size_bytes gauge
pve_memory_size_bytes{id="node/pve1"} 17179869184
pve_memory_size_bytes{id="qemu/100"} 2147483648
# TYPE pve_node_iowait_ratio gauge
pve_node_iowait_ratio{id="node/pve1"} 0.125
`

// TestFetchFromLiveRules is the contract test between rules/recording.yml and this package's queries: a real
// Prometheus scrapes an exporter page and evaluates the real recording rules every second, and a Fetch over the
// last seconds reads every core signal from the recorded series (no fallback) with the right values and labels.
func TestFetchFromLiveRules(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprint(w, exporterPage)
	}))
	defer target.Close()
	rules, err := filepath.Abs("../../rules/recording.yml")
	if err != nil {
		t.Fatal(err)
	}
	instance := strings.TrimPrefix(target.URL, "http://")
	prom := promtest.StartPrometheus(t, promtest.PrometheusOptions{Config: fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [%q]
scrape_configs:
  - job_name: pve
    static_configs: [{targets: [%q]}]
`, rules, instance)})
	api := promtest.API(t, prom)
	ctx := context.Background()
	for _, rule := range []string{"guest:pve_cpu_usage_cores:avg5m", "guest:pve_memory_usage_bytes:avg5m",
		"node:pve_cpu_usage_ratio:avg5m", "node:pve_memory_usage_ratio:avg5m", "node:pve_node_iowait_ratio:avg5m"} {
		if v, err := promtest.QueryUntil(ctx, t, api, rule, 60*time.Second); err != nil || len(v) != 1 {
			t.Fatalf("recording rule %s: %v, %v; want one series", rule, v, err)
		}
	}
	// Let the rules fill a whole window: 10 points at 1s.
	time.Sleep(12 * time.Second)

	counter := &countingAPI{QueryAPI: api}
	c, err := New(counter, Config{
		Selector:   map[string]string{"job": "pve", "instance": instance},
		Windows:    []time.Duration{10 * time.Second},
		Resolution: time.Second,
		CoreOnly:   true,
	}, log.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	// One second back, so that the latest evaluation has surely happened.
	snap, err := c.Fetch(ctx, time.Now().Add(-time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(counter.queries) != 5 || len(snap.Fallbacks) != 0 || len(snap.Warnings) != 0 {
		t.Fatalf("%d queries, fallbacks %+v, warnings %q; want 5 rule queries and nothing else\n%s",
			len(counter.queries), snap.Fallbacks, snap.Warnings, strings.Join(counter.queries, "\n"))
	}
	tests := []struct {
		what string
		s    Series
		want float64
	}{
		{"guest CPU cores (0.25 × 4 vCPUs)", snap.Guests["qemu/100"].Get(CPU), 1},
		{"guest memory bytes", snap.Guests["qemu/100"].Get(Memory), 1 << 30},
		{"node CPU cores (0.5 × 8 CPUs)", snap.Nodes["pve1"].Get(CPU), 4},
		{"node memory bytes (ratio × size)", snap.Nodes["pve1"].Get(Memory), 4 << 30},
		{"node iowait", snap.Nodes["pve1"].Get(IOWait), 0.125},
	}
	for _, tt := range tests {
		if tt.s.Coverage() != 1 {
			t.Errorf("%s: coverage %v (%v), want 1", tt.what, tt.s.Coverage(), tt.s.Values)
		}
		for i, v := range tt.s.Values {
			if !isNaN32(v) && math.Abs(float64(v)-tt.want) > 1e-6*tt.want {
				t.Errorf("%s at point %d = %v, want %v", tt.what, i, v, tt.want)
			}
		}
	}
	if snap.Coverage() != 1 {
		t.Errorf("overall coverage %v, want 1", snap.Coverage())
	}
}
