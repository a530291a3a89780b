package placement

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
)

// The quality suite compares our planner with two baselines written from their published rules and, on small
// scenarios, with the exhaustive optimum. All four are scored by the same independent evaluator on the
// resulting assignment: hottest node's p95 load (max of CPU and memory p95 / capacity), coefficient of
// variation of node loads, number of moves and GiB copied.
//
// Run: go test -run TestQualityTable -v ./internal/placement

// assignment maps guest ID → node name.
type assignment map[string]string

func initial(st State) assignment {
	a := assignment{}
	for _, g := range st.Guests {
		a[g.ID] = g.Node
	}
	return a
}

// evaluator computes loads of an assignment from first principles: node base load (usage − Σ its guests in
// the State) plus the demand of the guests assigned to it.
type evaluator struct {
	st       State
	pol      Policy
	baseCPU  map[string][]float64
	baseMem  map[string][]float64
	guestIdx map[string]int
	nodeIdx  map[string]int
}

func newEvaluator(st State, pol Policy) *evaluator {
	e := &evaluator{st: st, pol: pol, baseCPU: map[string][]float64{}, baseMem: map[string][]float64{},
		guestIdx: map[string]int{}, nodeIdx: map[string]int{}}
	for i, n := range st.Nodes {
		e.nodeIdx[n.Name] = i
		c, m := make([]float64, len(n.Load.CPU.Series)), make([]float64, len(n.Load.Memory.Series))
		for t := range c {
			c[t] = float64(n.Load.CPU.Series[t])
			m[t] = float64(n.Load.Memory.Series[t])
		}
		e.baseCPU[n.Name], e.baseMem[n.Name] = c, m
	}
	for i, g := range st.Guests {
		e.guestIdx[g.ID] = i
		c, m := e.baseCPU[g.Node], e.baseMem[g.Node]
		for t := range c {
			c[t] -= float64(g.Demand.CPU.Series[t])
			m[t] -= float64(g.Demand.Memory.Series[t])
		}
	}
	return e
}

// series returns a node's CPU and memory series under a.
func (e *evaluator) series(a assignment, node string) ([]float64, []float64) {
	c, m := slices.Clone(e.baseCPU[node]), slices.Clone(e.baseMem[node])
	for _, g := range e.st.Guests {
		if a[g.ID] != node {
			continue
		}
		for t := range c {
			c[t] += float64(g.Demand.CPU.Series[t])
			m[t] += float64(g.Demand.Memory.Series[t])
		}
	}
	return c, m
}

func p95(s []float64, q float64) float64 {
	s = slices.Clone(s)
	slices.Sort(s)
	return s[quantileIndex(len(s), q)]
}

type outcome struct {
	hottest, cv float64
	moves       int
	gib         float64
	violations  int
}

func (e *evaluator) outcome(a assignment) outcome {
	var o outcome
	var loads []float64
	for _, n := range e.st.Nodes {
		if !n.Online {
			continue
		}
		c, m := e.series(a, n.Name)
		l := max(p95(c, e.pol.PeakQuantile)/float64(n.CPUs), p95(m, e.pol.PeakQuantile)/float64(n.MemoryBytes))
		loads = append(loads, l)
		o.hottest = max(o.hottest, l)
	}
	o.cv = coefficientOfVariation(loads)
	groups := map[string]int{}
	for _, g := range e.st.Guests {
		for _, t := range g.Tags {
			if strings.HasPrefix(t, "exclude_") {
				groups[a[g.ID]+"/"+t]++
			}
		}
	}
	for _, c := range groups {
		if c > 1 {
			o.violations += c - 1
		}
	}
	for _, g := range e.st.Guests {
		if a[g.ID] != g.Node {
			o.moves++
			o.gib += float64(migrationBytes(g)) / GiB
		}
	}
	return o
}

func migrationBytes(g Guest) uint64 {
	var b uint64
	if g.Running {
		b += g.MemoryBytes
	}
	for _, d := range g.Disks {
		if !d.Shared {
			b += d.SizeBytes
		}
	}
	return b
}

