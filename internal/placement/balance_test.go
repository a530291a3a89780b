package placement

import (
	"fmt"
	"slices"
	"testing"
)

// loaded puts n guests of cores each on node; they use little memory, so CPU alone decides.
func loaded(first int, node string, n int, cores float64) []Guest {
	var out []Guest
	for i := range n {
		out = append(out, guest(first+i, on(node), useCPU(cores), useMem(256<<20)))
	}
	return out
}

// The PVEClusterImbalanced alert fires when the coefficient of variation of the nodes' current CPU load is above
// 0.30 and the busiest node is above 50 % — typically below the 60 % CPU threshold, where the threshold scorers
// give 0. A rebalance it triggers must clear the condition (or have no move left), or the alert fires forever.
func TestRebalanceClearsTheImbalanceAlert(t *testing.T) {
	tests := []struct {
		name  string
		nodes []Node
		// guests are per node: count and cores each.
		guests map[string][2]float64
		// memory, when set, makes every guest use that many bytes: the memory variant of the alert.
		memory float64
	}{
		{"memory: one node at 56 %, two nearly empty", nodesN(3), map[string][2]float64{"pve1": {6, 0.1}, "pve2": {1, 0.1}, "pve3": {1, 0.1}}, 6 * GiB},
		{"one busy node at 55 %, three idle", nodesN(4), map[string][2]float64{"pve1": {8, 1.1}, "pve2": {1, 1}, "pve3": {1, 1}, "pve4": {1, 1}}, 0},
		{"three busy, one empty", nodesN(4), map[string][2]float64{"pve1": {8, 1.1}, "pve2": {8, 1.1}, "pve3": {8, 1.1}}, 0},
		// Nine nodes at 55 % and one empty: each busy node is only 11 % above the cluster's ideal load, under
		// MinImprovement, yet the CV is 0.33: only the alert-consistent bar makes progress here.
		{"nine busy, one empty", nodesN(10), map[string][2]float64{"pve1": {8, 1.1}, "pve2": {8, 1.1}, "pve3": {8, 1.1},
			"pve4": {8, 1.1}, "pve5": {8, 1.1}, "pve6": {8, 1.1}, "pve7": {8, 1.1}, "pve8": {8, 1.1}, "pve9": {8, 1.1}}, 0},
		{"uneven sizes", []Node{node("pve1"), node("pve2"), node("pve3", cpus(32))}, map[string][2]float64{"pve1": {6, 1.5}, "pve2": {2, 1}, "pve3": {2, 1}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gs []Guest
			id := 100
			for _, n := range tt.nodes {
				if spec, ok := tt.guests[n.Name]; ok {
					for _, g := range loaded(id, n.Name, int(spec[0]), spec[1]) {
						if tt.memory > 0 {
							useMem(tt.memory)(&g)
						}
						gs = append(gs, g)
					}
					id += 100
				}
			}
			st := cluster(tt.nodes, gs)
			pol := DefaultPolicy()
			pol.MaxMoves = 0
			p := mustPlan(t, st, pol, rebalance)
			if p.Before.MaxScore > 0 && thresholdPointsOf(t, st, pol) > 0 {
				t.Fatalf("the scenario has a node over a threshold; it must test balancing below thresholds")
			}
			cv := func(m ClusterMetrics) float64 { return m.CPUCurrentCV }
			if tt.memory > 0 {
				cv = func(m ClusterMetrics) float64 { return m.MemoryCurrentCV }
			}
			if cv(p.Before) <= pol.Imbalance.CV {
				t.Fatalf("CV before = %.2f: the scenario does not trigger the alert", cv(p.Before))
			}
			if len(p.Moves) == 0 {
				t.Fatalf("no moves; notes %+v", p.Notes)
			}
			if cv(p.After) > pol.Imbalance.CV {
				t.Errorf("CV %.2f → %.2f, want ≤ %.2f; notes %+v", cv(p.Before), cv(p.After), pol.Imbalance.CV, p.Notes)
			}
			for _, v := range violations(st, pol, p) {
				t.Error(v)
			}
			after, err := Apply(st, p)
			if err != nil {
				t.Fatal(err)
			}
			if again := mustPlan(t, after, pol, rebalance); len(again.Moves) > 0 {
				t.Errorf("re-planning after applying proposes %v", movesOf(again))
			}
		})
	}
}

// thresholdPointsOf is the highest threshold-scorer total of any node (balance off).
func thresholdPointsOf(t *testing.T, st State, pol Policy) float64 {
	pol.Weights.Balance = 0
	return mustPlan(t, st, pol, rebalance).Before.MaxScore
}

