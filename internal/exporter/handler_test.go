package exporter

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/proxbalance/proxbalance/internal/pve"
)

const testTokenValue = "0b9c5a50-3f6e-4a5e-9d3c-2f1e6c7d8e9f"

func testConfig() *Config {
	m := defaultModule()
	m.User, m.TokenName, m.TokenValue = "prometheus@pve", "monitoring", testTokenValue
	other := defaultModule()
	other.User, other.Password = "auditor@pve", "hunter2"
	return &Config{Modules: map[string]Module{DefaultModule: m, "other": other}}
}

// fakeSources is a SourceFactory that records what it was asked for and answers with fn.
type fakeSources struct {
	fn func(ctx context.Context) (*pve.Inventory, error)

	mu       sync.Mutex
	targets  []string
	modules  []Module
	deadline time.Time
}

func (f *fakeSources) factory(ctx context.Context, target string, module Module) (Source, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.targets = append(f.targets, target)
	f.modules = append(f.modules, module)
	f.deadline, _ = ctx.Deadline()
	return SourceFunc(f.fn), nil
}

// lastDeadline is the deadline of the context the factory was last called with.
func (f *fakeSources) lastDeadline() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.deadline
}

func returning(inv *pve.Inventory, err error) *fakeSources {
	return &fakeSources{fn: func(context.Context) (*pve.Inventory, error) { return inv, err }}
}

type testHandler struct {
	*Handler
	metrics *Metrics
	logs    *syncBuffer
}

func newTestHandler(t testing.TB, src *fakeSources) testHandler {
	t.Helper()
	cfg := testConfig()
	logs := &syncBuffer{}
	metrics := NewMetrics(prometheus.NewRegistry(), cfg.ModuleNames())
	h := NewHandler(HandlerOpts{
		Config:     func() *Config { return cfg },
		NewSource:  src.factory,
		Collectors: Collectors(),
		Metrics:    metrics,
		Logger:     log.NewLogfmtLogger(logs),
	})
	return testHandler{h, metrics, logs}
}

// scrape requests url from h and parses the exposition.
func scrape(t *testing.T, h http.Handler, url string, header http.Header) (int, map[string]*dto.MetricFamily, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, url, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	body := rec.Body.String()
	if rec.Code != http.StatusOK {
		return rec.Code, nil, body
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("response is not a valid exposition: %v\n%s", err, body)
	}
	return rec.Code, mfs, body
}