// allowed checks every hard constraint for moving guest id to target under a (the baselines use it so that the
// comparison is about balancing, not about breaking rules).
func (e *evaluator) allowed(a assignment, id, target string) bool {
	g := e.st.Guests[e.guestIdx[id]]
	n := e.st.Nodes[e.nodeIdx[target]]
	if a[id] == target || !n.Online || n.Maintenance || g.Template || g.Lock != "" || len(g.LocalDevices) > 0 {
		return false
	}
	if (g.HAManaged && !e.pol.AllowHA) || (!g.Running && !e.pol.MoveStopped) {
		return false
	}
	for _, b := range g.BindMounts {
		if !b.Shared {
			return false
		}
	}
	for _, d := range g.Disks {
		ok := false
		for _, s := range n.Storages {
			ok = ok || (n.StoragesKnown && s.Name == d.Storage && s.Enabled && s.Active &&
				(d.Shared || s.Shared || (s.AvailKnown && s.AvailBytes >= d.SizeBytes)))
		}
		if !ok {
			return false
		}
	}
	for _, t := range g.Tags {
		switch {
		case t == "ignore":
			return false
		case strings.HasPrefix(t, "pin_") && t != "pin_"+target:
			return false
		case strings.HasPrefix(t, "exclude_"):
			for _, o := range e.st.Guests {
				if o.ID != id && a[o.ID] == target && slices.Contains(o.Tags, t) {
					return false
				}
			}
		case strings.HasPrefix(t, "affinity_"):
			return false // baselines do not move groups; keeping members in place keeps groups intact
		}
	}
	b := maps(a)
	b[id] = target
	_, m := e.series(b, target)
	return p95(m, e.pol.PeakQuantile) <= (1-e.pol.MemoryHeadroom)*float64(n.MemoryBytes)
}

func maps(a assignment) assignment {
	b := make(assignment, len(a))
	for k, v := range a {
		b[k] = v
	}
	return b
}

// proxLBStyle: one metric (CPU), instant values (the last sample); repeatedly move the guest using the most CPU
// from the most loaded node to the least loaded node while the spread exceeds 10 points (ProxLB's
// "balanciness") and the move narrows it.
func proxLBStyle(e *evaluator) assignment {
	a := initial(e.st)
	last := func(node string) float64 {
		c, _ := e.series(a, node)
		return c[len(c)-1] / float64(e.st.Nodes[e.nodeIdx[node]].CPUs)
	}
	for range len(e.st.Guests) {
		var online []string
		for _, n := range e.st.Nodes {
			if n.Online && !n.Maintenance {
				online = append(online, n.Name)
			}
		}
		slices.SortStableFunc(online, func(x, y string) int { return cmpF(last(y), last(x)) })
		hi, lo := online[0], online[len(online)-1]
		spread := last(hi) - last(lo)
		if spread <= 0.10 {
			break
		}
		var gs []Guest
		for _, g := range e.st.Guests {
			if a[g.ID] == hi {
				gs = append(gs, g)
			}
		}
		slices.SortStableFunc(gs, func(x, y Guest) int {
			return cmpF(float64(y.Demand.CPU.Series[len(y.Demand.CPU.Series)-1]), float64(x.Demand.CPU.Series[len(x.Demand.CPU.Series)-1]))
		})
		moved := false
		for _, g := range gs {
			if !e.allowed(a, g.ID, lo) {
				continue
			}
			a[g.ID] = lo
			if math.Abs(last(hi)-last(lo)) < spread {
				moved = true
				break
			}
			a[g.ID] = hi
		}
		if !moved {
			break
		}
	}
	return a
}

// proxBalanceStyle: for every guest on a node whose 24 h-average CPU is above the threshold, the best single
// move (the target with the lowest CPU after adding it, which must end below the source) — judged against the
// source's load as it was, never decremented for guests already moved away.
func proxBalanceStyle(e *evaluator) assignment {
	a := initial(e.st)
	avg := func(node string, asg assignment) float64 {
		c, _ := e.series(asg, node)
		var s float64
		for _, v := range c[max(0, len(c)-24):] {
			s += v
		}
		return s / float64(min(24, len(c))) / float64(e.st.Nodes[e.nodeIdx[node]].CPUs)
	}
	orig := initial(e.st)
	srcLoad := map[string]float64{}
	for _, n := range e.st.Nodes {
		srcLoad[n.Name] = avg(n.Name, orig) // computed once: the source is never decremented
	}
	for _, g := range e.st.Guests {
		src := orig[g.ID]
		if srcLoad[src] <= e.pol.Thresholds.CPU {
			continue
		}
		best, bestLoad := "", math.Inf(1)
		for _, n := range e.st.Nodes {
			if n.Name == src || !e.allowed(a, g.ID, n.Name) {
				continue
			}
			b := maps(a)
			b[g.ID] = n.Name
			if l := avg(n.Name, b); l < bestLoad && l < srcLoad[src] {
				best, bestLoad = n.Name, l
			}
		}
		if best != "" {
			a[g.ID] = best
		}
	}
	return a
}

