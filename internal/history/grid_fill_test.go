package history

import (
	"math"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/common/model"
)

// testGrid has 4 points at 1000 s, 1060 s, 1120 s, 1180 s.
var testGrid = Grid{Start: time.Unix(1000, 0), Step: time.Minute, Count: 4}

// stream builds a series with the given labels and samples as seconds → value.
func stream(labels map[string]string, samples ...[2]float64) *model.SampleStream {
	m := model.Metric{}
	for k, v := range labels {
		m[model.LabelName(k)] = model.LabelValue(v)
	}
	s := &model.SampleStream{Metric: m}
	for _, p := range samples {
		s.Values = append(s.Values, model.SamplePair{Timestamp: model.TimeFromUnixNano(int64(p[0] * 1e9)), Value: model.SampleValue(p[1])})
	}
	return s
}

func id(v string) map[string]string { return map[string]string{"id": v} }

// vals renders a literal expectation: NaN marks a missing point.
func vals(v ...float64) []float32 {
	out := make([]float32, len(v))
	for i, f := range v {
		out[i] = float32(f)
	}
	return out
}

var nan = math.NaN()

func sameValues(a, b []float32) bool {
	return slices.EqualFunc(a, b, func(x, y float32) bool { return x == y || (isNaN32(x) && isNaN32(y)) })
}

func TestFill(t *testing.T) {
	tests := []struct {
		name      string
		matrix    model.Matrix
		route     router
		until     int
		wantGuest map[string][]float32
		wantNode  map[string][]float32
		wantStats fillStats
	}{
		{
			name:      "complete series lands on the grid",
			matrix:    model.Matrix{stream(id("qemu/100"), [2]float64{1000, 1}, [2]float64{1060, 2}, [2]float64{1120, 3}, [2]float64{1180, 4})},
			route:     fixedSignal(CPU),
			until:     4,
			wantGuest: map[string][]float32{"qemu/100": vals(1, 2, 3, 4)},
		},
		{
			name: "late guest and gap leave NaN",
			matrix: model.Matrix{
				stream(id("lxc/200"), [2]float64{1120, 5}, [2]float64{1180, 6}),
				stream(id("qemu/101"), [2]float64{1000, 1}, [2]float64{1180, 4}),
			},
			route:     fixedSignal(CPU),
			until:     4,
			wantGuest: map[string][]float32{"lxc/200": vals(nan, nan, 5, 6), "qemu/101": vals(1, nan, nan, 4)},
		},
		{
			name:     "nodes by name, unknown ids ignored",
			matrix:   model.Matrix{stream(id("node/pve1"), [2]float64{1060, 0.5}), stream(id("storage/pve1/local"), [2]float64{1060, 1}), stream(nil, [2]float64{1060, 1})},
			route:    fixedSignal(IOWait),
			until:    4,
			wantNode: map[string][]float32{"pve1": vals(nan, 0.5, nan, nan)},
			wantStats: fillStats{
				Unrouted: 2,
			},
		},
		{
			name: "two series of one guest (a migration) merge, the higher value wins where they overlap",
			matrix: model.Matrix{
				stream(map[string]string{"id": "qemu/100", "node": "pve1"}, [2]float64{1000, 1}, [2]float64{1060, 3}),
				stream(map[string]string{"id": "qemu/100", "node": "pve2"}, [2]float64{1060, 2}, [2]float64{1120, 2}, [2]float64{1180, 2}),
			},
			route:     fixedSignal(CPU),
			until:     4,
			wantGuest: map[string][]float32{"qemu/100": vals(1, 3, 2, 2)},
		},
		{
			name:      "samples off the grid, outside it, NaN values",
			matrix:    model.Matrix{stream(id("qemu/100"), [2]float64{940, 9}, [2]float64{1030, 9}, [2]float64{1060, nan}, [2]float64{1120, 3}, [2]float64{1240, 9})},
			route:     fixedSignal(CPU),
			until:     4,
			wantGuest: map[string][]float32{"qemu/100": vals(nan, nan, 3, nan)},
			wantStats: fillStats{OffGrid: 3},
		},
		{
			name:      "a contiguous series running past the grid's end",
			matrix:    model.Matrix{stream(id("qemu/100"), [2]float64{1120, 3}, [2]float64{1180, 4}, [2]float64{1240, 5}, [2]float64{1300, 6})},
			route:     fixedSignal(CPU),
			until:     4,
			wantGuest: map[string][]float32{"qemu/100": vals(nan, nan, 3, 4)},
			wantStats: fillStats{OffGrid: 2},
		},
		{
			name:      "until cuts the tail",
			matrix:    model.Matrix{stream(id("qemu/100"), [2]float64{1000, 1}, [2]float64{1060, 2}, [2]float64{1120, 3})},
			route:     fixedSignal(CPU),
			until:     2,
			wantGuest: map[string][]float32{"qemu/100": vals(1, 2, nan, nan)},
		},
		{
			name: "pressure routed by resource and kind",
			matrix: model.Matrix{
				stream(map[string]string{"id": "node/pve1", "resource": "io", "kind": "full"}, [2]float64{1000, 0.25}),
				stream(map[string]string{"id": "node/pve1", "resource": "gpu", "kind": "some"}, [2]float64{1000, 0.5}),
			},
			route:     routePressure,
			until:     4,
			wantNode:  map[string][]float32{"pve1": vals(0.25, nan, nan, nan)},
			wantStats: fillStats{Unrouted: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap := newSnapshot(testGrid)
			st := snap.fill(tt.matrix, tt.route, tt.until)
			if st != tt.wantStats {
				t.Errorf("stats = %+v, want %+v", st, tt.wantStats)
			}
			check := func(kind string, got map[string]*Entity, want map[string][]float32) {
				t.Helper()
				if len(got) != len(want) {
					t.Fatalf("%s entities = %d, want %d", kind, len(got), len(want))
				}
				for key, w := range want {
					e := got[key]
					var found []Series
					for _, s := range e.Series {
						if s.Values != nil {
							found = append(found, s)
						}
					}
					if len(found) != 1 {
						t.Fatalf("%s %s has %d series, want 1", kind, key, len(found))
					}
					if !sameValues(found[0].Values, w) {
						t.Errorf("%s %s = %v, want %v", kind, key, found[0].Values, w)
					}
					if found[0].Present != countPresent(w) {
						t.Errorf("%s %s Present = %d, want %d", kind, key, found[0].Present, countPresent(w))
					}
				}
			}
			check("guest", snap.Guests, tt.wantGuest)
			check("node", snap.Nodes, tt.wantNode)
		})
	}
}