// series returns the value of the series of family name whose labels include want, and whether it exists.
func series(mfs map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	mf, ok := mfs[name]
	if !ok {
		return 0, false
	}
	for _, m := range mf.GetMetric() {
		labels := make(map[string]string)
		for _, lp := range m.GetLabel() {
			labels[lp.GetName()] = lp.GetValue()
		}
		match := true
		for k, v := range want {
			if labels[k] != v {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		}
	}
	return 0, false
}

func collectorSuccess(mfs map[string]*dto.MetricFamily, name string) (float64, bool) {
	return series(mfs, "pve_exporter_scrape_collector_success", map[string]string{"collector": name})
}

func TestHandlerMultiTarget(t *testing.T) {
	tests := []struct {
		name        string
		url         string
		wantTarget  string
		wantUser    string
		wantPresent []string
		wantAbsent  []string
	}{
		{"defaults", "/pve", DefaultTarget, "prometheus@pve",
			[]string{"pve_guest_info", "pve_onboot_status", "pve_subscription_info"}, nil},
		{"target and module", "/pve?target=pve1.example.com:8006&module=other", "pve1.example.com:8006", "auditor@pve",
			[]string{"pve_guest_info", "pve_onboot_status"}, nil},
		{"cluster only", "/pve?target=10.0.0.1&cluster=1&node=0", "10.0.0.1", "prometheus@pve",
			[]string{"pve_up", "pve_guest_info", "pve_storage_info", "pve_cluster_info", "pve_guest_tag_info"},
			[]string{"pve_onboot_status", "pve_subscription_info", "pve_replication_info"}},
		{"node only", "/pve?target=10.0.0.1&cluster=false&node=1", "10.0.0.1", "prometheus@pve",
			[]string{"pve_onboot_status", "pve_subscription_info", "pve_replication_info"},
			[]string{"pve_up", "pve_guest_info", "pve_cluster_info"}},
		{"empty toggles are off", "/pve?cluster=&node=1", DefaultTarget, "prometheus@pve",
			[]string{"pve_onboot_status"}, []string{"pve_guest_info"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := returning(representativeInventory(), nil)
			h := newTestHandler(t, src)
			code, mfs, body := scrape(t, h, tt.url, nil)
			if code != http.StatusOK {
				t.Fatalf("status %d: %s", code, body)
			}
			if len(src.targets) != 1 || src.targets[0] != tt.wantTarget || src.modules[0].User != tt.wantUser {
				t.Errorf("source opened for %v with users %v, want %q with %q", src.targets, src.modules, tt.wantTarget, tt.wantUser)
			}
			for _, name := range tt.wantPresent {
				if _, ok := mfs[name]; !ok {
					t.Errorf("family %s missing", name)
				}
			}
			for _, name := range tt.wantAbsent {
				if _, ok := mfs[name]; ok {
					t.Errorf("family %s present, want it skipped", name)
				}
			}
			if v, ok := collectorSuccess(mfs, inventoryCollectorName); !ok || v != 1 {
				t.Errorf("inventory success = %v (present %t), want 1", v, ok)
			}
		})
	}
}

func TestHandlerUnknownModule(t *testing.T) {
	src := returning(representativeInventory(), nil)
	h := newTestHandler(t, src)
	for i := 1; i <= 2; i++ {
		code, _, body := scrape(t, h, "/pve?target=x&module=nope", nil)
		if code != http.StatusBadRequest || !strings.Contains(body, `Unknown module "nope"`) {
			t.Errorf("status %d body %q, want 400 naming the module", code, body)
		}
		if got := testutil.ToFloat64(h.metrics.moduleUnknown); got != float64(i) {
			t.Errorf("module_unknown_total = %v, want %d", got, i)
		}
	}
	if len(src.targets) != 0 {
		t.Errorf("source opened for an unknown module: %v", src.targets)
	}
}

func TestHandlerHonoursScrapeTimeout(t *testing.T) {
	src := &fakeSources{fn: func(ctx context.Context) (*pve.Inventory, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}}
	h := newTestHandler(t, src)
	start := time.Now()
	code, mfs, body := scrape(t, h, "/pve?target=slow", http.Header{"X-Prometheus-Scrape-Timeout-Seconds": {"0.7"}})
	elapsed := time.Since(start)
	if code != http.StatusOK {
		t.Fatalf("status %d, want 200 with a valid exposition: %s", code, body)
	}
	budget := src.lastDeadline().Sub(start)
	if budget < 150*time.Millisecond || budget > 250*time.Millisecond {
		t.Errorf("source got a deadline %v after the request, want 0.7s - 0.5s offset = 200ms", budget)
	}
	if elapsed > 2*time.Second {
		t.Errorf("scrape took %v, want it to end at the deadline", elapsed)
	}
	if v, ok := collectorSuccess(mfs, inventoryCollectorName); !ok || v != 0 {
		t.Errorf("inventory success = %v (present %t), want 0", v, ok)
	}
	if !strings.Contains(h.logs.String(), "deadline exceeded") {
		t.Errorf("log does not give the reason:\n%s", h.logs.String())
	}
}

func TestHandlerStopsWaitingForASourceThatIgnoresItsContext(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	src := &fakeSources{fn: func(context.Context) (*pve.Inventory, error) {
		<-release
		return representativeInventory(), nil
	}}
	h := newTestHandler(t, src)
	start := time.Now()
	code, mfs, _ := scrape(t, h, "/pve", http.Header{"X-Prometheus-Scrape-Timeout-Seconds": {"0.6"}})
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("scrape took %v, want it to end near the 100ms deadline", elapsed)
	}
	if v, _ := collectorSuccess(mfs, inventoryCollectorName); code != http.StatusOK || v != 0 {
		t.Errorf("status %d inventory success %v, want 200 and 0", code, v)
	}
}

