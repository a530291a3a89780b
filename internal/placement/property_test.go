package placement

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
)

// violations re-checks, independently of the planner's filters, every hard constraint of each move of p,
// applying the moves one by one to st. It returns one line per violation.
func violations(st State, pol Policy, p Plan) []string {
	var out []string
	cur := st
	evac := p.Action == ActionEvacuate
	for _, mv := range p.Moves {
		nodes := map[string]Node{}
		for _, n := range cur.Nodes {
			nodes[n.Name] = n
		}
		var g Guest
		for _, x := range cur.Guests {
			if x.ID == mv.Guest {
				g = x
			}
		}
		tgt := nodes[mv.Target]
		bad := func(format string, args ...any) {
			out = append(out, fmt.Sprintf("%s→%s: ", mv.Guest, mv.Target)+fmt.Sprintf(format, args...))
		}
		if g.Node != mv.Source || mv.Source == mv.Target {
			bad("guest is on %s, move says %s", g.Node, mv.Source)
		}
		if !tgt.Online || tgt.Maintenance {
			bad("target unavailable")
		}
		if g.Template || g.Lock != "" || len(g.LocalDevices) > 0 {
			bad("immovable guest moved")
		}
		for _, b := range g.BindMounts {
			if !b.Shared {
				bad("unshared bind mount")
			}
		}
		for _, d := range g.Disks {
			ok := false
			for _, s := range tgt.Storages {
				ok = ok || (tgt.StoragesKnown && s.Name == d.Storage && s.Enabled && s.Active)
			}
			if !ok {
				bad("storage %s not usable on target", d.Storage)
			}
		}
		if !evac {
			for _, t := range g.Tags {
				switch {
				case t == "ignore":
					bad("ignored guest moved")
				case strings.HasPrefix(t, "pin_") && t != "pin_"+mv.Target:
					bad("pinned guest moved off its pin")
				case strings.HasPrefix(t, "exclude_"):
					for _, o := range cur.Guests {
						if o.Node == mv.Target && slices.Contains(o.Tags, t) {
							bad("%s already on target (%s)", t, o.ID)
						}
					}
				}
			}
			if g.HAManaged && !pol.AllowHA {
				bad("HA guest moved")
			}
			if !g.Running && !pol.MoveStopped {
				bad("stopped guest moved")
			}
		}
		next, err := Apply(cur, Plan{Moves: []Move{mv}})
		if err != nil {
			bad("apply: %v", err)
			return out
		}
		for _, n := range next.Nodes {
			if n.Name != mv.Target || len(n.Load.Memory.Series) == 0 {
				continue
			}
			s := slices.Clone(n.Load.Memory.Series)
			sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
			p95 := float64(s[quantileIndex(len(s), pol.PeakQuantile)])
			if p95 > (1-pol.MemoryHeadroom)*float64(n.MemoryBytes)*1.0001 {
				bad("target p95 memory %.1f GiB over the headroom of %.1f GiB", p95/GiB, float64(n.MemoryBytes)/GiB)
			}
		}
		cur = next
	}
	return out
}

func randomSpec(seed uint64) genSpec {
	r := rand.New(rand.NewPCG(seed, 7))
	return genSpec{seed: seed, nodes: 2 + r.IntN(5), guests: 6 + r.IntN(36), hot: 0.2 + 0.5*r.Float64(),
		constraints: true, peakAmp: 0.6 * r.Float64(), cpuBusy: 0.2 + 0.4*r.Float64()}
}