func TestFillKeepsEarlierValues(t *testing.T) {
	snap := newSnapshot(testGrid)
	snap.fill(model.Matrix{stream(id("qemu/100"), [2]float64{1120, 3}, [2]float64{1180, 4})}, fixedSignal(Memory), 4)
	// A fallback fills only the points the rule did not have.
	snap.fill(model.Matrix{stream(id("qemu/100"), [2]float64{1000, 1}, [2]float64{1060, 2})}, fixedSignal(Memory), 2)
	got := snap.Guests["qemu/100"].Get(Memory)
	if !sameValues(got.Values, vals(1, 2, 3, 4)) || got.Present != 4 || got.Coverage() != 1 {
		t.Fatalf("merged = %v (present %d)", got.Values, got.Present)
	}
}

func TestSummarize(t *testing.T) {
	tests := []struct {
		name string
		in   []float32
		want Summary
	}{
		{"missing series", nil, Summary{Mean: nan, Max: nan, P95: nan, Last: nan, LastIndex: -1}},
		{"all NaN", vals(nan, nan), Summary{Mean: nan, Max: nan, P95: nan, Last: nan, LastIndex: -1}},
		{"with gaps", vals(1, nan, 3, 2, nan), Summary{Mean: 2, Max: 3, P95: 3, Last: 2, LastIndex: 3, Present: 3, Coverage: 0.6}},
		{"p95 nearest rank of 20", vals(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20),
			Summary{Mean: 10.5, Max: 20, P95: 19, Last: 20, LastIndex: 19, Present: 20, Coverage: 1}},
	}
	same := func(a, b float64) bool { return a == b || (math.IsNaN(a) && math.IsNaN(b)) }
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Series{Values: tt.in, Present: countPresent(tt.in)}.Summarize()
			if !same(got.Mean, tt.want.Mean) || !same(got.Max, tt.want.Max) || !same(got.P95, tt.want.P95) ||
				!same(got.Last, tt.want.Last) || got.LastIndex != tt.want.LastIndex || got.Present != tt.want.Present ||
				!same(got.Coverage, tt.want.Coverage) {
				t.Fatalf("Summarize(%v) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestCoverageAndWindow(t *testing.T) {
	snap := newSnapshot(testGrid)
	snap.fill(model.Matrix{
		stream(id("qemu/100"), [2]float64{1000, 1}, [2]float64{1060, 1}, [2]float64{1120, 1}, [2]float64{1180, 1}),
		stream(id("lxc/200"), [2]float64{1120, 1}, [2]float64{1180, 1}),
	}, fixedSignal(CPU), 4)
	snap.fill(model.Matrix{stream(id("qemu/100"), [2]float64{1000, 8}, [2]float64{1060, 8}, [2]float64{1120, 8}, [2]float64{1180, 8})}, fixedSignal(Memory), 4)
	snap.fill(model.Matrix{stream(id("node/pve1"), [2]float64{1000, 1}, [2]float64{1180, 1})}, fixedSignal(CPU), 4)
	// Pressure is optional: it never counts towards coverage, and a guest seen only there (stopped) is not
	// expected to have core history.
	snap.fill(model.Matrix{
		stream(map[string]string{"id": "lxc/200", "resource": "cpu", "kind": "some"}, [2]float64{1000, 0.1}),
		stream(map[string]string{"id": "lxc/201", "resource": "cpu", "kind": "some"}, [2]float64{1000, 0.1}),
	}, routePressure, 4)

	tests := []struct {
		name string
		got  float64
		want float64
	}{
		{"complete guest", snap.GuestCoverage("qemu/100"), 1},
		{"late guest without memory", snap.GuestCoverage("lxc/200"), 2.0 / 8},
		{"unknown guest", snap.GuestCoverage("qemu/999"), 0},
		{"guest with optional signals only", snap.GuestCoverage("lxc/201"), 0},
		{"node with one of three signals, half present", snap.NodeCoverage("pve1"), 2.0 / 12},
		// 8 + 2 + 2 present of 8 + 8 + 12 expected.
		{"overall", snap.Coverage(), 12.0 / 28},
		{"series", snap.Guests["lxc/200"].Get(CPU).Coverage(), 0.5},
		{"missing series", snap.Guests["lxc/200"].Get(Memory).Coverage(), 0},
		{"empty snapshot", newSnapshot(testGrid).Coverage(), 0},
	}
	for _, tt := range tests {
		if math.Abs(tt.got-tt.want) > 1e-12 {
			t.Errorf("%s: coverage = %v, want %v", tt.name, tt.got, tt.want)
		}
	}

	last := snap.Window(2 * time.Minute)
	if last.Grid.Count != 2 || !last.Grid.Start.Equal(time.Unix(1120, 0)) {
		t.Fatalf("Window(2m) grid = %+v", last.Grid)
	}
	if c := last.GuestCoverage("lxc/200"); c != 0.5 {
		t.Errorf("late guest coverage over the last 2 points = %v, want 0.5 (CPU complete, memory missing)", c)
	}
	if c := last.NodeCoverage("pve1"); math.Abs(c-1.0/6) > 1e-12 {
		t.Errorf("node coverage over the last 2 points = %v, want 1/6", c)
	}
	if &last.Guests["qemu/100"].Series[CPU].Values[0] != &snap.Guests["qemu/100"].Series[CPU].Values[2] {
		t.Error("Window copied the values instead of sharing them")
	}
	if whole := snap.Window(time.Hour); whole.Grid != snap.Grid {
		t.Errorf("Window longer than the snapshot = %+v, want the whole grid", whole.Grid)
	}
}

func TestSelectorRender(t *testing.T) {
	tests := []struct {
		sel   selector
		extra []string
		want  string
	}{
		{nil, nil, "{}"},
		{selector{"job": "pve", "instance": `pve-a:9221`}, []string{`id=~"node/.+"`}, `{id=~"node/.+",instance="pve-a:9221",job="pve"}`},
		{selector{"cluster": `we"ird\`}, nil, `{cluster="we\"ird\\"}`},
	}
	for _, tt := range tests {
		if got := tt.sel.render(tt.extra...); got != tt.want {
			t.Errorf("render = %s, want %s", got, tt.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"defaults", Config{}, ""},
		{"negative window", Config{Windows: []time.Duration{time.Hour, -time.Hour}}, "history windows: -1h0m0s is not positive"},
		{"sub-second resolution", Config{Resolution: 500 * time.Millisecond}, "history resolution 500ms: must be a whole number of seconds"},
		{"too many points", Config{MaxPoints: 20000}, "history max points 20000: must be between 1 and 11000"},
		{"bad label", Config{Selector: map[string]string{"in-stance": "x"}}, `history selector label "in-stance": not a valid label name`},
		{"id label", Config{Selector: map[string]string{"id": "node/pve1"}}, `history selector label "id": reserved`},
		{"empty value", Config{Selector: map[string]string{"job": ""}}, `history selector label "job": empty value`},
		{"window too long for the points", Config{Windows: []time.Duration{400 * 24 * time.Hour}, MaxPoints: 100}, "history: window 9600h0m0s: no step"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || len(err.Error()) < len(tt.want) || err.Error()[:len(tt.want)] != tt.want {
				t.Fatalf("Validate() = %v, want prefix %q", err, tt.want)
			}
		})
	}
}

// BenchmarkFill converts one signal's range query result for 5,000 guests over a week at 5m (2016 points).
func BenchmarkFill(b *testing.B) {
	const guests, points = 5000, 2016
	g := Grid{Start: time.Unix(1_700_000_100, 0), Step: 5 * time.Minute, Count: points}
	m := make(model.Matrix, guests)
	for i := range m {
		s := &model.SampleStream{Metric: model.Metric{"id": model.LabelValue("qemu/" + strconv.Itoa(100+i)), "node": "pve1"}}
		s.Values = make([]model.SamplePair, points)
		for j := range s.Values {
			s.Values[j] = model.SamplePair{Timestamp: model.TimeFromUnix(g.Start.Unix() + int64(j)*300), Value: model.SampleValue(i + j)}
		}
		m[i] = s
	}
	route := fixedSignal(CPU)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		snap := newSnapshot(g)
		if st := snap.fill(m, route, points); st != (fillStats{}) || len(snap.Guests) != guests {
			b.Fatalf("stats %+v, %d guests", st, len(snap.Guests))
		}
	}
}

// FuzzFill feeds the matrix-to-grid conversion arbitrary series from Prometheus: any ids, timestamps (on, off and
// outside the grid, negative, huge) and values (NaN, ±Inf). It must not panic, and every series it builds must
// have one value per grid point and a Present count that matches its values.
func FuzzFill(f *testing.F) {
	f.Add("qemu/100", int64(1000_000), int64(1060_000), int64(1120_000), 1.0, 2.0, 3.0, 4)
	f.Add("node/pve1", int64(999_999), int64(-1), int64(1<<62), math.NaN(), math.Inf(1), -1.0, 1)
	f.Add("lxc/", int64(1180_000), int64(1180_000), int64(1240_000), 0.0, 1e300, -1e300, 0)
	f.Fuzz(func(t *testing.T, id string, t1, t2, t3 int64, v1, v2, v3 float64, until int) {
		mk := func(labels model.Metric, ts []int64, vs []float64) *model.SampleStream {
			s := &model.SampleStream{Metric: labels}
			for i := range ts {
				s.Values = append(s.Values, model.SamplePair{Timestamp: model.Time(ts[i]), Value: model.SampleValue(vs[i])})
			}
			return s
		}
		m := model.Matrix{
			mk(model.Metric{"id": model.LabelValue(id)}, []int64{t1, t2, t3}, []float64{v1, v2, v3}),
			mk(model.Metric{"id": model.LabelValue(id), "node": "x"}, []int64{t3, t1}, []float64{v3, v1}),
		}
		snap := newSnapshot(testGrid)
		st := snap.fill(m, fixedSignal(CPU), until)
		if st.OffGrid > 5 || st.Unrouted > 2 {
			t.Fatalf("stats %+v exceed the input", st)
		}
		for _, es := range []map[string]*Entity{snap.Nodes, snap.Guests} {
			for key, e := range es {
				s := e.Get(CPU)
				if len(s.Values) != testGrid.Count || s.Present != countPresent(s.Values) {
					t.Fatalf("%s: %d values, Present %d for %v", key, len(s.Values), s.Present, s.Values)
				}
				for i, v := range s.Values {
					if !isNaN32(v) && i >= until {
						t.Fatalf("%s: value at %d, past until %d", key, i, until)
					}
				}
			}
		}
	})
}
