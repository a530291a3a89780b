package placement

import (
	"fmt"
	"math"
	"slices"
)

// Apply returns st as it would be after the plan's moves: each moved guest's Node is its target and its demand
// series is subtracted from the source's usage and added to the target's (iowait moves with the guest's share
// of its node's disk throughput, as the planner attributes it). st is not modified; series that change are
// copied. Use it to replay plans against stored history and to check that re-planning proposes nothing.
func Apply(st State, plan Plan) (State, error) {
	out := st
	out.Nodes = slices.Clone(st.Nodes)
	out.Guests = slices.Clone(st.Guests)
	nodeIdx := map[string]int{}
	for i, n := range out.Nodes {
		nodeIdx[n.Name] = i
	}
	guestIdx := map[string]int{}
	for i, g := range out.Guests {
		guestIdx[g.ID] = i
	}
	owned := map[*float32]bool{} // series already copied
	mutable := func(s Series) Series {
		if len(s) == 0 || owned[&s[0]] {
			return s
		}
		c := slices.Clone(s)
		owned[&c[0]] = true
		return c
	}
	for _, mv := range plan.Moves {
		gi, ok := guestIdx[mv.Guest]
		if !ok {
			return State{}, fmt.Errorf("move of %s: unknown guest", mv.Guest)
		}
		g := &out.Guests[gi]
		si, ok1 := nodeIdx[mv.Source]
		ti, ok2 := nodeIdx[mv.Target]
		if !ok1 || !ok2 || g.Node != mv.Source {
			return State{}, fmt.Errorf("move of %s from %s to %s: guest is on %s", mv.Guest, mv.Source, mv.Target, g.Node)
		}
		src, dst := &out.Nodes[si], &out.Nodes[ti]
		ioShare := diskIOShare(out.Guests, *g)
		for _, pair := range []struct {
			node  *Metric
			other *Metric
			guest Series
		}{
			{&src.Load.CPU, &dst.Load.CPU, g.Demand.CPU.Series},
			{&src.Load.Memory, &dst.Load.Memory, g.Demand.Memory.Series},
		} {
			if pair.guest == nil {
				continue
			}
			shift(pair.node, pair.guest, -1, mutable)
			shift(pair.other, pair.guest, 1, mutable)
		}
		if ioShare > 0 && src.Load.IOWait.Series != nil {
			part := make(Series, len(src.Load.IOWait.Series))
			for i, v := range src.Load.IOWait.Series {
				part[i] = v * float32(ioShare)
			}
			shift(&src.Load.IOWait, part, -1, mutable)
			shift(&dst.Load.IOWait, part, 1, mutable)
		}
		g.Node = mv.Target
	}
	return out, nil
}

// shift adds sign·s to the metric's series (allocating one when the target had none).
func shift(mt *Metric, s Series, sign float32, mutable func(Series) Series) {
	if mt.Series == nil {
		mt.Series = make(Series, len(s))
	}
	mt.Series = mutable(mt.Series)
	for i, v := range s {
		if finite(v) && finite(mt.Series[i]) {
			mt.Series[i] = max(mt.Series[i]+sign*v, 0)
		}
	}
}

// diskIOShare is g's share of the mean disk throughput of the guests on its node (0 without data).
func diskIOShare(guests []Guest, g Guest) float64 {
	if g.Demand.DiskIO.Series == nil {
		return 0
	}
	var total float64
	for _, o := range guests {
		if o.Node == g.Node {
			total += meanTail(o.Demand.DiskIO.Series, math.MaxInt)
		}
	}
	if total <= 0 {
		return 0
	}
	return meanTail(g.Demand.DiskIO.Series, math.MaxInt) / total
}