func TestPropertiesOnRandomClusters(t *testing.T) {
	pol := DefaultPolicy()
	pol.MaxMoves = 0 // unbounded, so "re-planning proposes nothing" is a fixed-point property
	actions := []Request{rebalance, repair, spread, evacuate("pve01"), relieve("pve01")}
	seeds := 200
	if testing.Short() {
		seeds = 40
	}
	for seed := range uint64(seeds) {
		st := generate(randomSpec(seed))
		for _, req := range actions {
			p, err := Compute(st, pol, req)
			if err != nil {
				t.Fatalf("seed %d %s: %v", seed, req.Action, err)
			}
			for _, v := range violations(st, pol, p) {
				t.Errorf("seed %d %s: %s", seed, req.Action, v)
			}
			if req.Action == ActionEvacuate {
				continue // evacuation empties a node: hotter targets are expected
			}
			if p.After.MaxScore > p.Before.MaxScore+1e-6 {
				t.Errorf("seed %d %s: hottest node score %.2f → %.2f", seed, req.Action, p.Before.MaxScore, p.After.MaxScore)
			}
			if p.After.HottestLoad > p.Before.HottestLoad+1e-6 {
				t.Errorf("seed %d %s: hottest node load %.3f → %.3f", seed, req.Action, p.Before.HottestLoad, p.After.HottestLoad)
			}
			if req.Action != ActionRebalance && req.Action != ActionRelieve {
				continue
			}
			after, err := Apply(st, p)
			if err != nil {
				t.Fatalf("seed %d: Apply: %v", seed, err)
			}
			again, err := Compute(after, pol, req)
			if err != nil {
				t.Fatalf("seed %d: re-plan: %v", seed, err)
			}
			if len(again.Moves) > 0 {
				t.Errorf("seed %d %s: re-planning after applying %v proposes %v", seed, req.Action, movesOf(p), movesOf(again))
			}
			if d := again.Before.MaxScore - p.After.MaxScore; d > 1e-3 || d < -1e-3 {
				t.Errorf("seed %d %s: simulated max score %.4f, applied %.4f", seed, req.Action, p.After.MaxScore, again.Before.MaxScore)
			}
		}
	}
}

func TestDeterministicWhateverTheInputOrder(t *testing.T) {
	for seed := range uint64(20) {
		st := generate(randomSpec(seed))
		p1 := mustPlan(t, st, DefaultPolicy(), rebalance)
		shuffled := st
		r := rand.New(rand.NewPCG(seed, 99))
		shuffled.Nodes = slices.Clone(st.Nodes)
		shuffled.Guests = slices.Clone(st.Guests)
		r.Shuffle(len(shuffled.Nodes), func(i, j int) { shuffled.Nodes[i], shuffled.Nodes[j] = shuffled.Nodes[j], shuffled.Nodes[i] })
		r.Shuffle(len(shuffled.Guests), func(i, j int) { shuffled.Guests[i], shuffled.Guests[j] = shuffled.Guests[j], shuffled.Guests[i] })
		p2 := mustPlan(t, shuffled, DefaultPolicy(), rebalance)
		if !reflect.DeepEqual(p1, p2) {
			t.Errorf("seed %d: plans differ with input order: %v vs %v", seed, movesOf(p1), movesOf(p2))
		}
		p3 := mustPlan(t, st, DefaultPolicy(), Request{Action: ActionRebalance, Trigger: "other"})
		if p3.ID == p1.ID {
			t.Errorf("seed %d: a different trigger gives the same plan ID", seed)
		}
	}
}

func TestSelectKMatchesSort(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := 1; n < 300; n += 7 {
		for _, q := range []float64{0.5, 0.9, 0.95, 0.99, 1} {
			s := make([]float32, n)
			for i := range s {
				s[i] = float32(r.IntN(20)) // many duplicates
			}
			sorted := slices.Clone(s)
			slices.Sort(sorted)
			k := quantileIndex(n, q)
			if got := selectK(slices.Clone(s), k); got != sorted[k] {
				t.Fatalf("n=%d q=%v: selectK = %v, sort = %v", n, q, got, sorted[k])
			}
		}
	}
}

// FuzzCompute plans random clusters (shape from the fuzzer) with every action and checks the invariants that
// hold for any input: no panic, no constraint violation, a decision for every move.
func FuzzCompute(f *testing.F) {
	f.Add(uint64(1), uint8(3), uint8(12), uint8(0), uint8(50))
	f.Add(uint64(7), uint8(1), uint8(3), uint8(2), uint8(0))
	f.Add(uint64(99), uint8(6), uint8(40), uint8(3), uint8(90))
	f.Add(uint64(5), uint8(2), uint8(0), uint8(4), uint8(10))
	f.Fuzz(func(t *testing.T, seed uint64, nodes, guests, action, hot uint8) {
		spec := genSpec{seed: seed, nodes: 1 + int(nodes%8), guests: int(guests % 60), hot: float64(hot%101) / 100,
			constraints: seed%2 == 0, peakAmp: float64(seed%7) / 5, cpuBusy: 0.1 + float64(seed%5)/10}
		st := generate(spec) // with no guests, node series are empty: the planner must cope
		req := []Request{rebalance, repair, spread, evacuate("pve01"), relieve("pve01")}[action%5]
		pol := DefaultPolicy()
		pol.MaxMoves = 0
		p, err := Compute(st, pol, req)
		if err != nil {
			t.Fatalf("Compute: %v", err)
		}
		for _, v := range violations(st, pol, p) {
			t.Errorf("%s: %s", req.Action, v)
		}
		checkPlanInvariants(t, st, p)
	})
}
