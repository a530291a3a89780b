package placement

import (
	"math"
	"strings"
	"testing"
)

func TestPolicyValidate(t *testing.T) {
	if err := DefaultPolicy().Validate(); err != nil {
		t.Fatalf("default policy invalid: %v", err)
	}
	cases := []struct {
		name   string
		mutate func(*Policy)
		want   string
	}{
		{"cpu threshold above 1", func(p *Policy) { p.Thresholds.CPU = 1.2 }, "thresholds.cpu: 1.2 is outside [0.01, 0.99]"},
		{"window weights", func(p *Policy) { p.Windows.Week = 0.5 }, "windows: weights sum to 1.3, want 1"},
		{"min improvement 0", func(p *Policy) { p.MinImprovement = 0 }, "min_improvement: 0 is outside [1, 100]"},
		{"min improvement 101", func(p *Policy) { p.MinImprovement = 101 }, "min_improvement: 101 is outside [1, 100]"},
		{"negative max moves", func(p *Policy) { p.MaxMoves = -1 }, "max_moves: -1 is negative"},
		{"no bandwidth", func(p *Policy) { p.BandwidthBytesPerSecond = 0 }, "bandwidth_bytes_per_second: 0 must be positive"},
		{"NaN headroom", func(p *Policy) { p.MemoryHeadroom = math.NaN() }, "memory_headroom: NaN is outside"},
		{"overcommit too small", func(p *Policy) { p.CPUOvercommit = 0.01 }, "cpu_overcommit: 0.01 is outside"},
		{"current window", func(p *Policy) { p.CurrentWindow = 0 }, "current_window: 0s is outside (0, 24h]"},
		{"distribute spread", func(p *Policy) { p.Distribute.MaxSpread = 0 }, "distribute.max_spread: 0 must be at least 1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := DefaultPolicy()
			tc.mutate(&p)
			err := p.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestComputeRejectsInvalidInput(t *testing.T) {
	good := cluster(nodesN(2), []Guest{guest(101)})
	short := cluster(nodesN(2), []Guest{guest(101)})
	short.Guests[0].Demand.CPU.Series = short.Guests[0].Demand.CPU.Series[:10]
	orphan := cluster(nodesN(2), []Guest{guest(101)})
	orphan.Guests[0].Node = "pve9"
	dupNode := cluster([]Node{node("pve1"), node("pve1")}, nil)
	dupGuest := cluster(nodesN(2), []Guest{guest(101), guest(101)})
	badFlight := cluster(nodesN(2), []Guest{guest(101)}, inFlight("qemu/101", "pve1", "pve7"))
	zeroCPU := cluster([]Node{node("pve1", cpus(0))}, nil)
	noStep := cluster(nodesN(2), []Guest{guest(101)})
	noStep.Step = 0
	badPolicy := DefaultPolicy()
	badPolicy.PeakQuantile = 2
	cases := []struct {
		name string
		st   State
		pol  Policy
		req  Request
		want string
	}{
		{"series lengths differ", short, DefaultPolicy(), rebalance, "guest qemu/101 cpu: series has 10 samples, others have 168"},
		{"guest on unknown node", orphan, DefaultPolicy(), rebalance, `guest qemu/101: on unknown node "pve9"`},
		{"node listed twice", dupNode, DefaultPolicy(), rebalance, "node pve1: listed twice"},
		{"guest listed twice", dupGuest, DefaultPolicy(), rebalance, "guest qemu/101: listed twice"},
		{"in-flight to unknown node", badFlight, DefaultPolicy(), rebalance, `in-flight migration of qemu/101: unknown target "pve7"`},
		{"online node without CPUs", zeroCPU, DefaultPolicy(), rebalance, "node pve1: online with 0 CPUs"},
		{"series without a step", noStep, DefaultPolicy(), rebalance, "state: step 0s must be positive for series of 168 samples"},
		{"unknown action", good, DefaultPolicy(), Request{Action: "shuffle"}, `unknown action "shuffle"`},
		{"relieve without node", good, DefaultPolicy(), Request{Action: ActionRelieve}, "action relieve needs a node"},
		{"evacuate unknown node", good, DefaultPolicy(), evacuate("pve5"), `action evacuate: unknown node "pve5"`},
		{"invalid policy", good, badPolicy, rebalance, "invalid policy: peak_quantile: 2 is outside"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compute(tc.st, tc.pol, tc.req)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Compute() error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestApplyRejectsStaleMoves(t *testing.T) {
	st := cluster(nodesN(2), []Guest{guest(101)})
	_, err := Apply(st, Plan{Moves: []Move{{Guest: "qemu/101", Source: "pve2", Target: "pve1"}}})
	if err == nil || !strings.Contains(err.Error(), "guest is on pve1") {
		t.Errorf("Apply = %v, want a stale-source error", err)
	}
	if _, err := Apply(st, Plan{Moves: []Move{{Guest: "qemu/999", Source: "pve1", Target: "pve2"}}}); err == nil {
		t.Error("Apply accepted an unknown guest")
	}
}

func TestGapsAreFilledAndLowerCoverage(t *testing.T) {
	s := Series{float32(math.NaN()), 2, float32(math.NaN()), 4}
	got, share := fillGaps(s)
	if want := []float32{2, 2, 2, 4}; !equalF32(got, want) || share != 0.5 {
		t.Errorf("fillGaps = %v, %v; want %v, 0.5", got, share, want)
	}
	if s[0] == s[0] {
		t.Error("fillGaps modified its input")
	}
	if got, share := fillGaps(Series{float32(math.Inf(1))}); got != nil || share != 0 {
		t.Errorf("all-missing series = %v, %v", got, share)
	}
}

func equalF32(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestMissingDemandIsNeverMovedOnAGuess(t *testing.T) {
	st := cluster(nodesN(2), []Guest{guest(101, useCPU(6)), guest(102, useCPU(6), tags("ignore"))})
	st.Guests[0].Demand.CPU = Metric{} // the node's usage shows it, but there is no series for the guest
	p := mustPlan(t, st, DefaultPolicy(), rebalance)
	if len(p.Moves) != 0 {
		t.Fatalf("moves = %v", movesOf(p))
	}
	if d := decisionOf(p, "qemu/101"); d.Outcome != OutcomeSkipped || d.Reasons[0] != ReasonLowCoverage {
		t.Errorf("decision = %+v, want skipped for low coverage", d)
	}
}

func TestLowCoverageNodeIsNoTarget(t *testing.T) {
	st := cluster([]Node{node("pve1"), node("pve2", nodeCoverageOf(0.1)), node("pve3")}, hot4())
	p := mustPlan(t, st, DefaultPolicy(), rebalance)
	for _, m := range p.Moves {
		if m.Target == "pve2" {
			t.Errorf("moved %s onto a node without data", m.Guest)
		}
	}
	if len(p.Moves) == 0 {
		t.Errorf("no move to pve3: %+v", p.Notes)
	}
}

func TestSummaryFillsWindowsTheSeriesDoesNotSpan(t *testing.T) {
	st := cluster(nodesN(2), []Guest{guest(101)})
	for i := range st.Nodes {
		st.Nodes[i].Load.CPU.Summary = &Summary{Avg24h: 3, Avg7d: 7, P95: 9}
	}
	for i := range st.Guests {
		st.Guests[i].Demand.CPU.Summary = &Summary{Avg24h: 1, Avg7d: 1, P95: 1}
	}
	// With a week of samples the Summary is not needed; with 12 hours it fills 24 h and 7 d.
	m, err := newModel(st, DefaultPolicy(), false)
	if err != nil {
		t.Fatal(err)
	}
	if w := m.nodes[0].cpuW; approxEq(w.week, 7) {
		t.Errorf("full series: week = %v, want the series' own mean", w.week)
	}
	short := st
	short.Nodes, short.Guests = append([]Node(nil), st.Nodes...), append([]Guest(nil), st.Guests...)
	for i := range short.Nodes {
		short.Nodes[i].Load.CPU.Series = short.Nodes[i].Load.CPU.Series[:12]
		short.Nodes[i].Load.Memory.Series = short.Nodes[i].Load.Memory.Series[:12]
		short.Nodes[i].Load.IOWait.Series = short.Nodes[i].Load.IOWait.Series[:12]
	}
	for i := range short.Guests {
		short.Guests[i].Demand.CPU.Series = short.Guests[i].Demand.CPU.Series[:12]
		short.Guests[i].Demand.Memory.Series = short.Guests[i].Demand.Memory.Series[:12]
	}
	m, err = newModel(short, DefaultPolicy(), false)
	if err != nil {
		t.Fatal(err)
	}
	if w := m.nodes[0].cpuW; w.day != 3 || w.week != 7 {
		t.Errorf("short series: windows = %+v, want day 3 and week 7 from the Summary", w)
	}
}

func approxEq(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// iowait is attributed to guests by their share of the node's disk traffic and moves with them: two guests
// doing all the IO of an IO-bound node are split.
func TestIOWaitMovesWithTheGuestsDiskTraffic(t *testing.T) {
	quiet := guest(101, useCPU(1))
	busy1, busy2 := guest(102, useCPU(1)), guest(103, useCPU(1))
	quiet.Demand.DiskIO = Metric{Series: flat(1e6), Coverage: 1}
	busy1.Demand.DiskIO = Metric{Series: flat(49.5e6), Coverage: 1}
	busy2.Demand.DiskIO = Metric{Series: flat(49.5e6), Coverage: 1}
	st := cluster(nodesN(2), []Guest{quiet, busy1, busy2})
	st.Nodes[0].Load.IOWait.Series = flat(0.55) // pve1 is IO-bound
	p := mustPlan(t, st, DefaultPolicy(), rebalance)
	if got := movesOf(p); len(got) != 1 || got[0] != "qemu/102 pve1>pve2" {
		t.Fatalf("moves = %v, want one disk-heavy guest off pve1; notes %+v", got, p.Notes)
	}
	mv := p.Moves[0]
	if !strings.Contains(strings.Join(reasonStrings(mv.Reasons), ","), string(ReasonIOWaitOverThreshold)) {
		t.Errorf("reasons = %v, want IOWaitOverThreshold", mv.Reasons)
	}
	if src, tgt := mv.SourceAfter.Plugins[3].Value, mv.TargetAfter.Plugins[3].Value; src > 0.3 || tgt > 0.3 {
		t.Errorf("iowait after: pve1 %.2f, pve2 %.2f; want both under the threshold", src, tgt)
	}
}

func reasonStrings(rs []Reason) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r)
	}
	return out
}

func TestEvacuatingAnOfflineNodeAsksForRecovery(t *testing.T) {
	st := cluster([]Node{node("pve1", offline()), node("pve2")}, []Guest{guest(101)})
	p := mustPlan(t, st, DefaultPolicy(), evacuate("pve1"))
	if len(p.Moves) != 0 || !hasNote(p, ReasonNodeOffline) {
		t.Fatalf("moves %v notes %+v", movesOf(p), p.Notes)
	}
	if d := decisionOf(p, "qemu/101"); d.Outcome != OutcomeManual {
		t.Errorf("decision = %+v, want manual", d)
	}
}

func TestMaxMovesBoundsThePlan(t *testing.T) {
	var gs []Guest
	for i := range 12 {
		gs = append(gs, guest(101+i, useCPU(2.5)))
	}
	pol := DefaultPolicy()
	pol.MaxMoves = 2
	p := mustPlan(t, cluster(nodesN(4), gs), pol, rebalance)
	if len(p.Moves) != 2 || !hasNote(p, ReasonMaxMoves) {
		t.Fatalf("moves %v notes %+v", movesOf(p), p.Notes)
	}
	skipped := 0
	for _, d := range p.Decisions {
		if d.Outcome == OutcomeSkipped && d.Reasons[0] == ReasonMaxMoves {
			skipped++
		}
	}
	if skipped == 0 {
		t.Errorf("no decision says MaxMovesReached: %+v", p.Decisions)
	}
}

// Confidence falls with thinner data, a smaller margin over the bar and a bigger, riskier copy.
func TestConfidenceReflectsDataMarginAndRisk(t *testing.T) {
	conf := func(opts ...guestOpt) int {
		t.Helper()
		g := guest(101, append([]guestOpt{useCPU(6)}, opts...)...)
		p := mustPlan(t, cluster(nodesN(2), []Guest{g, guest(102, useCPU(6), tags("ignore"))}), DefaultPolicy(), rebalance)
		if len(p.Moves) != 1 {
			t.Fatalf("moves = %v", movesOf(p))
		}
		return p.Moves[0].Confidence
	}
	full := conf()
	if full < 90 {
		t.Errorf("complete data, clear gain: confidence %d, want ≥ 90", full)
	}
	if c := conf(guestCoverage(0.6)); c >= full {
		t.Errorf("coverage 0.6: confidence %d, want below %d", c, full)
	}
	if c := conf(localDisk("local-zfs", 200*GiB), ha()); c >= full {
		t.Errorf("200 GiB local disk, HA: confidence %d, want below %d", c, full)
	}
}

// PVE may already list a migrating guest on its target; the source still holds it until the task ends.
func TestInFlightHoldsBothSidesWhereverTheGuestIsListed(t *testing.T) {
	st := cluster(nodesN(3), []Guest{guest(300, on("pve2"), useCPU(7), tags("exclude_db"))},
		inFlight("qemu/300", "pve1", "pve2"))
	m, err := newModel(st, DefaultPolicy(), false)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"pve1", "pve2"} {
		n := m.nodes[m.nodeByName[name]]
		if n.guests != 1 || n.groups["exclude_db"] != 1 || n.cpuPeak < 7 {
			t.Errorf("%s: guests %d, exclude_db %d, cpu peak %.1f; want the migrating guest counted", name, n.guests, n.groups["exclude_db"], n.cpuPeak)
		}
	}
	if n := m.nodes[m.nodeByName["pve3"]]; n.guests != 0 {
		t.Errorf("pve3 counts %d guests", n.guests)
	}
}
