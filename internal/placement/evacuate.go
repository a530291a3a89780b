package placement

import (
	"cmp"
	"fmt"
	"slices"
)

// evacuate moves every unit off n, largest memory first so the hardest to place choose first. Targets are
// the lowest score after the move, with anti-affinity and pins as preferences; there is no improvement bar.
func (p *planner) evacuate(n *nodeM) {
	m := p.m
	if !n.online {
		p.note(ReasonNodeOffline, "node %s is offline: its guests cannot be migrated, only recovered", n.name)
	}
	us := m.unitsOn(n)
	slices.SortStableFunc(us, func(a, b *unitM) int {
		if c := cmp.Compare(b.memCur, a.memCur); c != 0 {
			return c
		}
		return cmp.Compare(m.unitCost(b), m.unitCost(a))
	})
	fs := filtersFor(true)
	for _, u := range us {
		g := m.guests[u.members[0]]
		if !n.online {
			p.decideUnit(u, Decision{Outcome: OutcomeManual, Reasons: []Reason{ReasonNodeOffline},
				Summary: fmt.Sprintf("%s is on offline node %s", g.id, n.name)})
			continue
		}
		if st := m.gate(g); !st.OK() {
			p.decideUnit(u, Decision{Outcome: OutcomeManual, Reasons: []Reason{st.Code},
				Summary: fmt.Sprintf("%s needs manual action before maintenance: %s", g.id, st)})
			continue
		}
		srcBefore := m.total(m.view(n))
		srcAfter := m.total(m.viewWith(n, u, -1, true))
		var best *option
		feasible := 0
		for _, t := range m.nodes {
			if t == n {
				continue
			}
			if rej, _ := m.runFilters(fs, u, t, false); len(rej) > 0 {
				continue
			}
			feasible++
			tgtBefore := m.total(m.view(t))
			tgtAfter := m.total(m.viewWith(t, u, 1, true))
			o := &option{u: u, from: n, to: t, srcBefore: srcBefore, srcAfter: srcAfter, tgtBefore: tgtBefore,
				tgtAfter: tgtAfter, cost: m.unitCost(u)}
			o.key = tgtAfter + m.preferencePenalty(u, t)
			o.spread = utilisation(m.viewWith(t, u, 1, false))
			if better(o, best) {
				best = o
			}
		}
		if best == nil {
			cands := m.candidates(u, n, fs)
			p.decideUnit(u, Decision{Outcome: OutcomeManual, Reasons: []Reason{ReasonNoFeasibleTarget},
				Summary: fitSummary(len(cands), cands)})
			continue
		}
		reasons := []Reason{ReasonEvacuate}
		if m.preferencePenalty(u, best.to) > 0 {
			reasons = append(reasons, ReasonAntiAffinity)
		}
		p.apply(best, reasons, fs)
	}
	if len(us) == 0 {
		p.note(ReasonNoOverload, "node %s holds no guests", n.name)
	}
}

// preferencePenalty is what evacuation charges for breaking a bypassed tag rule: 200 points per exclude group
// shared with the target and 100 for a pin that does not name it, so such targets are last resorts.
func (m *model) preferencePenalty(u *unitM, t *nodeM) float64 {
	var pen float64
	for _, gi := range u.members {
		g := m.guests[gi]
		for _, x := range g.excludes {
			if t.groups[x] > 0 {
				pen += 200
			}
		}
		if len(g.pins) > 0 && !pinnedTo(g, t) {
			pen += 100
		}
	}
	return pen
}