// Noise and small gains do not move guests: nodes within a few percent of each other stay as they are.
func TestRebalanceLeavesNearBalancedClustersAlone(t *testing.T) {
	for _, cores := range [][3]float64{{1.0, 0.9, 0.95}, {1.2, 1.0, 1.1}, {0.3, 0.2, 0.25}} {
		st := cluster(nodesN(3), slices.Concat(loaded(100, "pve1", 8, cores[0]), loaded(200, "pve2", 8, cores[1]), loaded(300, "pve3", 8, cores[2])))
		p := mustPlan(t, st, DefaultPolicy(), rebalance)
		if len(p.Moves) > 0 {
			t.Errorf("cores per guest %v (CPU CV %.2f): moves %v", cores, p.Before.CPUCurrentCV, movesOf(p))
		}
	}
}

// A balance move is explainable: its reasons name the balance scorer, and the score breakdown shows the node's
// load, the cluster's ideal it is compared with, and the points.
func TestBalanceMoveIsExplained(t *testing.T) {
	st := cluster(nodesN(4), slices.Concat(loaded(100, "pve1", 8, 1.1), loaded(200, "pve2", 1, 1)))
	p := mustPlan(t, st, DefaultPolicy(), rebalance)
	if len(p.Moves) == 0 {
		t.Fatalf("no moves; notes %+v", p.Notes)
	}
	mv := p.Moves[0]
	if !slices.Contains(mv.Reasons, ReasonCPUImbalance) {
		t.Errorf("reasons %v, want %s", mv.Reasons, ReasonCPUImbalance)
	}
	pl := mv.SourceBefore.Plugins[pluginCPUBalance]
	ideal := max(p.Before.IdealCPU, p.Before.IdealMemory)
	if pl.Plugin != "cpu-balance" || pl.Reference != ideal || pl.Value <= pl.Reference || pl.Points <= 0 {
		t.Errorf("cpu-balance breakdown %+v, ideal load %.3f", pl, ideal)
	}
	if mb := mv.SourceBefore.Plugins[pluginMemoryBalance]; mb.Points != 0 {
		t.Errorf("memory-balance %+v on a CPU-bound node, want 0 points", mb)
	}
	want := 100 * (pl.Value - pl.Reference) / max(pl.Reference, DefaultPolicy().Thresholds.CPU/2)
	if d := pl.Points - want; d > 1e-9 || d < -1e-9 {
		t.Errorf("cpu-balance points %.3f, want %.3f", pl.Points, want)
	}
	if p.After.IdealCPU != p.Before.IdealCPU {
		t.Errorf("ideal changed with the moves: %.4f → %.4f", p.Before.IdealCPU, p.After.IdealCPU)
	}
}

// The balance scorers belong to rebalance: relieve, evacuate, repair and distribute score as before.
func TestBalanceScorersOnlyInRebalance(t *testing.T) {
	st := cluster(nodesN(3), slices.Concat(loaded(100, "pve1", 8, 1.1), loaded(200, "pve2", 8, 0.2)))
	for _, req := range []Request{relieve("pve1"), evacuate("pve1"), repair, spread} {
		p := mustPlan(t, st, DefaultPolicy(), req)
		for _, n := range p.Before.Nodes {
			if n.Score != 0 {
				t.Errorf("%s: node %s scores %.1f under every threshold", req.Action, n.Node, n.Score)
			}
		}
	}
	if p := mustPlan(t, st, DefaultPolicy(), rebalance); p.Before.MaxScore == 0 {
		t.Errorf("rebalance: no balance points on an imbalanced cluster")
	}
}

func TestExcess(t *testing.T) {
	tests := []struct{ x, ideal, threshold, want float64 }{
		{0.30, 0.40, 0.6, 0},         // below the ideal
		{0.40, 0.40, 0.6, 0},         // at the ideal
		{0.46, 0.40, 0.6, 15},        // 15 % above a fair share of 40 %
		{0.80, 0.40, 0.6, 100},       // twice the fair share
		{0.20, 0.10, 0.6, 100 / 3.0}, // idle cluster: measured against half the threshold
	}
	for _, tt := range tests {
		if got := excess(tt.x, tt.ideal, tt.threshold); fmt.Sprintf("%.6f", got) != fmt.Sprintf("%.6f", tt.want) {
			t.Errorf("excess(%v, %v, %v) = %v, want %v", tt.x, tt.ideal, tt.threshold, got, tt.want)
		}
	}
}
