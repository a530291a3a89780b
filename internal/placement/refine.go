package placement

import (
	"fmt"
)

// Refinement: once a rebalance plan has made a move that cleared Policy.MinImprovement, the plan as a whole has
// gained clearly more than noise, and its end state is what the operator lives with. A greedy plan can stop with
// the hottest node a few points short of the bar above its fair share while a further move or a swap would bring
// it within reach of the optimum (a plan's last move may leave a node 14 points above its fair share, which no
// single move off it can improve by 15). Refinement steps accept progress of MinImprovement/5 — the bar the
// imbalance alert already uses — but only where it matters: the source is the hottest node, and after the step
// every node it touches is strictly cooler than the hottest node was. A step is one move or one swap (two guests
// exchanged between the hottest node and another one, each move valid when it runs). Load-driven rounds at the
// full bar run first, every round, so a plan never ends with a move that clears the full bar left undone: that,
// with the potential argument (the sum of node scores drops by at least MinImprovement/5 per step), keeps
// re-planning after applying a plan from proposing anything at the full bar.

// maxSwapPairs bounds the swaps one refinement step evaluates (units on the hottest node × units elsewhere);
// each costs two exact quantiles. Above it only single moves refine (a 64-node, 5,000-guest cluster has about
// 390,000 pairs: swaps are for small clusters, where a guest or two decide the hottest node's load).
const maxSwapPairs = 4096

// refine applies the best refinement step and reports whether there was one.
func (p *planner) refine(fs []filter) bool {
	m := p.m
	if !p.budgetLeft() {
		return false
	}
	var hot *nodeM
	var hottest float64
	for _, n := range m.nodes {
		if n.online && load(m.view(n)) > hottest {
			hot, hottest = n, load(m.view(n))
		}
	}
	if hot == nil {
		return false
	}
	scores := make([]float64, len(m.nodes))
	for i, n := range m.nodes {
		scores[i] = m.total(m.view(n))
	}
	bar := m.pol.MinImprovement / 5
	single := p.bestRelief(hot, scores, fs, bar, false)
	if single != nil && (load(m.viewWith(single.to, single.u, 1, true)) >= hottest ||
		load(m.viewWith(hot, single.u, -1, true)) >= hottest) {
		single = nil
	}
	var swap *swapOption
	if mx := m.pol.MaxMoves; mx <= 0 || p.moveUnits()+2 <= mx {
		swap = p.bestSwap(hot, hottest, scores, fs, bar)
	}
	switch {
	case single != nil:
		p.apply(single, overloadReasons(m.score(m.view(hot))), fs)
	case swap != nil:
		p.applySwap(swap, fs)
	default:
		return false
	}
	return true
}

// swapOption exchanges u (on from) with v (on to).
type swapOption struct {
	u, v                                     *unitM
	from, to                                 *nodeM
	srcBefore, srcAfter, tgtBefore, tgtAfter float64
	key                                      float64
}