// optimum searches every assignment reachable with at most k moves that keeps every constraint and returns
// the one with the lowest hottest-node load (ties: fewer GiB, then fewer moves).
func optimum(e *evaluator, k int) assignment {
	start := initial(e.st)
	best, bestO := start, e.outcome(start)
	var ids []string
	for _, g := range e.st.Guests {
		ids = append(ids, g.ID)
	}
	var rec func(a assignment, from, left int)
	rec = func(a assignment, from, left int) {
		o := e.outcome(a)
		if o.hottest < bestO.hottest-1e-9 || (math.Abs(o.hottest-bestO.hottest) <= 1e-9 && o.gib < bestO.gib) {
			best, bestO = maps(a), o
		}
		if left == 0 {
			return
		}
		for i := from; i < len(ids); i++ {
			for _, n := range e.st.Nodes {
				if !e.allowed(a, ids[i], n.Name) {
					continue
				}
				prev := a[ids[i]]
				a[ids[i]] = n.Name
				rec(a, i+1, left-1)
				a[ids[i]] = prev
			}
		}
	}
	rec(maps(start), 0, k)
	return best
}

func cmpF(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

type qualityScenario struct {
	name   string
	spec   genSpec
	policy func(*Policy)
	small  bool // brute-force optimum feasible
}

func qualitySuite() []qualityScenario {
	none := func(*Policy) {}
	return []qualityScenario{
		{"hot-node", genSpec{seed: 1, nodes: 4, guests: 22, hot: 0.6, uniformNodes: true, peakAmp: 0.2, cpuBusy: 0.4}, none, false},
		{"diurnal-collision", genSpec{seed: 2, nodes: 3, guests: 18, hot: 0.5, uniformNodes: true, peakAmp: 1.2, cpuBusy: 0.2}, none, false},
		{"many-small", genSpec{seed: 3, nodes: 5, guests: 70, hot: 0.4, uniformNodes: true, smallGuests: true, cpuBusy: 0.4}, none, false},
		{"anti-affinity-broken", genSpec{seed: 4, nodes: 4, guests: 20, hot: 0.5, uniformNodes: true, antiAffinity: 2, peakAmp: 0.3, cpuBusy: 0.4}, none, false},
		{"storage-limited", genSpec{seed: 5, nodes: 4, guests: 22, hot: 0.6, uniformNodes: true, storageLimited: true, cpuBusy: 0.4}, none, false},
		{"ha-guests", genSpec{seed: 6, nodes: 4, guests: 22, hot: 0.6, uniformNodes: true, constraints: true, cpuBusy: 0.4}, func(p *Policy) { p.AllowHA = false }, false},
		{"memory-bound", genSpec{seed: 7, nodes: 4, guests: 28, hot: 0.6, uniformNodes: true, memoryBound: true, cpuBusy: 0.1}, none, false},
		{"two-node-oscillation", genSpec{seed: 8, nodes: 2, guests: 12, hot: 0.15, uniformNodes: true, cpuBusy: 0.5, peakAmp: 0.3}, none, false},
		{"large-20-node", genSpec{seed: 9, nodes: 20, guests: 220, hot: 0.1, constraints: true, peakAmp: 0.5}, none, false},
		{"heterogeneous", genSpec{seed: 10, nodes: 6, guests: 45, hot: 0.4, peakAmp: 0.5, constraints: true}, none, false},
		{"slack-balanced", genSpec{seed: 11, nodes: 4, guests: 24, hot: 0, uniformNodes: true, cpuBusy: 0.15}, none, false},
		{"small-hot", genSpec{seed: 12, nodes: 3, guests: 8, hot: 0.8, nodeCPUs: 8, nodeMemory: 32 * GiB, maxGuestVCPUs: 4, cpuBusy: 0.75}, none, true},
		{"small-peaks", genSpec{seed: 13, nodes: 4, guests: 8, hot: 0.7, nodeCPUs: 8, nodeMemory: 32 * GiB, maxGuestVCPUs: 4, peakAmp: 1, cpuBusy: 0.5}, none, true},
		{"small-constrained", genSpec{seed: 14, nodes: 3, guests: 8, hot: 0.7, nodeCPUs: 8, nodeMemory: 32 * GiB, maxGuestVCPUs: 4, constraints: true, cpuBusy: 0.7}, none, true},
		{"small-memory", genSpec{seed: 15, nodes: 4, guests: 8, hot: 0.7, nodeCPUs: 16, nodeMemory: 16 * GiB, memoryBound: true, cpuBusy: 0.1}, none, true},
		{"small-slack", genSpec{seed: 16, nodes: 3, guests: 6, hot: 0.6, nodeCPUs: 8, nodeMemory: 32 * GiB, maxGuestVCPUs: 4, cpuBusy: 0.35}, none, true},
	}
}

func TestQualityTable(t *testing.T) {
	var rows []string
	oursBetter := map[string]int{}
	withinOptimum, small := 0, 0
	for _, sc := range qualitySuite() {
		pol := DefaultPolicy()
		pol.MaxMoves = 0
		sc.policy(&pol)
		st := generate(sc.spec)
		e := newEvaluator(st, pol)
		// A full balancing cycle: repair anti-affinity, then rebalance what is left.
		plan := mustPlan(t, st, pol, repair)
		after, err := Apply(st, plan)
		if err != nil {
			t.Fatal(err)
		}
		p2 := mustPlan(t, after, pol, rebalance)
		if v := violations(after, pol, p2); len(v) > 0 {
			t.Errorf("%s: our rebalance violates constraints: %v", sc.name, v)
		}
		plan.Moves = append(plan.Moves, p2.Moves...)
		if v := violations(st, pol, Plan{Action: ActionRepairAntiAffinity, Moves: plan.Moves[:len(plan.Moves)-len(p2.Moves)]}); len(v) > 0 {
			t.Errorf("%s: our plan violates constraints: %v", sc.name, v)
		}
		ours := initial(st)
		for _, mv := range plan.Moves {
			ours[mv.Guest] = mv.Target
		}
		results := []struct {
			name string
			a    assignment
		}{{"ours", ours}, {"proxlb", proxLBStyle(e)}, {"proxbalance", proxBalanceStyle(e)}}
		if sc.small {
			small++
			results = append(results, struct {
				name string
				a    assignment
			}{"optimum", optimum(e, 4)})
		}
		before := e.outcome(initial(st))
		rows = append(rows, fmt.Sprintf("%-22s %-12s hottest %.3f  cv %.3f                          violations %d", sc.name, "before", before.hottest, before.cv, before.violations))
		o := e.outcome(ours)
		for _, r := range results {
			ro := e.outcome(r.a)
			rows = append(rows, fmt.Sprintf("%-22s %-12s hottest %.3f  cv %.3f  moves %3d  GiB %7.1f  violations %d", "", r.name, ro.hottest, ro.cv, ro.moves, ro.gib, ro.violations))
			switch r.name {
			case "ours":
				if ro.violations > 0 {
					t.Errorf("%s: ours leaves %d anti-affinity violations", sc.name, ro.violations)
				}
				if o.hottest > before.hottest+1e-9 {
					t.Errorf("%s: ours makes the hottest node hotter: %.3f → %.3f", sc.name, before.hottest, o.hottest)
				}
			case "optimum":
				if o.hottest <= ro.hottest*1.05+1e-9 {
					withinOptimum++
				} else {
					t.Errorf("%s: ours %.3f is not within 5%% of the optimum %.3f", sc.name, o.hottest, ro.hottest)
				}
			default:
				if dominates(ro, o) {
					t.Errorf("%s: %s dominates ours: hottest %.3f vs %.3f, GiB %.1f vs %.1f", sc.name, r.name, ro.hottest, o.hottest, ro.gib, o.gib)
				}
				if strictlyBetter(o, ro) {
					oursBetter[r.name]++
				}
			}
		}
	}
	t.Log("quality table (hottest = max node p95 load ratio; lower is better)\n" + strings.Join(rows, "\n"))
	t.Logf("ours within 5%% of the optimum on %d/%d small scenarios", withinOptimum, small)
	n := len(qualitySuite())
	for _, b := range []string{"proxlb", "proxbalance"} {
		t.Logf("ours strictly better than %s on %d/%d scenarios", b, oursBetter[b], n)
		if oursBetter[b]*2 <= n {
			t.Errorf("ours strictly better than %s on only %d/%d scenarios", b, oursBetter[b], n)
		}
	}
}

// strictlyBetter ranks by what balancing is for: fewer anti-affinity violations left, then a hottest node
// cooler by more than 1 % of load, or an equal one (within 1 %) reached with fewer GiB copied.
func strictlyBetter(x, y outcome) bool {
	if x.violations != y.violations {
		return x.violations < y.violations
	}
	const tol = 0.01
	if x.hottest < y.hottest-tol {
		return true
	}
	return math.Abs(x.hottest-y.hottest) <= tol && x.gib < y.gib-1e-6
}

// dominates reports whether x leaves no more violations than y, is at least as good on hottest load and GiB
// moved, and strictly better on one.
func dominates(x, y outcome) bool {
	if x.violations > y.violations {
		return false
	}
	const eps = 1e-9
	le := x.hottest <= y.hottest+eps && x.gib <= y.gib+eps
	lt := x.hottest < y.hottest-eps || x.gib < y.gib-eps
	return le && lt
}
