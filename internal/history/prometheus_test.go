package history

import (
	"context"
	"fmt"
	"maps"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/proxbalance/proxbalance/internal/promtest"
)

// The fixture: two days of exporter metrics for three nodes and four guests, scraped every minute at :30 (so no
// sample sits on a 5-minute boundary, where Prometheus 2 and 3 disagree about range selectors), and recording
// rule output evaluated every minute at :10, both written with promtool's backfill. Every instance label is a
// scenario, so one Prometheus serves all of them and the cluster selector is tested on the way:
//
//	raw    exporter metrics only: the recording rules never ran, every core signal falls back.
//	rules  exporter metrics and recorded series for both days: no fallback.
//	mixed  exporter metrics for both days, recorded series for the last day only (rules deployed a day ago).
const (
	scrapeOffset = 30 * time.Second
	ruleOffset   = 10 * time.Second
	history      = 48 * time.Hour
	lookback     = 5 * time.Minute
)

const gib = 1 << 30

// shape is a value over time (seconds before the end of the data).
type shape func(before time.Duration) float64

func constant(v float64) shape { return func(time.Duration) float64 { return v } }

// daySwitch is a on the first day and b on the second.
func daySwitch(a, b float64) shape {
	return func(before time.Duration) float64 {
		if before > 24*time.Hour {
			return a
		}
		return b
	}
}

// alive says whether an entity is scraped at a time before the end of the data.
type alive func(before time.Duration) bool

func always(time.Duration) bool { return true }

// gap is absent in [from, to) before the end, e.g. gap(30h, 28h).
func gap(from, to time.Duration) alive {
	return func(before time.Duration) bool { return before > from || before <= to }
}

// since is present only for the last d.
func since(d time.Duration) alive { return func(before time.Duration) bool { return before < d } }

type fixtureNode struct {
	name                  string
	cpus                  float64
	memSize               float64
	cpuRatio, mem, iowait shape
	pressureCPUSome       float64 // 0: no PSI (PVE 8)
}

type fixtureGuest struct {
	id, node          string
	limit             float64
	cpuRatio, mem     shape
	alive             alive
	netRx, netTx      float64 // bytes/s; 0: no counters
	diskRead, diskWri float64
}

type fixture struct {
	end    time.Time // last minute of data; samples until end-30s
	nodes  []fixtureNode
	guests []fixtureGuest
}

func newFixture(end time.Time) fixture {
	return fixture{
		end: end,
		nodes: []fixtureNode{
			{name: "pve1", cpus: 16, memSize: 64 * gib, cpuRatio: daySwitch(0.25, 0.5), mem: constant(16 * gib), iowait: constant(0.02), pressureCPUSome: 0.1},
			{name: "pve2", cpus: 8, memSize: 32 * gib, cpuRatio: constant(0.1), mem: daySwitch(8*gib, 12*gib), iowait: constant(0.05)},
			{name: "pve3", cpus: 8, memSize: 32 * gib, cpuRatio: constant(0.3), mem: constant(4 * gib), iowait: daySwitch(0.01, 0.2)},
		},
		guests: []fixtureGuest{
			{id: "qemu/100", node: "pve1", limit: 4, cpuRatio: constant(0.5), mem: constant(2 * gib), alive: always, netRx: 1000, netTx: 500, diskRead: 2000, diskWri: 4000},
			{id: "qemu/101", node: "pve2", limit: 2, cpuRatio: daySwitch(0.25, 0.75), mem: constant(1 * gib), alive: always},
			{id: "qemu/102", node: "pve3", limit: 4, cpuRatio: constant(0.1), mem: constant(gib / 2), alive: gap(30*time.Hour, 28*time.Hour)},
			{id: "lxc/200", node: "pve1", limit: 1, cpuRatio: constant(0.2), mem: constant(gib / 4), alive: since(12 * time.Hour)},
		},
	}
}

// scrapes are the exporter's sample times, as offsets before end.
func (f fixture) scrapes() []time.Duration {
	var out []time.Duration
	for b := history - scrapeOffset; b > 0; b -= time.Minute {
		out = append(out, b)
	}
	return out
}

