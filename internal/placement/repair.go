package placement

import (
	"slices"
)

// repairAntiAffinity resolves violations node by node and group by group; for each it moves the member whose
// move is cheapest: the pair's score change in points plus one point per GiB copied.
func (p *planner) repairAntiAffinity() {
	m := p.m
	fs := filtersFor(false)
	unresolved := map[string]bool{}
	found := false
	for {
		node, group := p.nextViolation(unresolved)
		if node == nil {
			break
		}
		found = true
		if !p.budgetLeft() {
			return
		}
		var cands []*unitM
		for _, u := range p.movable(m.unitsOn(node)) {
			for _, gi := range u.members {
				if slices.Contains(m.guests[gi].excludes, group) {
					cands = append(cands, u)
					break
				}
			}
		}
		var best *option
		for _, u := range cands {
			p.considered[u.idx] = true
			best = p.bestSafeMove(u, node, m.nodes, fs, best, func(o *option, _ *nodeM) (float64, bool) {
				return o.pairDelta() + float64(o.cost)/GiB, true
			})
		}
		if best == nil {
			unresolved[node.name+"\x00"+group] = true
			p.note(ReasonUnresolved, "node %s holds %d guests of %s and none can move", node.name, node.groups[group], group)
			continue
		}
		p.apply(best, []Reason{ReasonAntiAffinityRepair}, fs)
	}
	if !found {
		p.note(ReasonNoViolation, "no node holds two guests of one exclude group")
	}
}

// bestSafeMove evaluates moving u from src to each target that passes the filters, never raising a target
// above the highest node score or the hottest node's load, and returns the better of best and the options for
// which key accepts, by key.
func (p *planner) bestSafeMove(u *unitM, src *nodeM, targets []*nodeM, fs []filter, best *option,
	key func(o *option, t *nodeM) (float64, bool)) *option {
	m := p.m
	srcBefore, srcAfter := m.total(m.view(src)), m.total(m.viewWith(src, u, -1, true))
	maxScore, hottest := m.maxScore(), m.hottestLoad()
	for _, t := range targets {
		if t == src || !t.usable {
			continue
		}
		rej, in := m.runFilters(fs, u, t, false)
		if len(rej) > 0 {
			continue
		}
		o := &option{u: u, from: src, to: t, srcBefore: srcBefore, srcAfter: srcAfter,
			tgtBefore: m.total(m.view(t)), tgtAfter: m.total(in.after()), cost: m.unitCost(u)}
		if o.tgtAfter > maxScore || !m.keepsHottest(in, hottest) {
			continue
		}
		k, ok := key(o, t)
		if !ok {
			continue
		}
		o.key, o.spread = k, utilisation(in.after())
		if better(o, best) {
			best = o
		}
	}
	return best
}

// nextViolation returns the first (node, group) in name order holding two or more guests of the group.
func (p *planner) nextViolation(skip map[string]bool) (*nodeM, string) {
	for _, n := range p.m.nodes {
		for _, g := range sortedKeys(n.groups) {
			if n.groups[g] >= 2 && !skip[n.name+"\x00"+g] {
				return n, g
			}
		}
	}
	return nil, ""
}