func TestScrapeTimeout(t *testing.T) {
	tests := []struct {
		header string
		want   time.Duration
	}{
		{"", fallbackTimeout},
		{"10", 9500 * time.Millisecond},
		{"0.25", 250 * time.Millisecond}, // shorter than the offset: kept whole
		{"abc", fallbackTimeout},
		{"-1", fallbackTimeout},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodGet, "/pve", nil)
		if tt.header != "" {
			r.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", tt.header)
		}
		if got := scrapeTimeout(r, DefaultTimeoutOffset); got != tt.want {
			t.Errorf("header %q: timeout %v, want %v", tt.header, got, tt.want)
		}
	}
}

func TestHandlerSourceErrorIsAValidExposition(t *testing.T) {
	src := returning(nil, errors.New("dial tcp 127.0.0.1:8006: connect: connection refused"))
	h := newTestHandler(t, src)
	code, mfs, body := scrape(t, h, "/pve?target=127.0.0.1", nil)
	if code != http.StatusOK {
		t.Fatalf("status %d, want 200: %s", code, body)
	}
	for _, spec := range append([]CollectorSpec{{Name: inventoryCollectorName}}, Collectors()...) {
		if v, ok := collectorSuccess(mfs, spec.Name); !ok || v != 0 {
			t.Errorf("collector %s success = %v (present %t), want 0", spec.Name, v, ok)
		}
	}
	if !strings.Contains(h.logs.String(), "connection refused") {
		t.Errorf("log does not give the reason:\n%s", h.logs.String())
	}
	if got := testutil.ToFloat64(h.metrics.requestErrors.WithLabelValues(DefaultModule)); got != 1 {
		t.Errorf("pve_request_errors_total = %v, want 1", got)
	}
}

func TestHandlerPartialInventoryExportsTheRest(t *testing.T) {
	inv := representativeInventory()
	inv.Partial = append(inv.Partial, pve.FetchError{Endpoint: "/nodes/pve2/status", Node: "pve2", Err: errors.New("595 no route to host")})
	h := newTestHandler(t, returning(inv, nil))
	code, mfs, body := scrape(t, h, "/pve", nil)
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, body)
	}
	if v, _ := collectorSuccess(mfs, "node"); v != 0 {
		t.Errorf("node collector success = %v, want 0", v)
	}
	for _, c := range []string{inventoryCollectorName, "guest", "storage", "cluster"} {
		if v, _ := collectorSuccess(mfs, c); v != 1 {
			t.Errorf("%s collector success = %v, want 1", c, v)
		}
	}
	if _, ok := series(mfs, "pve_node_load1", map[string]string{"id": "node/pve1"}); !ok {
		t.Error("pve_node_load1 of the healthy node pve1 missing")
	}
	if _, ok := series(mfs, "pve_node_load1", map[string]string{"id": "node/pve2"}); ok {
		t.Error("pve_node_load1 of pve2, whose status failed, present: want absent, not zero")
	}
	if !strings.Contains(h.logs.String(), "595 no route to host") {
		t.Errorf("log does not name the failed endpoint:\n%s", h.logs.String())
	}
}