// evaluations are the rule evaluation times before end, for rules deployed ruleAge before end.
func (f fixture) evaluations(ruleAge time.Duration) []time.Duration {
	var out []time.Duration
	for b := ruleAge - ruleOffset; b > 0; b -= time.Minute {
		out = append(out, b)
	}
	return out
}

// om accumulates OpenMetrics text one family at a time.
type om struct{ b strings.Builder }

func (o *om) family(name, typ string) { fmt.Fprintf(&o.b, "# TYPE %s %s\n", name, typ) }

func (o *om) sample(f fixture, name, labels string, before time.Duration, v float64) {
	ts := f.end.Add(-before)
	fmt.Fprintf(&o.b, "%s{%s} %g %d.%03d\n", name, labels, v, ts.Unix(), ts.Nanosecond()/1e6)
}

// scenario is one instance label and how long its recording rules have run (0: never).
type scenario struct {
	instance string
	ruleAge  time.Duration
}

var scenarios = []scenario{{"raw", 0}, {"rules", history}, {"mixed", 24 * time.Hour}}

func labels(instance, id string, extra ...string) string {
	return strings.Join(append([]string{`id="` + id + `"`, `instance="` + instance + `"`, `job="pve"`}, extra...), ",")
}

// openMetrics renders every scenario's exporter metrics and recorded series.
func (f fixture) openMetrics() string {
	var o om
	gauge := func(name string, each func(sc scenario)) {
		o.family(name, "gauge")
		for _, sc := range scenarios {
			each(sc)
		}
	}
	scrapes := f.scrapes()
	rawGauge := func(name string, nodeVal func(fixtureNode, time.Duration) float64, guestVal func(fixtureGuest, time.Duration) float64) {
		gauge(name, func(sc scenario) {
			for _, n := range f.nodes {
				if nodeVal == nil {
					break
				}
				for _, b := range scrapes {
					o.sample(f, name, labels(sc.instance, "node/"+n.name), b, nodeVal(n, b))
				}
			}
			for _, g := range f.guests {
				if guestVal == nil {
					break
				}
				for _, b := range scrapes {
					if g.alive(b) {
						o.sample(f, name, labels(sc.instance, g.id), b, guestVal(g, b))
					}
				}
			}
		})
	}
	rawGauge("pve_cpu_usage_ratio", func(n fixtureNode, b time.Duration) float64 { return n.cpuRatio(b) },
		func(g fixtureGuest, b time.Duration) float64 { return g.cpuRatio(b) })
	rawGauge("pve_cpu_usage_limit", func(n fixtureNode, _ time.Duration) float64 { return n.cpus },
		func(g fixtureGuest, _ time.Duration) float64 { return g.limit })
	rawGauge("pve_memory_usage_bytes", func(n fixtureNode, b time.Duration) float64 { return n.mem(b) },
		func(g fixtureGuest, b time.Duration) float64 { return g.mem(b) })
	rawGauge("pve_memory_size_bytes", func(n fixtureNode, _ time.Duration) float64 { return n.memSize }, nil)
	rawGauge("pve_node_iowait_ratio", func(n fixtureNode, b time.Duration) float64 { return n.iowait(b) }, nil)
	gauge("pve_node_pressure_ratio", func(sc scenario) {
		for _, n := range f.nodes {
			if n.pressureCPUSome == 0 {
				continue
			}
			for _, b := range scrapes {
				o.sample(f, "pve_node_pressure_ratio", labels(sc.instance, "node/"+n.name, `kind="some"`, `resource="cpu"`), b, n.pressureCPUSome)
			}
		}
	})
	counter := func(family string, rate func(fixtureGuest) float64) {
		o.family(family, "counter")
		for _, sc := range scenarios {
			for _, g := range f.guests {
				if rate(g) == 0 {
					continue
				}
				for _, b := range scrapes {
					o.sample(f, family+"_total", labels(sc.instance, g.id), b, 1e9+rate(g)*(history-b).Seconds())
				}
			}
		}
	}
	counter("pve_network_receive_bytes", func(g fixtureGuest) float64 { return g.netRx })
	counter("pve_network_transmit_bytes", func(g fixtureGuest) float64 { return g.netTx })
	counter("pve_disk_read_bytes", func(g fixtureGuest) float64 { return g.diskRead })
	counter("pve_disk_written_bytes", func(g fixtureGuest) float64 { return g.diskWri })

	// Recorded series, as the rules would have written them: the 5-minute average of the exporter's samples,
	// absent while that window is empty.
	recorded := func(name string, nodeVal func(fixtureNode) shape, guestVal func(fixtureGuest) shape) {
		gauge(name, func(sc scenario) {
			for _, b := range f.evaluations(sc.ruleAge) {
				for _, n := range f.nodes {
					if nodeVal == nil {
						break
					}
					if v, ok := f.avg(nodeVal(n), always, b); ok {
						o.sample(f, name, labels(sc.instance, "node/"+n.name, `node="`+n.name+`"`), b, v)
					}
				}
				for _, g := range f.guests {
					if guestVal == nil {
						break
					}
					if v, ok := f.avg(guestVal(g), g.alive, b); ok {
						o.sample(f, name, labels(sc.instance, g.id, `node="`+g.node+`"`), b, v)
					}
				}
			}
		})
	}
	recorded("node:pve_cpu_usage_ratio:avg5m", func(n fixtureNode) shape { return n.cpuRatio }, nil)
	recorded("node:pve_memory_usage_ratio:avg5m", func(n fixtureNode) shape {
		return func(b time.Duration) float64 { return n.mem(b) / n.memSize }
	}, nil)
	recorded("node:pve_node_iowait_ratio:avg5m", func(n fixtureNode) shape { return n.iowait }, nil)
	recorded("guest:pve_cpu_usage_cores:avg5m", nil, func(g fixtureGuest) shape {
		return func(b time.Duration) float64 { return g.cpuRatio(b) * g.limit }
	})
	recorded("guest:pve_memory_usage_bytes:avg5m", nil, func(g fixtureGuest) shape { return g.mem })
	o.b.WriteString("# EOF\n")
	return o.b.String()
}

