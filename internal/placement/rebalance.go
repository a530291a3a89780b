package placement

import (
	"cmp"
	"fmt"
	"slices"
)

// loadDriven moves units off overloaded nodes (all of them for rebalance, only `only` for relieve): each round
// takes the hottest overloaded node that has a clearing move and applies its best one.
func (p *planner) loadDriven(only *nodeM) {
	m := p.m
	if cov := m.clusterCoverage(); cov < m.pol.MinCoverage {
		p.note(ReasonLowCoverage, "data coverage %.2f is below the minimum %.2f: no load-driven moves", cov, m.pol.MinCoverage)
		return
	}
	if only != nil && !only.online {
		p.note(ReasonNodeOffline, "node %s is offline: nothing can migrate off it", only.name)
		return
	}
	fs := filtersFor(false)
	for round := 0; ; round++ {
		// While the cluster is imbalanced as the alert defines it, any move making clear progress is wanted.
		bar, imbalanced := m.pol.MinImprovement, false
		if only == nil && m.balance {
			if _, imbalanced = m.imbalance(); imbalanced {
				bar = m.pol.MinImprovement / 5
			}
		}
		scores := make([]float64, len(m.nodes))
		var over []*nodeM
		for i, n := range m.nodes {
			sc := m.score(m.view(n))
			scores[i] = sc.Total
			// A source is over a threshold, or far enough above the ideal that a move off it can clear the bar
			// (a move's improvement is at most the source's score).
			if n.online && (only == nil || n == only) && (thresholdPoints(sc) > 0 || sc.Total >= bar) {
				over = append(over, n)
			}
		}
		// A rebalance plan that has already cleared the bar may finish with refinement steps (refine.go).
		refining := only == nil && m.balance && len(p.moves) > 0
		if len(over) == 0 {
			if refining && p.refine(fs) {
				continue
			}
			switch {
			case only != nil && round == 0:
				p.note(ReasonNoOverload, "node %s is under all thresholds", only.name)
			case only != nil:
				p.note(ReasonRelieved, "node %s is under all thresholds", only.name)
			case !m.balance && round == 0:
				p.note(ReasonNoOverload, "no node above thresholds")
			case !m.balance:
				p.note(ReasonNoOverload, "every node is under thresholds")
			default:
				p.note(ReasonNoOverload, "every node is under thresholds and less than %.0f points above the cluster's ideal load %.0f%%",
					bar, 100*m.idealLoad())
			}
			return
		}
		slices.SortStableFunc(over, func(a, b *nodeM) int { return cmp.Compare(scores[b.idx], scores[a.idx]) })
		if !p.budgetLeft() {
			return
		}
		var best *option
		for _, src := range over {
			best = p.bestRelief(src, scores, fs, bar, only != nil)
			if best != nil {
				break
			}
		}
		if best == nil {
			if refining && p.refine(fs) {
				continue
			}
			switch {
			case only != nil:
				p.note(ReasonUnresolved, "node %s stays above thresholds: no move clears the minimum improvement of %.0f points", only.name, m.pol.MinImprovement)
			case imbalanced:
				desc, _ := m.imbalance()
				p.note(ReasonBelowMinImprovement, "%s, but no move lowers the imbalance by %.0f points", desc, bar)
			default:
				p.note(ReasonBelowMinImprovement, "no move clears the minimum improvement of %.0f points", m.pol.MinImprovement)
			}
			return
		}
		reasons := overloadReasons(m.score(m.view(best.from)))
		if only != nil {
			reasons = append([]Reason{ReasonRelieve}, reasons...)
		}
		p.apply(best, reasons, fs)
	}
}