func TestHandlerDebug(t *testing.T) {
	h := newTestHandler(t, returning(representativeInventory(), nil))
	req := httptest.NewRequest(http.MethodGet, "/pve?target=pve1&debug=true", nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	body := rec.Body.String()
	for _, want := range []string{"Module:\ndefault:\n", "token_value: <secret>", "user: prometheus@pve", "Logs of this scrape:",
		"scrape started", "Inventory:", "guests: 4 (4 with config)", "Metrics:", "pve_guest_info"} {
		if !strings.Contains(body, want) {
			t.Errorf("debug output lacks %q", want)
		}
	}
	if strings.Contains(body, testTokenValue) || strings.Contains(h.logs.String(), testTokenValue) {
		t.Error("debug output or log leaks the token value")
	}
}

// TestEndToEndGolden scrapes the representative inventory through the handler and compares the whole
// exposition (collector durations removed) with testdata/scrape.prom.
func TestEndToEndGolden(t *testing.T) {
	h := newTestHandler(t, returning(representativeInventory(), nil))
	_, mfs, _ := scrape(t, h, "/pve", nil)
	delete(mfs, "pve_exporter_scrape_collector_duration_seconds")
	var got bytes.Buffer
	names := make([]string, 0, len(mfs))
	for name := range mfs {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if _, err := expfmt.MetricFamilyToText(&got, mfs[name]); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join("testdata", "scrape.prom")
	if *update {
		if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Errorf("exposition differs from %s; run go test -update and review the diff", path)
	}
}

// compatFamilies are prometheus-pve-exporter's families and label names (METRICS.md's compatible list).
var compatFamilies = []struct {
	name   string
	typ    dto.MetricType
	labels []string
}{
	{"pve_up", dto.MetricType_GAUGE, []string{"id"}},
	{"pve_disk_size_bytes", dto.MetricType_GAUGE, []string{"id"}},
	{"pve_disk_usage_bytes", dto.MetricType_GAUGE, []string{"id"}},
	{"pve_memory_size_bytes", dto.MetricType_GAUGE, []string{"id"}},
	{"pve_memory_usage_bytes", dto.MetricType_GAUGE, []string{"id"}},
	{"pve_cpu_usage_ratio", dto.MetricType_GAUGE, []string{"id"}},
	{"pve_cpu_usage_limit", dto.MetricType_GAUGE, []string{"id"}},
	{"pve_uptime_seconds", dto.MetricType_GAUGE, []string{"id"}},
	{"pve_storage_shared", dto.MetricType_GAUGE, []string{"id"}},
	{"pve_network_transmit_bytes_total", dto.MetricType_COUNTER, []string{"id"}},
	{"pve_network_receive_bytes_total", dto.MetricType_COUNTER, []string{"id"}},
	{"pve_disk_written_bytes_total", dto.MetricType_COUNTER, []string{"id"}},
	{"pve_disk_read_bytes_total", dto.MetricType_COUNTER, []string{"id"}},
	{"pve_network_transmit_bytes", dto.MetricType_GAUGE, []string{"id"}},
	{"pve_network_receive_bytes", dto.MetricType_GAUGE, []string{"id"}},
	{"pve_disk_write_bytes", dto.MetricType_GAUGE, []string{"id"}},
	{"pve_disk_read_bytes", dto.MetricType_GAUGE, []string{"id"}},
	{"pve_ha_state", dto.MetricType_GAUGE, []string{"id", "state"}},
	{"pve_lock_state", dto.MetricType_GAUGE, []string{"id", "state"}},
	{"pve_guest_info", dto.MetricType_GAUGE, []string{"id", "node", "name", "type", "template", "tags"}},
	{"pve_storage_info", dto.MetricType_GAUGE, []string{"id", "node", "storage", "plugintype", "content"}},
	{"pve_node_info", dto.MetricType_GAUGE, []string{"id", "level", "name", "nodeid"}},
	{"pve_cluster_info", dto.MetricType_GAUGE, []string{"id", "nodes", "quorate", "version"}},
	{"pve_version_info", dto.MetricType_GAUGE, []string{"release", "repoid", "version"}},
	{"pve_onboot_status", dto.MetricType_GAUGE, []string{"id", "node", "type"}},
	{"pve_not_backed_up_total", dto.MetricType_GAUGE, []string{"id"}},
	{"pve_not_backed_up_info", dto.MetricType_GAUGE, []string{"id"}},
	{"pve_qdevice_up", dto.MetricType_GAUGE, []string{"id"}},
	{"pve_qdevice_info", dto.MetricType_GAUGE, []string{"id", "model", "algorithm", "qnetd_host", "tie_breaker", "state"}},
	{"pve_replication_info", dto.MetricType_GAUGE, []string{"id", "type", "source", "target", "guest"}},
	{"pve_replication_duration_seconds", dto.MetricType_GAUGE, []string{"id"}},
	{"pve_replication_last_sync_timestamp_seconds", dto.MetricType_GAUGE, []string{"id"}},
	{"pve_replication_next_sync_timestamp_seconds", dto.MetricType_GAUGE, []string{"id"}},
	{"pve_replication_failed_syncs", dto.MetricType_GAUGE, []string{"id"}},
	{"pve_subscription_info", dto.MetricType_GAUGE, []string{"id", "level"}},
	{"pve_subscription_status", dto.MetricType_GAUGE, []string{"id", "status"}},
	{"pve_subscription_next_due_timestamp_seconds", dto.MetricType_GAUGE, []string{"id"}},
}

// newFamilies are METRICS.md's new families and their label names.
var newFamilies = map[string][]string{
	"pve_node_load1": {"id"}, "pve_node_load5": {"id"}, "pve_node_load15": {"id"},
	"pve_node_iowait_ratio": {"id"}, "pve_node_memory_available_bytes": {"id"},
	"pve_node_swap_size_bytes": {"id"}, "pve_node_swap_usage_bytes": {"id"}, "pve_node_cpus": {"id"},
	"pve_node_pressure_ratio": {"id", "resource", "kind"}, "pve_node_allocated_vcpus": {"id"},
	"pve_node_allocated_memory_bytes": {"id"}, "pve_guest_pressure_ratio": {"id", "resource", "kind"},
	"pve_guest_memory_host_bytes": {"id"}, "pve_guest_vcpus": {"id"}, "pve_guest_tag_info": {"id", "tag"},
	"pve_guest_local_device_info": {"id", "key", "kind"}, "pve_guest_bind_mount_info": {"id", "key", "shared"},
	"pve_guest_storage_info": {"id", "storage"}, "pve_guest_local_disk_bytes": {"id"},
	"pve_guest_ha_managed": {"id"}, "pve_storage_enabled": {"id"}, "pve_storage_active": {"id"},
	"pve_cluster_quorate": {"id"}, "pve_guest_migration_running": {"id", "node"},
	"pve_guest_last_migration_timestamp_seconds":     {"id", "node", "outcome"},
	"pve_guest_last_migration_duration_seconds":      {"id", "node", "outcome"},
	"pve_exporter_scrape_collector_success":          {"collector"},
	"pve_exporter_scrape_collector_duration_seconds": {"collector"},
}

func labelNames(m *dto.Metric) []string {
	var names []string
	for _, lp := range m.GetLabel() {
		names = append(names, lp.GetName())
	}
	slices.Sort(names)
	return names
}

func TestCompatibilityWithMetricsContract(t *testing.T) {
	h := newTestHandler(t, returning(representativeInventory(), nil))
	_, mfs, _ := scrape(t, h, "/pve", nil)
	check := func(name string, typ *dto.MetricType, labels []string) {
		mf, ok := mfs[name]
		if !ok {
			t.Errorf("family %s missing", name)
			return
		}
		if typ != nil && mf.GetType() != *typ {
			t.Errorf("%s has type %v, want %v", name, mf.GetType(), *typ)
		}
		want := slices.Sorted(slices.Values(labels))
		for _, m := range mf.GetMetric() {
			if got := labelNames(m); !slices.Equal(got, want) {
				t.Errorf("%s series has labels %v, want %v", name, got, want)
				return
			}
		}
	}
	for _, f := range compatFamilies {
		check(f.name, &f.typ, f.labels)
	}
	for name, labels := range newFamilies {
		check(name, nil, labels)
	}

	idFormats := map[string]*regexp.Regexp{
		"qemu/100":           regexp.MustCompile(`^qemu/[0-9]+$`),
		"lxc/101":            regexp.MustCompile(`^lxc/[0-9]+$`),
		"node/pve1":          regexp.MustCompile(`^node/[^/]+$`),
		"storage/pve1/local": regexp.MustCompile(`^storage/[^/]+/[^/]+$`),
		"cluster/pvec":       regexp.MustCompile(`^cluster/[^/]+$`),
	}
	for id := range idFormats {
		if _, ok := series(mfs, "pve_up", map[string]string{"id": id}); !ok {
			t.Errorf("pve_up{id=%q} missing", id)
		}
	}
	// pve_ha_state covers nodes too, one-hot over the HA manager's node states (prometheus-pve-exporter's
	// HighAvailabilityStateMetric.NODE_STATES), from /cluster/resources' hastate of type node.
	for id, current := range map[string]string{"node/pve1": "online", "node/pve2": "maintenance", "node/pve3": "unknown"} {
		for _, state := range []string{"online", "maintenance", "unknown", "fence", "gone"} {
			v, ok := series(mfs, "pve_ha_state", map[string]string{"id": id, "state": state})
			if !ok {
				t.Errorf("pve_ha_state{id=%q,state=%q} missing", id, state)
				continue
			}
			if want := boolValue(state == current); v != want {
				t.Errorf("pve_ha_state{id=%q,state=%q} = %v, want %v", id, state, v, want)
			}
		}
	}
	// Every id label of every family, not only pve_up's, has one of the contract's formats; replication series
	// carry PVE's job id ("100-0") as prometheus-pve-exporter labels them.
	replicationJob := regexp.MustCompile(`^[0-9]+-[0-9]+$`)
	for name, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() != "id" {
					continue
				}
				matched := strings.HasPrefix(name, "pve_replication_") && replicationJob.MatchString(l.GetValue())
				for _, format := range idFormats {
					matched = matched || format.MatchString(l.GetValue())
				}
				if !matched {
					t.Errorf("%s{id=%q}: none of the contract's id formats", name, l.GetValue())
				}
			}
		}
	}
}

