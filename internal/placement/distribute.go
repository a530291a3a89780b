package placement

// distribute moves small guests from the node with the most to nodes with at least two fewer, until counts
// differ by at most Policy.Distribute.MaxSpread. A move may not push its target over thresholds unless it
// lowers the pair's summed score.
func (p *planner) distribute() {
	m := p.m
	fs := filtersFor(false)
	for round := 0; ; round++ {
		var usable []*nodeM
		for _, n := range m.nodes {
			if n.usable {
				usable = append(usable, n)
			}
		}
		if len(usable) < 2 {
			p.note(ReasonNoTargets, "fewer than two usable nodes")
			return
		}
		hi, lo := usable[0], usable[0]
		for _, n := range usable[1:] {
			if n.small > hi.small {
				hi = n
			}
			if n.small < lo.small {
				lo = n
			}
		}
		if hi.small-lo.small <= m.pol.Distribute.MaxSpread {
			p.note(ReasonBalanced, "small-guest counts differ by %d (at most %d allowed)", hi.small-lo.small, m.pol.Distribute.MaxSpread)
			return
		}
		if !p.budgetLeft() {
			return
		}
		var targets []*nodeM
		for _, t := range usable {
			if t.small <= hi.small-2 {
				targets = append(targets, t)
			}
		}
		var best *option
		for _, u := range p.movable(m.unitsOn(hi)) {
			if len(u.members) != 1 || !m.guests[u.members[0]].small {
				continue
			}
			p.considered[u.idx] = true
			best = p.bestSafeMove(u, hi, targets, fs, best, func(o *option, t *nodeM) (float64, bool) {
				if o.tgtAfter > 0 && o.pairDelta() > 0 {
					return 0, false // never push a target over thresholds to even out counts
				}
				// Prefer the emptiest target, then the cheapest guest, then the best score.
				return float64(t.small)*1000 + float64(o.cost)/GiB + o.pairDelta()/1000, true
			})
		}
		if best == nil {
			p.note(ReasonUnresolved, "node %s holds %d small guests, %s %d, and no small guest can move", hi.name, hi.small, lo.name, lo.small)
			return
		}
		p.apply(best, []Reason{ReasonDistribute}, fs)
	}
}
