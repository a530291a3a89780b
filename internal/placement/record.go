package placement

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// apply records the option as moves (one per member) and applies it to the simulation.
func (p *planner) apply(o *option, reasons []Reason, fs []filter) {
	m := p.m
	u := o.u
	// A unit moved earlier in the plan is re-targeted: its earlier moves go, the new one starts at its origin,
	// and the origin's scores are shown as with and without the unit now.
	src := o.from
	srcBefore, srcAfter := m.score(m.view(o.from)), m.score(m.viewWith(o.from, u, -1, true))
	first := m.guests[u.members[0]]
	if first.moved {
		for _, gi := range u.members {
			if i := p.moveIndex(m.guests[gi].id); i >= 0 {
				p.moves = slices.Delete(p.moves, i, i+1)
			}
		}
		src = m.nodes[first.origin]
		srcBefore, srcAfter = m.score(m.viewWith(src, u, 1, true)), m.score(m.view(src))
	}
	cands := m.candidates(u, src, fs)
	tgtBefore := m.score(m.view(o.to))
	tgtAfter := m.score(m.viewWith(o.to, u, 1, true))
	conf := m.confidence(o, p.req.Action)
	desc := m.describeEffect(p.req.Action, src, o.to, srcBefore, srcAfter, tgtBefore, tgtAfter)
	for _, gi := range u.members {
		g := m.guests[gi]
		rs := slices.Clone(reasons)
		if u.group != "" {
			rs = append(rs, ReasonAffinityGroup)
		}
		mv := Move{
			Guest: g.id, GuestName: g.spec.Name, Source: src.name, Target: o.to.name, Group: u.group,
			Online: g.spec.Running, Reasons: rs,
			SourceBefore: srcBefore, SourceAfter: srcAfter, TargetBefore: tgtBefore, TargetAfter: tgtAfter,
			Improvement: srcBefore.Total - tgtAfter.Total, Confidence: conf, Cost: m.guestCost(g),
			StorageCheck: StorageCheck{OK: true, Storages: g.storages}, Candidates: cands,
		}
		mv.Description = fmt.Sprintf("move %s (%s) from %s to %s: %s", g.id, guestFacts(g), src.name, o.to.name, desc)
		p.moves = append(p.moves, mv)
		p.decisions[g.id] = Decision{Guest: g.id, Node: src.name, Outcome: OutcomeSelected, Reasons: rs,
			Summary: mv.Description}
	}
	delete(p.considered, u.idx)
	m.moveStorage(u, o.from, o.to)
	m.move(u, o.to)
}

// moveStorage books the local disks of u from one node's storages to the other's free space.
func (m *model) moveStorage(u *unitM, from, to *nodeM) {
	for _, gi := range u.members {
		for _, ld := range m.guests[gi].localDisk {
			if s, ok := to.storages[ld.storage]; ok && s.AvailKnown && !s.Shared {
				s.AvailBytes -= min(ld.bytes, s.AvailBytes)
				to.storages[ld.storage] = s
			}
			if s, ok := from.storages[ld.storage]; ok && s.AvailKnown && !s.Shared {
				s.AvailBytes += ld.bytes
				from.storages[ld.storage] = s
			}
		}
	}
}

// candidates evaluates every node but the source for u: filter statuses of rejected ones, exact scores and
// improvement of feasible ones; sorted by node name.
func (m *model) candidates(u *unitM, from *nodeM, fs []filter) []Candidate {
	return m.evaluateTargets(u, from, fs, true)
}