func TestHandlerLintsClean(t *testing.T) {
	inv := representativeInventory()
	h := newTestHandler(t, returning(inv, nil))
	reg := h.registry(scrapeRequest{cluster: true, node: true}, inv, nil, time.Millisecond, log.NewNopLogger())
	assertLintClean(t)(testutil.GatherAndLint(reg))
}

func TestMetricsObserveRequest(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg, []string{DefaultModule})
	m.ObserveRequest(http.MethodGet, "/cluster/resources", 200, 40*time.Millisecond, nil)
	m.ObserveRequest(http.MethodGet, "/nodes/{node}/status", 500, 10*time.Millisecond, errors.New("500"))
	m.ObserveRequest(http.MethodGet, "/nodes/{node}/status", 0, time.Second, context.DeadlineExceeded)
	want := `
# HELP pve_exporter_api_request_errors_total Failed requests to the PVE API by endpoint template and HTTP status (0: no response).
# TYPE pve_exporter_api_request_errors_total counter
pve_exporter_api_request_errors_total{code="0",endpoint="/nodes/{node}/status"} 1
pve_exporter_api_request_errors_total{code="500",endpoint="/nodes/{node}/status"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "pve_exporter_api_request_errors_total"); err != nil {
		t.Error(err)
	}
	if n, _ := testutil.GatherAndCount(reg, "pve_exporter_api_request_duration_seconds"); n != 2 {
		t.Errorf("duration series = %d, want 2 (one per endpoint)", n)
	}
}

// TestMetricsDocCoversExposition keeps docs/metrics.md and the exposition in step: every family of a full
// scrape is documented, and every family documented as a /pve family is emitted.
func TestMetricsDocCoversExposition(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	h := newTestHandler(t, returning(representativeInventory(), nil))
	_, mfs, _ := scrape(t, h, "/pve", nil)
	for name := range mfs {
		if !bytes.Contains(doc, []byte("| `"+name+"` |")) {
			t.Errorf("family %s is not documented in docs/metrics.md", name)
		}
	}
	scrapeSections, _, _ := strings.Cut(string(doc), "## The exporter's own metrics")
	row := regexp.MustCompile("(?m)^\\| `(pve_[a-z0-9_]+)` \\|")
	for _, m := range row.FindAllStringSubmatch(scrapeSections, -1) {
		if _, ok := mfs[m[1]]; !ok {
			t.Errorf("docs/metrics.md documents %s, which a scrape does not emit", m[1])
		}
	}
}

func TestHandlerSurvivesBadInventories(t *testing.T) {
	tests := []struct {
		name        string
		inv         *pve.Inventory
		wantFamily  string
		wantFailing string // collector whose success is 0
	}{
		{"duplicate guest", inventory(withNodes(node("pve1")), withGuests(guest(100), guest(100), guest(101))), "pve_guest_info", ""},
		{"invalid UTF-8 in a name", inventory(withNodes(node("pve1")), withGuests(guest(100, named("bad\xff")), guest(101))), "pve_guest_info", ""},
		{"config with nil pieces", inventory(withNodes(node("pve1")), withGuests(guest(100, func(g *pve.Guest) { g.Config = &pve.GuestConfig{} }))), "pve_guest_vcpus", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newTestHandler(t, returning(tt.inv, nil))
			code, mfs, body := scrape(t, h, "/pve", nil)
			if code != http.StatusOK {
				t.Fatalf("status %d: %s", code, body)
			}
			if _, ok := series(mfs, tt.wantFamily, map[string]string{"id": "qemu/100"}); !ok && tt.name != "invalid UTF-8 in a name" {
				t.Errorf("%s{id=qemu/100} missing", tt.wantFamily)
			}
			if _, ok := series(mfs, "pve_up", map[string]string{"id": "node/pve1"}); !ok {
				t.Error("pve_up of the node missing: one bad guest cost other series")
			}
		})
	}
}

func TestCollectorPanicCostsOnlyThatCollector(t *testing.T) {
	panicking := CollectorSpec{Name: "broken", Scope: ScopeCluster, New: func() Collector { return panicCollector{} }}
	cfg := testConfig()
	logs := &syncBuffer{}
	h := NewHandler(HandlerOpts{
		Config:     func() *Config { return cfg },
		NewSource:  returning(representativeInventory(), nil).factory,
		Collectors: append(Collectors(), panicking),
		Metrics:    NewMetrics(prometheus.NewRegistry(), nil),
		Logger:     log.NewLogfmtLogger(logs),
	})
	code, mfs, _ := scrape(t, h, "/pve", nil)
	if v, ok := collectorSuccess(mfs, "broken"); code != http.StatusOK || !ok || v != 0 {
		t.Errorf("status %d, broken collector success %v (present %t), want 200 and 0", code, v, ok)
	}
	if v, _ := collectorSuccess(mfs, "guest"); v != 1 {
		t.Errorf("guest collector success = %v, want 1", v)
	}
	if !strings.Contains(logs.String(), "collector panicked: runtime error: index out of range") {
		t.Errorf("panic not logged:\n%s", logs.String())
	}
}

type panicCollector struct{}

func (panicCollector) Update(inv *pve.Inventory, _ *SeriesWriter) error {
	var empty []int
	_ = empty[len(inv.Guests)] // an out-of-range bug
	return nil
}

// TestHelpTextsMatchUpstream holds /pve's HELP and TYPE lines of every compatible family byte for byte to
// prometheus-pve-exporter's (testdata/upstream-help.txt, taken from a pinned upstream release), so that a
// changed help text or type cannot slip through: dashboards and metadata-aware tools see the same family.
func TestHelpTextsMatchUpstream(t *testing.T) {
	fixture, err := os.ReadFile(filepath.Join("testdata", "upstream-help.txt"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{} // family -> its HELP and TYPE lines
	for line := range strings.Lines(string(fixture)) {
		line = strings.TrimSuffix(line, "\n")
		for _, prefix := range []string{"# HELP ", "# TYPE "} {
			if rest, ok := strings.CutPrefix(line, prefix); ok {
				name, _, _ := strings.Cut(rest, " ")
				want[name] = append(want[name], line)
			}
		}
	}
	for _, f := range compatFamilies {
		if len(want[f.name]) != 2 {
			t.Errorf("testdata/upstream-help.txt has %d HELP/TYPE lines for compatible family %s, want 2", len(want[f.name]), f.name)
		}
	}

	h := newTestHandler(t, returning(representativeInventory(), nil))
	code, _, body := scrape(t, h, "/pve", nil)
	if code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	got := map[string][]string{}
	for line := range strings.Lines(body) {
		line = strings.TrimSuffix(line, "\n")
		if strings.HasPrefix(line, "# HELP ") || strings.HasPrefix(line, "# TYPE ") {
			name, _, _ := strings.Cut(line[len("# HELP "):], " ")
			got[name] = append(got[name], line)
		}
	}
	for name, lines := range want {
		if !slices.Equal(got[name], lines) {
			t.Errorf("%s:\n got %q\nwant %q", name, got[name], lines)
		}
	}
}
