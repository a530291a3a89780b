package placement

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"math"
	"slices"
	"strings"
	"time"
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

// planID hashes everything the plan depends on, so equal inputs give equal IDs and any change gives another.
func planID(st State, pol Policy, req Request) string {
	h := sha256.New()
	w := idWriter{h: h}
	w.str(string(req.Action), req.Node, req.Trigger, fmt.Sprintf("%+v", pol))
	w.time(st.Now)
	w.time(st.End)
	w.u64(uint64(st.Step))
	// Inputs are hashed in name order: the planner's result does not depend on input order, neither does the ID.
	nodes := slices.Clone(st.Nodes)
	slices.SortFunc(nodes, func(a, b Node) int { return strings.Compare(a.Name, b.Name) })
	guests := slices.Clone(st.Guests)
	slices.SortFunc(guests, func(a, b Guest) int { return strings.Compare(a.ID, b.ID) })
	inflight := slices.Clone(st.InFlight)
	slices.SortFunc(inflight, func(a, b Migration) int { return strings.Compare(a.Guest, b.Guest) })
	w.u64(uint64(len(nodes)))
	for _, n := range nodes {
		w.str(n.Name)
		w.bools(n.Online, n.Maintenance, n.StoragesKnown)
		w.u64(uint64(n.CPUs), n.MemoryBytes, uint64(len(n.Storages)))
		for _, s := range n.Storages {
			w.str(s.Name)
			w.bools(s.Enabled, s.Active, s.Shared, s.AvailKnown)
			w.u64(s.AvailBytes)
		}
		w.metric(n.Load.CPU)
		w.metric(n.Load.Memory)
		w.metric(n.Load.IOWait)
	}
	w.u64(uint64(len(guests)))
	for _, g := range guests {
		w.str(g.ID, string(g.Type), g.Name, g.Node, g.Lock)
		w.bools(g.Running, g.Template, g.HAManaged)
		w.u64(uint64(g.VCPUs), g.MemoryBytes, uint64(len(g.Tags)))
		w.str(g.Tags...)
		w.u64(uint64(len(g.Disks)))
		for _, d := range g.Disks {
			w.str(d.Key, d.Storage)
			w.u64(d.SizeBytes)
			w.bools(d.Shared)
		}
		w.u64(uint64(len(g.LocalDevices)))
		w.str(g.LocalDevices...)
		w.u64(uint64(len(g.BindMounts)))
		for _, b := range g.BindMounts {
			w.str(b.Key, b.Source)
			w.bools(b.Shared)
		}
		w.metric(g.Demand.CPU)
		w.metric(g.Demand.Memory)
		w.metric(g.Demand.DiskIO)
	}
	w.u64(uint64(len(inflight)))
	for _, mg := range inflight {
		w.str(mg.Guest, mg.Source, mg.Target)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// idWriter feeds length-prefixed, fixed-endian values to a hash, batching series through one buffer.
type idWriter struct {
	h   hash.Hash
	buf []byte
}

func (w *idWriter) u64(vs ...uint64) {
	w.buf = w.buf[:0]
	for _, v := range vs {
		w.buf = binary.LittleEndian.AppendUint64(w.buf, v)
	}
	w.h.Write(w.buf)
}

func (w *idWriter) str(ss ...string) {
	for _, s := range ss {
		w.u64(uint64(len(s)))
		w.h.Write([]byte(s))
	}
}

func (w *idWriter) bools(bs ...bool) {
	w.buf = w.buf[:0]
	for _, b := range bs {
		if b {
			w.buf = append(w.buf, 1)
		} else {
			w.buf = append(w.buf, 0)
		}
	}
	w.h.Write(w.buf)
}

func (w *idWriter) time(t time.Time) { w.u64(uint64(t.UnixNano())) }

func (w *idWriter) f64(vs ...float64) {
	for _, v := range vs {
		w.u64(math.Float64bits(v))
	}
}

func (w *idWriter) metric(mt Metric) {
	w.f64(mt.Coverage)
	if mt.Summary != nil {
		w.f64(1, mt.Summary.Avg24h, mt.Summary.Avg7d, mt.Summary.P95)
	} else {
		w.f64(0)
	}
	w.u64(uint64(len(mt.Series)))
	const chunk = 4096
	for i := 0; i < len(mt.Series); i += chunk {
		w.buf = w.buf[:0]
		for _, v := range mt.Series[i:min(i+chunk, len(mt.Series))] {
			w.buf = binary.LittleEndian.AppendUint32(w.buf, math.Float32bits(v))
		}
		w.h.Write(w.buf)
	}
}
