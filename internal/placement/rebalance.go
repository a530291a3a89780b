package placement

import (
	"cmp"
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
		scores := make([]float64, len(m.nodes))
		var over []*nodeM
		for i, n := range m.nodes {
			scores[i] = m.total(m.view(n))
			if n.online && scores[i] > 0 && (only == nil || n == only) {
				over = append(over, n)
			}
		}
		if len(over) == 0 {
			switch {
			case only != nil && round == 0:
				p.note(ReasonNoOverload, "node %s is under all thresholds", only.name)
			case only != nil:
				p.note(ReasonRelieved, "node %s is under all thresholds", only.name)
			case round == 0:
				p.note(ReasonNoOverload, "no node above thresholds")
			default:
				p.note(ReasonNoOverload, "every node is under thresholds")
			}
			return
		}
		slices.SortStableFunc(over, func(a, b *nodeM) int { return cmp.Compare(scores[b.idx], scores[a.idx]) })
		if !p.budgetLeft() {
			return
		}
		var best *option
		for _, src := range over {
			best = p.bestRelief(src, scores, fs, only != nil)
			if best != nil {
				break
			}
		}
		if best == nil {
			if only != nil {
				p.note(ReasonUnresolved, "node %s stays above thresholds: no move clears the minimum improvement of %.0f points", only.name, m.pol.MinImprovement)
			} else {
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
func (p *planner) bestRelief(src *nodeM, scores []float64, fs []filter, resolve bool) *option {
	m := p.m
	srcBefore := scores[src.idx]
	// clears reports whether a target scoring tgt after the move (a lower bound is fine for pruning) can clear
	// the bar.
	clears := func(tgt float64) bool {
		return srcBefore-tgt >= m.pol.MinImprovement || (resolve && tgt == 0)
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
			if !clears(tgtAfter) || (srcBefore-tgtAfter < m.pol.MinImprovement && srcAfter > 0) || !m.keepsHottest(in, hottest) {
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
	w := [4]float64{}
	for i, ps := range sc.Plugins {
		if ps.Points > 0 {
			w[i] = 1
		}
	}
	contrib := make(map[int]float64, len(us))
	cost := make(map[int]uint64, len(us))
	for _, u := range us {
		cpu := u.cpuW.blend(m.pol.Windows) / src.cpus
		contrib[u.idx] = w[0]*cpu + w[1]*cpu + w[2]*u.memCur/src.memBytes + w[3]*u.ioW.blend(m.pol.Windows)
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
	codes := [...]Reason{ReasonCPUOverThreshold, ReasonCPUPeakOverThreshold, ReasonMemoryOverThreshold, ReasonIOWaitOverThreshold}
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