// avg is the mean of the samples of s scraped in (at-5m, at] (at as an offset before end): what
// avg_over_time(...[5m]) returns at that time.
func (f fixture) avg(s shape, alive alive, at time.Duration) (float64, bool) {
	var sum float64
	n := 0
	// Scrapes sit at 30s + k·1m before end; start at the first one at or after at.
	first := scrapeOffset + (at - scrapeOffset + time.Minute - 1).Truncate(time.Minute)
	if at <= scrapeOffset {
		first = scrapeOffset
	}
	for b := first; b < at+lookback && b < history; b += time.Minute {
		if alive(b) {
			sum += s(b)
			n++
		}
	}
	if n == 0 {
		return 0, false
	}
	return sum / float64(n), true
}

// expectRaw is what the raw path gives at a grid point: the 5-minute average at the point itself.
func (f fixture) expectRaw(s shape, alive alive, at time.Duration) (float64, bool) {
	return f.avg(s, alive, at)
}

// expectRule is what the rule path gives at a grid point: the latest recorded sample within the 5-minute lookback
// of an instant selector.
func (f fixture) expectRule(s shape, alive alive, ruleAge, at time.Duration) (float64, bool) {
	evals := f.evaluations(ruleAge)
	for i := len(evals) - 1; i >= 0; i-- { // newest first
		r := evals[i]
		if r < at || r > at+lookback {
			continue
		}
		if v, ok := f.avg(s, alive, r); ok {
			return v, true
		}
	}
	return 0, false
}

// countingAPI counts range queries and can fail them.
type countingAPI struct {
	QueryAPI
	mu      sync.Mutex
	queries []string
}

func (c *countingAPI) QueryRange(ctx context.Context, q string, r promv1.Range, opts ...promv1.Option) (model.Value, promv1.Warnings, promv1.Infos, error) {
	c.mu.Lock()
	c.queries = append(c.queries, q)
	c.mu.Unlock()
	return c.QueryAPI.QueryRange(ctx, q, r, opts...)
}

