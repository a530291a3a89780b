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
		part := mt.Series[i:min(i+chunk, len(mt.Series))]
		w.buf = slices.Grow(w.buf[:0], 4*len(part))[:4*len(part)]
		for j, v := range part {
			binary.LittleEndian.PutUint32(w.buf[4*j:], math.Float32bits(v))
		}
		w.h.Write(w.buf)
	}
}