// evaluateTargets is candidates with exact scores only when withScores (decisions need feasibility alone).
func (m *model) evaluateTargets(u *unitM, from *nodeM, fs []filter, withScores bool) []Candidate {
	srcBefore := m.total(m.view(from))
	if m.nodeOf(u) != from {
		srcBefore = m.total(m.viewWith(from, u, 1, true)) // re-targeted: from is its origin, which it has left
	}
	var out []Candidate
	for _, t := range m.nodes {
		if t == from {
			continue
		}
		if t == m.nodeOf(u) && withScores {
			// The unit is already there (re-targeted within the plan): its score "after" is its score now.
			c := Candidate{Node: t.name, Feasible: true, After: m.score(m.view(t))}
			c.Improvement = srcBefore - c.After.Total
			out = append(out, c)
			continue
		}
		rej, _ := m.runFilters(fs, u, t, true)
		c := Candidate{Node: t.name, Feasible: len(rej) == 0, Rejections: rej}
		if c.Feasible && withScores {
			c.After = m.score(m.viewWith(t, u, 1, true))
			c.Improvement = srcBefore - c.After.Total
		}
		out = append(out, c)
	}
	return out
}

// finishDecisions decides, on the final simulated state, every unit that was considered but not moved.
func (p *planner) finishDecisions() {
	m := p.m
	fs := filtersFor(m.evacuation)
	for _, ui := range sortedKeys(p.considered) {
		u := m.units[ui]
		if m.guests[u.members[0]].moved {
			continue // selected; considered again for re-targeting but left where the plan puts it
		}
		from := m.nodeOf(u)
		cands := m.evaluateTargets(u, from, fs, false)
		feasible := 0
		for _, c := range cands {
			if c.Feasible {
				feasible++
			}
		}
		var d Decision
		switch {
		case p.resolved(u, from):
			d = Decision{Outcome: OutcomeSkipped, Reasons: []Reason{p.resolvedReason()},
				Summary: fmt.Sprintf("%s needs no further moves after the plan", from.name)}
		case feasible == 0:
			d = Decision{Outcome: OutcomeFiltered, Reasons: []Reason{ReasonNoFeasibleTarget}, Summary: fitSummary(len(cands), cands)}
		case u.coverage < m.pol.MinCoverage:
			d = Decision{Outcome: OutcomeSkipped, Reasons: []Reason{ReasonLowCoverage},
				Summary: fmt.Sprintf("data coverage %.2f is below the minimum %.2f", u.coverage, m.pol.MinCoverage)}
		case p.maxReached:
			d = Decision{Outcome: OutcomeSkipped, Reasons: []Reason{ReasonMaxMoves}, Summary: "the plan reached max_moves"}
		default:
			d = Decision{Outcome: OutcomeSkipped, Reasons: []Reason{ReasonBelowMinImprovement},
				Summary: fmt.Sprintf("no target improves on %s by the minimum %.0f points (%d feasible)", from.name, m.pol.MinImprovement, feasible)}
			if p.req.Action == ActionDistribute || p.req.Action == ActionRepairAntiAffinity {
				d.Summary = fmt.Sprintf("another guest was the better move (%d feasible targets)", feasible)
			}
		}
		p.decideUnit(u, d)
	}
}

// resolved reports whether, on the final state, the problem that made u a candidate is gone from its node.
func (p *planner) resolved(u *unitM, from *nodeM) bool {
	m := p.m
	switch p.req.Action {
	case ActionRebalance, ActionRelieve:
		return m.total(m.view(from)) == 0
	case ActionRepairAntiAffinity:
		for _, gi := range u.members {
			for _, x := range m.guests[gi].excludes {
				if from.groups[x] >= 2 {
					return false
				}
			}
		}
		return true
	case ActionDistribute:
		return hasNoteReason(p.notes, ReasonBalanced)
	}
	return false
}

func (p *planner) resolvedReason() Reason {
	switch p.req.Action {
	case ActionRepairAntiAffinity:
		return ReasonNoViolation
	case ActionDistribute:
		return ReasonBalanced
	}
	return ReasonNoOverload
}

func hasNoteReason(ns []Note, r Reason) bool {
	return slices.ContainsFunc(ns, func(n Note) bool { return n.Reason == r })
}

