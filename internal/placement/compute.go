package placement

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Compute plans req on st under pol. It returns an error only for invalid input (a Policy out of range, series
// of different lengths, a guest on an unknown node, an unknown Request.Node or Action); everything else,
// including "nothing to do", is a Plan with Notes and Decisions.
//
// The steps are explicit and pure: snapshot and normalise (newModel), classify nodes, guard clauses that note
// why nothing happens, sort candidates, then move one unit at a time, applying every move to the simulated
// cluster before choosing the next, until nothing clears the bar or a bound is reached.
func Compute(st State, pol Policy, req Request) (Plan, error) {
	if err := pol.Validate(); err != nil {
		return Plan{}, fmt.Errorf("invalid policy: %w", err)
	}
	switch req.Action {
	case ActionRebalance, ActionRepairAntiAffinity, ActionDistribute:
	case ActionRelieve, ActionEvacuate:
		if req.Node == "" {
			return Plan{}, fmt.Errorf("action %s needs a node", req.Action)
		}
	default:
		return Plan{}, fmt.Errorf("unknown action %q", req.Action)
	}
	m, err := newModel(st, pol, req.Action == ActionEvacuate)
	if err != nil {
		return Plan{}, fmt.Errorf("invalid state: %w", err)
	}
	var node *nodeM
	if req.Node != "" {
		i, ok := m.nodeByName[req.Node]
		if !ok {
			return Plan{}, fmt.Errorf("action %s: unknown node %q", req.Action, req.Node)
		}
		node = m.nodes[i]
	}
	p := &planner{m: m, req: req, decisions: map[string]Decision{}, considered: map[int]bool{}}
	plan := Plan{Action: req.Action, Node: req.Node, Trigger: req.Trigger, At: st.Now, Before: m.metrics()}
	switch req.Action {
	case ActionRebalance:
		p.loadDriven(nil)
	case ActionRelieve:
		p.loadDriven(node)
	case ActionEvacuate:
		p.evacuate(node)
	case ActionRepairAntiAffinity:
		p.repairAntiAffinity()
	case ActionDistribute:
		p.distribute()
	}
	p.finishDecisions()
	plan.Moves = p.moves
	plan.Notes = p.notes
	plan.After = m.metrics()
	for _, id := range sortedKeys(p.decisions) {
		plan.Decisions = append(plan.Decisions, p.decisions[id])
	}
	plan.ID = planID(st, pol, req)
	return plan, nil
}

// planner carries one Compute call's simulation and records.
type planner struct {
	m         *model
	req       Request
	moves     []Move
	notes     []Note
	decisions map[string]Decision
	// considered are units that were candidates but not moved; their decisions are made on the final state.
	considered map[int]bool
	// maxReached is set when Policy.MaxMoves stopped the plan.
	maxReached bool
}

func (p *planner) note(r Reason, format string, args ...any) {
	p.notes = append(p.notes, Note{Reason: r, Message: fmt.Sprintf(format, args...)})
}

func (p *planner) budgetLeft() bool {
	if mx := p.m.pol.MaxMoves; mx > 0 && p.req.Action != ActionEvacuate && p.moveUnits() >= mx {
		if !p.maxReached {
			p.maxReached = true
			p.note(ReasonMaxMoves, "stopped after %d moves (max_moves)", mx)
		}
		return false
	}
	return true
}

// moveUnits counts moves, an affinity group's moves counting once.
func (p *planner) moveUnits() int {
	n := 0
	for i, mv := range p.moves {
		if mv.Group == "" || i == 0 || p.moves[i-1].Group != mv.Group {
			n++
		}
	}
	return n
}

// option is one evaluated (unit, target) pair, all scores in points.
type option struct {
	u                                        *unitM
	from, to                                 *nodeM
	srcBefore, srcAfter, tgtBefore, tgtAfter float64
	// key orders options of the same action: lower is better.
	key  float64
	cost uint64
	// spread breaks ties between equal keys: the target's utilisation after the move (lower spreads better).
	spread float64
}

func (o *option) improvement() float64 { return o.srcBefore - o.tgtAfter }
func (o *option) pairDelta() float64 {
	return (o.srcAfter + o.tgtAfter) - (o.srcBefore + o.tgtBefore)
}

// better orders options: key, then cost, then unit order, then target name; all deterministic.
func better(a, b *option) bool {
	if b == nil {
		return true
	}
	const eps = 1e-9
	if math.Abs(a.key-b.key) > eps {
		return a.key < b.key
	}
	if a.cost != b.cost {
		return a.cost < b.cost
	}
	if math.Abs(a.spread-b.spread) > eps {
		return a.spread < b.spread
	}
	if a.u.idx != b.u.idx {
		return a.u.idx < b.u.idx
	}
	return a.to.name < b.to.name
}

// unitCost is the bytes a migration of u copies: memory of running members plus unshared disks.
func (m *model) unitCost(u *unitM) uint64 {
	var c uint64
	for _, gi := range u.members {
		c += m.guestCost(m.guests[gi]).MemoryBytes + m.guests[gi].localDiskBytes
	}
	return c
}

func (m *model) guestCost(g *guestM) Cost {
	c := Cost{DiskBytes: g.localDiskBytes}
	if g.spec.Running {
		c.MemoryBytes = g.spec.MemoryBytes
	}
	sec := float64(c.MemoryBytes+c.DiskBytes) / m.pol.BandwidthBytesPerSecond
	c.Duration = time.Duration(sec * float64(time.Second)).Round(time.Second)
	return c
}

// unitsOn lists the units with a member on n, in unit order. A split affinity group is listed too, so that
// the gate records why it stays.
func (m *model) unitsOn(n *nodeM) []*unitM {
	var out []*unitM
	for _, u := range m.units {
		for _, gi := range u.members {
			if m.guests[gi].node == n.idx {
				out = append(out, u)
				break
			}
		}
	}
	return out
}

// movable filters units to those passing the gates, recording a decision for the others.
func (p *planner) movable(us []*unitM) []*unitM {
	var out []*unitM
	for _, u := range us {
		if p.m.guests[u.members[0]].moved && !p.retargetable(u) {
			continue
		}
		if st, g := p.m.unitGate(u); !st.OK() {
			p.decideUnit(u, Decision{Outcome: OutcomeFiltered, Reasons: []Reason{st.Code},
				Summary: fmt.Sprintf("%s cannot move: %s", g.id, st)})
			continue
		}
		out = append(out, u)
	}
	return out
}

// retargetable reports whether a unit the plan already moves may be moved again by a load-driven action. Its
// earlier moves are then replaced by one move from its origin to the new target (a guest migrates at most once
// per plan). That keeps the guest on its origin until the new move runs, which stays valid as long as no move
// in between targets the origin (it was checked with the guest gone from there); otherwise it stays put.
func (p *planner) retargetable(u *unitM) bool {
	if p.req.Action != ActionRebalance && p.req.Action != ActionRelieve {
		return false
	}
	g := p.m.guests[u.members[0]]
	origin := p.m.nodes[g.origin].name
	i := p.moveIndex(g.id)
	if i < 0 {
		return false
	}
	for _, mv := range p.moves[i+1:] {
		if mv.Target == origin {
			return false
		}
	}
	return true
}

// moveIndex is the position of the guest's move in the plan, or −1.
func (p *planner) moveIndex(id string) int {
	return slices.IndexFunc(p.moves, func(mv Move) bool { return mv.Guest == id })
}

// decideUnit records d for every member of u.
func (p *planner) decideUnit(u *unitM, d Decision) {
	for _, gi := range u.members {
		g := p.m.guests[gi]
		d := d
		d.Guest = g.id
		d.Node = p.m.nodes[g.node].name
		p.decisions[g.id] = d
	}
}

// ---- rebalance and relieve ----

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
			best = p.bestRelief(src, scores, fs)
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
func (p *planner) bestRelief(src *nodeM, scores []float64, fs []filter) *option {
	m := p.m
	srcBefore := scores[src.idx]
	hottest := m.hottestLoad()
	cands := p.movable(m.unitsOn(src))
	p.sortByContribution(src, cands)
	var best *option
	for _, u := range cands {
		p.considered[u.idx] = true
		if u.coverage < m.pol.MinCoverage {
			continue
		}
		var srcAfter float64
		srcDone := false
		cost := m.unitCost(u)
		origin := m.nodes[m.guests[u.members[0]].origin]
		for _, t := range m.nodes {
			if t == src || !t.usable || srcBefore-scores[t.idx] < m.pol.MinImprovement {
				continue // the target's score only grows when the unit lands: it cannot clear the bar
			}
			if t == origin && src != origin {
				continue // no moving back within one plan
			}
			rej, in := m.runFilters(fs, u, t, false)
			if len(rej) > 0 {
				continue
			}
			tgtAfter := m.total(in.after())
			if srcBefore-tgtAfter < m.pol.MinImprovement || !m.keepsHottest(in, hottest) {
				continue
			}
			if !srcDone {
				srcAfter = m.total(m.viewWith(src, u, -1, true))
				srcDone = true
			}
			o := &option{u: u, from: src, to: t, srcBefore: srcBefore, srcAfter: srcAfter,
				tgtBefore: scores[t.idx], tgtAfter: tgtAfter, cost: cost}
			if -o.pairDelta() < m.pol.MinImprovement/5 {
				continue // progress guard: the pair as a whole must get clearly better, not just the source
			}
			o.key = o.pairDelta() + costPointsPerGiB*float64(cost)/GiB
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

// ---- evacuation ----

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
		if len(g.pins) > 0 && !slices.Contains(g.pins, t.name) {
			pen += 100
		}
	}
	return pen
}

// ---- anti-affinity repair ----

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
		srcBefore := m.total(m.view(node))
		maxScore, hottest := m.maxScore(), m.hottestLoad()
		var best *option
		for _, u := range cands {
			p.considered[u.idx] = true
			srcAfter := m.total(m.viewWith(node, u, -1, true))
			for _, t := range m.nodes {
				if t == node || !t.usable {
					continue
				}
				rej, in := m.runFilters(fs, u, t, false)
				if len(rej) > 0 {
					continue
				}
				o := &option{u: u, from: node, to: t, srcBefore: srcBefore, srcAfter: srcAfter,
					tgtBefore: m.total(m.view(t)), tgtAfter: m.total(in.after()), cost: m.unitCost(u)}
				if o.tgtAfter > maxScore || !m.keepsHottest(in, hottest) {
					continue // repairs never make the hottest node hotter
				}
				o.key = o.pairDelta() + float64(o.cost)/GiB
				o.spread = utilisation(in.after())
				if better(o, best) {
					best = o
				}
			}
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

// ---- distribute ----

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
		srcBefore := m.total(m.view(hi))
		maxScore, hottest := m.maxScore(), m.hottestLoad()
		var best *option
		for _, u := range p.movable(m.unitsOn(hi)) {
			if len(u.members) != 1 || !m.guests[u.members[0]].small {
				continue
			}
			p.considered[u.idx] = true
			srcAfter := m.total(m.viewWith(hi, u, -1, true))
			for _, t := range usable {
				if t == hi || t.small > hi.small-2 {
					continue
				}
				rej, in := m.runFilters(fs, u, t, false)
				if len(rej) > 0 {
					continue
				}
				o := &option{u: u, from: hi, to: t, srcBefore: srcBefore, srcAfter: srcAfter,
					tgtBefore: m.total(m.view(t)), tgtAfter: m.total(in.after()), cost: m.unitCost(u)}
				if (o.tgtAfter > 0 && o.pairDelta() > 0) || o.tgtAfter > maxScore || !m.keepsHottest(in, hottest) {
					continue
				}
				// Prefer the emptiest target, then the cheapest guest, then the best score.
				o.key = float64(t.small)*1000 + float64(o.cost)/GiB + o.pairDelta()/1000
				o.spread = utilisation(in.after())
				if better(o, best) {
					best = o
				}
			}
		}
		if best == nil {
			p.note(ReasonUnresolved, "node %s holds %d small guests, %s %d, and no small guest can move", hi.name, hi.small, lo.name, lo.small)
			return
		}
		p.apply(best, []Reason{ReasonDistribute}, fs)
	}
}

// ---- applying and recording ----

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
	srcBefore := m.total(m.view(from))
	if m.nodeOf(u) != from {
		srcBefore = m.total(m.viewWith(from, u, 1, true)) // re-targeted: from is its origin, which it has left
	}
	var out []Candidate
	for _, t := range m.nodes {
		if t == from {
			continue
		}
		if t == m.nodeOf(u) {
			// The unit is already there (re-targeted within the plan): its score "after" is its score now.
			c := Candidate{Node: t.name, Feasible: true, After: m.score(m.view(t))}
			c.Improvement = srcBefore - c.After.Total
			out = append(out, c)
			continue
		}
		rej, _ := m.runFilters(fs, u, t, true)
		c := Candidate{Node: t.name, Feasible: len(rej) == 0, Rejections: rej}
		if c.Feasible {
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
		from := m.nodeOf(u)
		cands := m.candidates(u, from, fs)
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