// startFixturePrometheus backfills f and starts Prometheus with the project's recording rules loaded (they
// evaluate only on new data, so they add nothing here; loading them proves the file and the queries agree on
// names).
func startFixturePrometheus(t *testing.T, f fixture) *promtest.Process {
	t.Helper()
	rules, err := filepath.Abs("../../rules/recording.yml")
	if err != nil {
		t.Fatal(err)
	}
	data := promtest.Backfill(t, f.openMetrics())
	return promtest.StartPrometheus(t, promtest.PrometheusOptions{
		DataDir: data,
		Config:  fmt.Sprintf("global: {evaluation_interval: 1m}\nrule_files: [%q]\n", rules),
	})
}

func TestFetchFromPrometheus(t *testing.T) {
	// The data ends an hour before the last full hour, away from the head block that Prometheus writes now.
	end := time.Now().UTC().Truncate(time.Hour).Add(-time.Hour)
	f := newFixture(end)
	prom := startFixturePrometheus(t, f)
	api := promtest.API(t, prom)
	ctx := context.Background()

	const count = 576 // 48h at 5m
	tests := []struct {
		sc              scenario
		wantQueries     int
		wantFallbackEnd time.Time // zero: no fallback
		// literal coverages, derived by hand in the comments of the fixture's shapes
		wantGapCoverage float64
		wantOverall     float64
	}{
		// qemu/102 is not scraped for 2h: the raw 5m average misses the 24 points from 30h-5m to 28h before end.
		// lxc/200 exists for 12h: 144 points. Overall: (13×576 + 2×552 + 2×144) / (17×576).
		{scenario{"raw", 0}, 9, end, 552.0 / count, (13*576 + 2*552 + 2*144) / (17.0 * 576)},
		// The recorded series of qemu/102 reaches one point further into the gap through the 5m lookback.
		{scenario{"rules", history}, 8, time.Time{}, 553.0 / count, (13*576 + 2*553 + 2*144) / (17.0 * 576)},
		// The gap is in the first day, which comes from the raw metrics.
		{scenario{"mixed", 24 * time.Hour}, 9, end.Add(-24 * time.Hour), 552.0 / count, (13*576 + 2*552 + 2*144) / (17.0 * 576)},
	}
	for _, tt := range tests {
		t.Run(tt.sc.instance, func(t *testing.T) {
			counter := &countingAPI{QueryAPI: api}
			c, err := New(counter, Config{
				Selector: map[string]string{"job": "pve", "instance": tt.sc.instance},
				Windows:  []time.Duration{time.Hour, 24 * time.Hour, history},
			}, log.NewNopLogger())
			if err != nil {
				t.Fatal(err)
			}
			// Any time within the step after end gives the same grid.
			snap, err := c.Fetch(ctx, end.Add(4*time.Minute+59*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			if len(counter.queries) != tt.wantQueries || len(counter.queries) > 10 || len(snap.Queries) != len(counter.queries) {
				t.Fatalf("made %d queries (snapshot records %d), want %d (≤ 10):\n%s", len(counter.queries),
					len(snap.Queries), tt.wantQueries, strings.Join(counter.queries, "\n"))
			}
			g := snap.Grid
			if g.Step != 5*time.Minute || g.Count != count || !g.End().Equal(end) || !g.Start.Equal(end.Add(-history+5*time.Minute)) {
				t.Fatalf("grid = %s ×%d from %s to %s; want 5m ×%d ending %s", g.Step, g.Count, g.Start, g.End(), count, end)
			}

			// Fallbacks: all five core queries at once, up to the point before the rules' first.
			if tt.wantFallbackEnd.IsZero() {
				if len(snap.Fallbacks) != 0 {
					t.Fatalf("fallbacks = %+v, want none", snap.Fallbacks)
				}
			} else {
				if len(snap.Fallbacks) != 5 {
					t.Fatalf("fallbacks = %+v, want all 5 core queries", snap.Fallbacks)
				}
				for _, fb := range snap.Fallbacks {
					if !fb.From.Equal(g.Start) || !fb.Until.Equal(tt.wantFallbackEnd) {
						t.Errorf("fallback %s = %s..%s, want %s..%s", fb.Query, fb.From, fb.Until, g.Start, tt.wantFallbackEnd)
					}
				}
			}

			if got := slices.Sorted(maps.Keys(snap.Nodes)); !slices.Equal(got, []string{"pve1", "pve2", "pve3"}) {
				t.Fatalf("nodes = %v (selector leaked another instance?)", got)
			}
			if got := slices.Sorted(maps.Keys(snap.Guests)); !slices.Equal(got, []string{"lxc/200", "qemu/100", "qemu/101", "qemu/102"}) {
				t.Fatalf("guests = %v", got)
			}

			// Every point of every core series against the reference model of its source.
			ruleStart := 0 // grid index where the rule path begins (past the end when the rules never ran)
			if !tt.wantFallbackEnd.IsZero() {
				ruleStart = int(tt.wantFallbackEnd.Sub(g.Start)/g.Step) + 1
			}
			fromRaw := func(i int) bool { return i < ruleStart }
			expect := func(s shape, alive alive, i int) (float64, bool) {
				before := end.Sub(g.Time(i))
				if fromRaw(i) {
					return f.expectRaw(s, alive, before)
				}
				return f.expectRule(s, alive, tt.sc.ruleAge, before)
			}
			checkSeries := func(what string, got Series, want func(i int) (float64, bool)) {
				t.Helper()
				if len(got.Values) != count {
					t.Fatalf("%s: %d values, want %d", what, len(got.Values), count)
				}
				bad := 0
				for i, v := range got.Values {
					w, ok := want(i)
					switch {
					case !ok && !isNaN32(v), ok && isNaN32(v), ok && math.Abs(float64(v)-w) > 1e-5*math.Max(1, math.Abs(w)):
						if bad++; bad <= 5 {
							t.Errorf("%s at %s (point %d): got %v, want %v (present %v)", what, g.Time(i), i, v, w, ok)
						}
					}
				}
			}
			for _, n := range f.nodes {
				e := snap.Nodes[n.name]
				checkSeries(n.name+" cpu", e.Get(CPU), func(i int) (float64, bool) {
					v, ok := expect(n.cpuRatio, always, i)
					return v * n.cpus, ok
				})
				checkSeries(n.name+" memory", e.Get(Memory), func(i int) (float64, bool) {
					if fromRaw(i) {
						return expect(n.mem, always, i)
					}
					v, ok := expect(func(b time.Duration) float64 { return n.mem(b) / n.memSize }, always, i)
					return v * n.memSize, ok
				})
				checkSeries(n.name+" iowait", e.Get(IOWait), func(i int) (float64, bool) { return expect(n.iowait, always, i) })
				if c := snap.NodeCoverage(n.name); c != 1 {
					t.Errorf("node %s coverage = %v, want 1", n.name, c)
				}
			}
			for _, gu := range f.guests {
				e := snap.Guests[gu.id]
				checkSeries(gu.id+" cpu", e.Get(CPU), func(i int) (float64, bool) {
					return expect(func(b time.Duration) float64 { return gu.cpuRatio(b) * gu.limit }, gu.alive, i)
				})
				checkSeries(gu.id+" memory", e.Get(Memory), func(i int) (float64, bool) { return expect(gu.mem, gu.alive, i) })
			}

			// Coverage, as literal numbers.
			coverages := []struct {
				what string
				got  float64
				want float64
			}{
				{"qemu/100", snap.GuestCoverage("qemu/100"), 1},
				{"qemu/101", snap.GuestCoverage("qemu/101"), 1},
				{"qemu/102 (2h gap)", snap.GuestCoverage("qemu/102"), tt.wantGapCoverage},
				{"lxc/200 (last 12h only)", snap.GuestCoverage("lxc/200"), 144.0 / count},
				{"overall", snap.Coverage(), tt.wantOverall},
				{"lxc/200 over the last 24h", snap.Window(24 * time.Hour).GuestCoverage("lxc/200"), 0.5},
				{"lxc/200 over the last hour", snap.Window(time.Hour).GuestCoverage("lxc/200"), 1},
			}
			for _, c := range coverages {
				if math.Abs(c.got-c.want) > 1e-9 {
					t.Errorf("coverage of %s = %.6f, want %.6f", c.what, c.got, c.want)
				}
			}

			// Optional signals: PSI on pve1 only, throughput of qemu/100 only.
			allNear := func(what string, s Series, want float64) {
				t.Helper()
				sum := s.Summarize()
				if s.Coverage() != 1 || math.Abs(sum.Mean-want) > 1e-6*want || math.Abs(sum.Max-want) > 1e-6*want {
					t.Errorf("%s: coverage %v, mean %v, max %v; want %v everywhere", what, s.Coverage(), sum.Mean, sum.Max, want)
				}
			}
			allNear("pve1 PSI cpu some", snap.Nodes["pve1"].Get(PressureCPUSome), 0.1)
			if s := snap.Nodes["pve2"].Get(PressureCPUSome); s.Values != nil {
				t.Errorf("pve2 has PSI %v; the fixture has none (PVE 8)", s.Values[:3])
			}
			q100 := snap.Guests["qemu/100"]
			allNear("qemu/100 net receive", q100.Get(NetReceive), 1000)
			allNear("qemu/100 net transmit", q100.Get(NetTransmit), 500)
			allNear("qemu/100 disk read", q100.Get(DiskRead), 2000)
			allNear("qemu/100 disk write", q100.Get(DiskWrite), 4000)
			if len(snap.Warnings) != 0 {
				t.Errorf("warnings: %q", snap.Warnings)
			}
		})
	}

	t.Run("selector without data", func(t *testing.T) {
		c, err := New(api, Config{Selector: map[string]string{"instance": "nonexistent"}, Windows: []time.Duration{history}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		snap, err := c.Fetch(ctx, end)
		if err != nil {
			t.Fatal(err)
		}
		if len(snap.Nodes)+len(snap.Guests) != 0 || snap.Coverage() != 0 {
			t.Fatalf("snapshot of a cluster that does not exist has %d nodes, %d guests", len(snap.Nodes), len(snap.Guests))
		}
		want := []string{`no node series at all (selector {instance="nonexistent"})`, `no guest series at all (selector {instance="nonexistent"})`}
		if !slices.Equal(snap.Warnings, want) {
			t.Fatalf("warnings = %q, want %q", snap.Warnings, want)
		}
	})

	t.Run("core only", func(t *testing.T) {
		counter := &countingAPI{QueryAPI: api}
		c, err := New(counter, Config{Selector: map[string]string{"instance": "rules"}, Windows: []time.Duration{history}, CoreOnly: true}, nil)
		if err != nil {
			t.Fatal(err)
		}
		snap, err := c.Fetch(ctx, end)
		if err != nil {
			t.Fatal(err)
		}
		if len(counter.queries) != 5 || snap.Nodes["pve1"].Get(PressureCPUSome).Values != nil {
			t.Fatalf("core-only fetch made %d queries, PSI %v", len(counter.queries), snap.Nodes["pve1"].Get(PressureCPUSome).Values != nil)
		}
	})

	// The step ChooseStep picks for the largest windows is accepted by a real Prometheus (it refuses more than
	// 11,000 points per series).
	t.Run("maximum resolution accepted", func(t *testing.T) {
		for _, w := range []time.Duration{time.Hour, 24 * time.Hour, 7 * 24 * time.Hour, 11000 * time.Second} {
			c, err := New(api, Config{Selector: map[string]string{"instance": "rules"}, Windows: []time.Duration{w}, Resolution: time.Second, CoreOnly: true}, nil)
			if err != nil {
				t.Fatal(err)
			}
			snap, err := c.Fetch(ctx, end)
			if err != nil {
				t.Fatalf("window %s at step %s: %v", w, c.Step(), err)
			}
			if snap.Grid.Count > PrometheusMaxPoints {
				t.Fatalf("window %s: %d points", w, snap.Grid.Count)
			}
		}
	})
}