// confidence blends, as a 0..100 integer, data coverage (of the unit and both nodes), the score margin over
// the bar, the guest's size and risk (local disks to copy, HA).
func (m *model) confidence(o *option, a Action) int {
	cov := min(o.u.coverage, o.from.coverage, o.to.coverage)
	if a == ActionEvacuate {
		cov = max(cov, 0.5) // evacuation happens regardless; coverage only tempers
	}
	margin := 1.0
	switch a {
	case ActionRebalance, ActionRelieve:
		margin = min(max(o.improvement()/(2*m.pol.MinImprovement), 0.25), 1)
	default:
		if o.tgtAfter > 0 {
			margin = 0.7
		}
	}
	gib := float64(m.unitCost(o.u)) / GiB
	size := 1 - 0.3*min(gib/64, 1)
	risk := 1.0
	for _, gi := range o.u.members {
		g := m.guests[gi]
		if g.localDiskBytes > 0 {
			risk *= 0.9
		}
		if g.spec.HAManaged {
			risk *= 0.95
		}
	}
	return int(math.Round(100 * cov * margin * size * risk))
}

// guestFacts is "web-3, 4 vCPU, 8 GiB".
func guestFacts(g *guestM) string {
	var parts []string
	if g.spec.Name != "" {
		parts = append(parts, g.spec.Name)
	}
	parts = append(parts, fmt.Sprintf("%d vCPU", g.spec.VCPUs), humanBytes(g.spec.MemoryBytes))
	return strings.Join(parts, ", ")
}

func humanBytes(b uint64) string {
	if b >= GiB {
		return trimFloat(float64(b)/GiB) + " GiB"
	}
	return trimFloat(float64(b)/(1<<20)) + " MiB"
}

func trimFloat(v float64) string {
	s := fmt.Sprintf("%.1f", v)
	return strings.TrimSuffix(s, ".0")
}

// describeEffect is the clause after the colon: the source's dominant resource before → after, and the
// target's.
func (m *model) describeEffect(a Action, from, to *nodeM, sb, sa, tb, ta Score) string {
	dom := 1 // cpu-peak unless another plugin strictly dominates the source
	best := sb.Plugins[1].Points
	for i, ps := range sb.Plugins {
		if ps.Points > best {
			best, dom = ps.Points, i
		}
	}
	label := [...]string{"CPU", "CPU p95", "memory", "iowait"}[dom]
	pct := func(s Score) string { return fmt.Sprintf("%.0f%%", 100*s.Plugins[dom].Value) }
	target := fmt.Sprintf("%s %s → %s", to.name, pct(tb), pct(ta))
	switch a {
	case ActionEvacuate:
		return fmt.Sprintf("evacuating %s; %s %s", from.name, label, target)
	case ActionRepairAntiAffinity:
		return fmt.Sprintf("repairs anti-affinity on %s; %s %s", from.name, label, target)
	case ActionDistribute:
		return fmt.Sprintf("evens small-guest counts; %s %s", label, target)
	}
	return fmt.Sprintf("%s %s %s → %s; %s", from.name, label, pct(sb), pct(sa), target)
}

// metrics summarises the simulated cluster.
func (m *model) metrics() ClusterMetrics {
	var cm ClusterMetrics
	var loads []float64
	for _, n := range m.nodes {
		nm := NodeMetrics{Node: n.name, CPUP95: n.cpuPeak / n.cpus, MemoryP95: n.memPeak / n.memBytes,
			Score: m.total(m.view(n)), Guests: n.guests}
		nm.Load = max(nm.CPUP95, nm.MemoryP95)
		cm.Nodes = append(cm.Nodes, nm)
		if !n.online {
			continue
		}
		loads = append(loads, nm.Load)
		if cm.HottestNode == "" || nm.Load > cm.HottestLoad {
			cm.HottestNode, cm.HottestLoad = n.name, nm.Load
		}
		cm.MaxScore = max(cm.MaxScore, nm.Score)
	}
	cm.LoadCV = coefficientOfVariation(loads)
	return cm
}

func coefficientOfVariation(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	var sum float64
	for _, x := range xs {
		sum += x
	}
	mean := sum / float64(len(xs))
	if mean == 0 {
		return 0
	}
	var ss float64
	for _, x := range xs {
		ss += (x - mean) * (x - mean)
	}
	return math.Sqrt(ss/float64(len(xs))) / mean
}