// bestSwap returns the swap off hot with the lowest key (pair score change plus cost points) that lowers hot's
// score by bar, leaves the pair's summed score MinImprovement/5 lower and both nodes strictly below hottest, or
// nil. Each move is checked against the current state (the other guest still in place), which is where the
// first runs and is conservative for the second (the guest it replaces is gone by then).
func (p *planner) bestSwap(hot *nodeM, hottest float64, scores []float64, fs []filter, bar float64) *swapOption {
	m := p.m
	mine := p.refinable(m.unitsOn(hot))
	var others []*unitM
	for _, n := range m.nodes {
		if n != hot && n.usable {
			others = append(others, p.refinable(m.unitsOn(n))...)
		}
	}
	if len(mine)*len(others) > maxSwapPairs {
		return nil
	}
	delta := &unitM{demandStats: demandStats{cpu: make([]float32, m.T), mem: make([]float32, m.T)}}
	var best *swapOption
	for _, u := range mine {
		uOrigin := m.nodes[m.guests[u.members[0]].origin]
		for _, v := range others {
			to := m.nodeOf(v)
			vOrigin := m.nodes[m.guests[v.members[0]].origin]
			if (to == uOrigin && hot != uOrigin) || (hot == vOrigin && to != vOrigin) {
				continue // no moving back within one plan
			}
			if rej, _ := m.runFilters(fs, u, to, false); len(rej) > 0 {
				continue
			}
			if rej, _ := m.runFilters(fs, v, hot, false); len(rej) > 0 {
				continue
			}
			delta.setDifference(v, u)
			srcView, tgtView := m.viewWith(hot, delta, 1, true), m.viewWith(to, delta, -1, true)
			if load(srcView) >= hottest || load(tgtView) >= hottest || tgtView.memPeak > 1-m.pol.MemoryHeadroom {
				continue
			}
			o := &swapOption{u: u, v: v, from: hot, to: to, srcBefore: scores[hot.idx], tgtBefore: scores[to.idx],
				srcAfter: m.total(srcView), tgtAfter: m.total(tgtView)}
			if o.srcBefore-max(o.srcAfter, o.tgtAfter) < bar || o.srcAfter+o.tgtAfter > o.srcBefore+o.tgtBefore {
				continue
			}
			o.key = max(o.srcAfter, o.tgtAfter) - o.srcBefore + costPointsPerGiB*float64(m.unitCost(u)+m.unitCost(v))/GiB
			if best == nil || o.key < best.key-1e-9 {
				best = o // ties keep the first in unit and node order: deterministic
			}
		}
	}
	return best
}

// refinable is movable restricted to units whose data coverage allows a load-driven move.
func (p *planner) refinable(us []*unitM) []*unitM {
	var out []*unitM
	for _, u := range p.movable(us) {
		p.considered[u.idx] = true
		if u.coverage >= p.m.pol.MinCoverage && !u.split {
			out = append(out, u)
		}
	}
	return out
}

// setDifference makes d the demand of a minus the demand of b (series, windows and current memory).
func (d *unitM) setDifference(a, b *unitM) {
	for i := range d.cpu {
		d.cpu[i] = a.cpu[i] - b.cpu[i]
		d.mem[i] = a.mem[i] - b.mem[i]
	}
	d.cpuW = a.cpuW.plus(b.cpuW, -1)
	d.ioW = a.ioW.plus(b.ioW, -1)
	d.memCur = a.memCur - b.memCur
}

// applySwap applies both moves of a swap, u first (it was checked with v still on its target), and says in
// each description what it was moved together with and what the pair achieves.
func (p *planner) applySwap(s *swapOption, fs []filter) {
	m := p.m
	fromBefore, toBefore := load(m.view(s.from)), load(m.view(s.to))
	reasons := append(overloadReasons(m.score(m.view(s.from))), ReasonSwap)
	legs := []struct {
		u        *unitM
		from, to *nodeM
	}{{s.u, s.from, s.to}, {s.v, s.to, s.from}}
	for i, leg := range legs {
		o := &option{u: leg.u, from: leg.from, to: leg.to, srcBefore: m.total(m.view(leg.from)),
			srcAfter: m.total(m.viewWith(leg.from, leg.u, -1, true)), tgtBefore: m.total(m.view(leg.to)),
			tgtAfter: m.total(m.viewWith(leg.to, leg.u, 1, true)), cost: m.unitCost(leg.u)}
		rs := reasons
		if i == 1 {
			rs = []Reason{ReasonSwap}
		}
		p.apply(o, rs, fs)
	}
	effect := fmt.Sprintf("%s load %.0f%% → %.0f%%, %s %.0f%% → %.0f%%", s.from.name, 100*fromBefore,
		100*load(m.view(s.from)), s.to.name, 100*toBefore, 100*load(m.view(s.to)))
	for i, leg := range legs {
		// The partner's move as the plan has it: a re-targeted guest starts at its origin.
		partner := p.moves[p.moveIndex(m.guests[legs[1-i].u.members[0]].id)]
		for _, gi := range leg.u.members {
			id := m.guests[gi].id
			j := p.moveIndex(id)
			p.moves[j].Description += fmt.Sprintf("; moved together with %s (%s → %s), a swap: %s",
				partner.Guest, partner.Source, partner.Target, effect)
			d := p.decisions[id]
			d.Summary = p.moves[j].Description
			p.decisions[id] = d
		}
	}
}