// bestRelief evaluates every movable unit on src against every target and returns the option with the largest
// drop of the pair's summed score among those whose improvement clears Policy.MinImprovement and whose pair
// drop is at least MinImprovement/5 (so moving a tiny guest to an empty node is not progress), or nil.
//
// Relieve (resolve true) also accepts a move that resolves the source completely while its target stays under
// every threshold: an alert asked for exactly that, even when the node is only just over a threshold.
func (p *planner) bestRelief(src *nodeM, scores []float64, fs []filter, bar float64, resolve bool) *option {
	m := p.m
	srcBefore := scores[src.idx]
	// clears reports whether a target scoring tgt after the move (a lower bound is fine for pruning) can clear
	// the bar.
	clears := func(tgt float64) bool {
		return srcBefore-tgt >= bar || (resolve && tgt == 0)
	}
	hottest := m.hottestLoad()
	cands := p.movable(m.unitsOn(src))
	p.sortByContribution(src, cands)
	var best *option
	for _, u := range cands {
		p.considered[u.idx] = true
		if u.coverage < m.pol.MinCoverage {
			continue
		}
		cost := m.unitCost(u)
		costPts := costPointsPerGiB * float64(cost) / GiB
		// Branch and bound: the target's score can only grow, so the unit's best key is at least this.
		if best != nil && m.total(m.lowerWithout(src, u))-srcBefore+costPts >= best.key {
			continue
		}
		var srcAfter float64
		srcDone := false
		origin := m.nodes[m.guests[u.members[0]].origin]
		for _, t := range m.nodes {
			if t == src || !t.usable || !clears(scores[t.idx]) {
				continue // the target's score only grows when the unit lands: it cannot clear the bar
			}
			if t == origin && src != origin {
				continue // no moving back within one plan
			}
			rej, in := m.runFilters(fs, u, t, false)
			if len(rej) > 0 {
				continue
			}
			tgtLower := m.total(m.lowerWith(t, u))
			if !clears(tgtLower) {
				continue
			}
			if !srcDone {
				srcAfter = m.total(m.viewWith(src, u, -1, true))
				srcDone = true
			}
			if best != nil && srcAfter+tgtLower-srcBefore-scores[t.idx]+costPts > best.key+1e-9 {
				continue
			}
			tgtAfter := m.total(in.after())
			if !clears(tgtAfter) || (srcBefore-tgtAfter < bar && srcAfter > 0) || !m.keepsHottest(in, hottest) {
				continue
			}
			o := &option{u: u, from: src, to: t, srcBefore: srcBefore, srcAfter: srcAfter,
				tgtBefore: scores[t.idx], tgtAfter: tgtAfter, cost: cost}
			if -o.pairDelta() < m.pol.MinImprovement/5 {
				continue // progress guard: the pair as a whole must get clearly better, not just the source
			}
			o.key = o.pairDelta() + costPts
			o.spread = utilisation(in.after())
			if better(o, best) {
				best = o
			}
		}
	}
	return best
}

// costPointsPerGiB charges a load-driven move for what it copies: between two moves that relieve about equally,
// the one copying less wins (0.2 points per GiB: an 8 GiB live migration must buy 1.6 more points).
const costPointsPerGiB = 0.2

// hottestLoad is the highest Load (max of CPU and memory p95 ratios) among online nodes.
func (m *model) hottestLoad() float64 {
	var h float64
	for _, n := range m.nodes {
		if n.online {
			h = max(h, load(m.view(n)))
		}
	}
	return h
}

func load(v nodeView) float64 { return max(v.cpuPeak, v.memPeak) }

// keepsHottest reports whether the target's Load after the move stays at or below hottest, so no move makes
// the cluster's hottest node hotter (a lower score can hide a higher peak when another resource dropped).
func (m *model) keepsHottest(in *filterInput, hottest float64) bool {
	if load(in.after()) <= hottest {
		return true
	}
	return load(m.viewWith(in.target, in.u, 1, true)) <= hottest
}

// maxScore is the highest score among online nodes.
func (m *model) maxScore() float64 {
	var h float64
	for _, n := range m.nodes {
		if n.online {
			h = max(h, m.total(m.view(n)))
		}
	}
	return h
}

