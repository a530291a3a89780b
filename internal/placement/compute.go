package placement

import (
	"fmt"
	"math"
	"slices"
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
	// Hashing the inputs reads every sample once; it overlaps with planning.
	idc := make(chan string, 1)
	go func() { idc <- planID(st, pol, req) }()
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
	plan.ID = <-idc
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