// sortByContribution orders units by their share of src's overloaded resources (largest first), then by
// migration cost (smallest first), then by ID.
func (p *planner) sortByContribution(src *nodeM, us []*unitM) {
	m := p.m
	sc := m.score(m.view(src))
	var w [len(scorers)]float64
	for i, ps := range sc.Plugins {
		if ps.Points > 0 {
			w[i] = 1
		}
	}
	contrib := make(map[int]float64, len(us))
	cost := make(map[int]uint64, len(us))
	for _, u := range us {
		cpu := u.cpuW.blend(m.pol.Windows) / src.cpus
		mem := u.memCur / src.memBytes
		contrib[u.idx] = (w[pluginCPU]+w[pluginCPUPeak]+w[pluginCPUBalance])*cpu +
			(w[pluginMemory]+w[pluginMemoryBalance])*mem + w[pluginIOWait]*u.ioW.blend(m.pol.Windows)
		cost[u.idx] = m.unitCost(u)
	}
	slices.SortStableFunc(us, func(a, b *unitM) int {
		if c := cmp.Compare(contrib[b.idx], contrib[a.idx]); c != 0 {
			return c
		}
		if c := cmp.Compare(cost[a.idx], cost[b.idx]); c != 0 {
			return c
		}
		return cmp.Compare(a.idx, b.idx)
	})
}

// utilisation sums a view's ratios: a tie-breaker that prefers emptier targets when scores are equal (0
// under thresholds).
func utilisation(v nodeView) float64 { return v.cpuBlend + v.cpuPeak + v.mem + v.io }

func overloadReasons(s Score) []Reason {
	codes := [len(scorers)]Reason{ReasonCPUOverThreshold, ReasonCPUPeakOverThreshold, ReasonMemoryOverThreshold,
		ReasonIOWaitOverThreshold, ReasonCPUImbalance, ReasonMemoryImbalance}
	var out []Reason
	for i, ps := range s.Plugins {
		if ps.Points > 0 {
			out = append(out, codes[i])
		}
	}
	return out
}

// clusterCoverage is the mean data coverage of online nodes.
func (m *model) clusterCoverage() float64 {
	var sum float64
	n := 0
	for _, nd := range m.nodes {
		if nd.online {
			sum += nd.coverage
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}

// thresholdPoints are a score's points from the threshold scorers (all but the balance ones).
func thresholdPoints(s Score) float64 {
	return s.Total - s.Plugins[pluginCPUBalance].Points - s.Plugins[pluginMemoryBalance].Points
}

// imbalance evaluates the PVEClusterImbalanced alert's condition on the simulated cluster: for CPU or memory,
// the coefficient of variation of the online nodes' current load ratios above Policy.Imbalance.CV while the
// busiest node's is above Policy.Imbalance.MinBusiest. desc describes the first resource that meets it.
func (m *model) imbalance() (desc string, imbalanced bool) {
	cpu, mem := m.currentLoads()
	for _, r := range []struct {
		name  string
		loads []float64
	}{{"CPU", cpu}, {"memory", mem}} {
		cv, busiest := coefficientOfVariation(r.loads), slices.Max(append(r.loads, 0))
		if cv > m.pol.Imbalance.CV && busiest > m.pol.Imbalance.MinBusiest {
			return fmt.Sprintf("%s load is imbalanced (coefficient of variation %.2f > %.2f, busiest node %.0f%%)",
				r.name, cv, m.pol.Imbalance.CV, 100*busiest), true
		}
	}
	return "", false
}

// currentLoads are the online nodes' current CPU and memory load ratios (the CurrentWindow averages: what the
// alert's 5-minute rates see).
func (m *model) currentLoads() (cpu, mem []float64) {
	for _, n := range m.nodes {
		if n.online {
			cpu = append(cpu, n.cpuW.cur/n.cpus)
			mem = append(mem, n.memCur/n.memBytes)
		}
	}
	return cpu, mem
}
