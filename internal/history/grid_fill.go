package history

import (
	"math"
	"strings"

	"github.com/prometheus/common/model"
)

// entityKind says whether a series belongs to a node or a guest.
type entityKind uint8

const (
	nodeEntity entityKind = iota + 1
	guestEntity
)

// target is the series of the snapshot that one Prometheus series feeds.
type target struct {
	kind entityKind
	key  string // node name or guest id
	sig  Signal
}

// router maps a Prometheus series' labels to its target; ok is false for series the snapshot does not keep.
type router func(model.Metric) (target, bool)

// entityOf splits a PVE id label: "node/pve1" is node pve1, "qemu/100" and "lxc/101" are guests.
func entityOf(id string) (entityKind, string, bool) {
	if name, ok := strings.CutPrefix(id, "node/"); ok && name != "" {
		return nodeEntity, name, true
	}
	if rest, ok := strings.CutPrefix(id, "qemu/"); ok && rest != "" {
		return guestEntity, id, true
	}
	if rest, ok := strings.CutPrefix(id, "lxc/"); ok && rest != "" {
		return guestEntity, id, true
	}
	return 0, "", false
}

// fixedSignal routes every series by its id to one signal.
func fixedSignal(sig Signal) router {
	return func(m model.Metric) (target, bool) {
		kind, key, ok := entityOf(string(m["id"]))
		return target{kind: kind, key: key, sig: sig}, ok
	}
}

// routePressure routes PSI series by id and their resource and kind labels.
func routePressure(m model.Metric) (target, bool) {
	kind, key, ok := entityOf(string(m["id"]))
	if !ok {
		return target{}, false
	}
	sig, ok := pressureSignal(string(m["resource"]), string(m["kind"]))
	return target{kind: kind, key: key, sig: sig}, ok
}

// byDirection routes series by id and the direction label the query adds.
func byDirection(dirs map[string]Signal) router {
	return func(m model.Metric) (target, bool) {
		kind, key, ok := entityOf(string(m["id"]))
		if !ok {
			return target{}, false
		}
		sig, ok := dirs[string(m[directionLabel])]
		return target{kind: kind, key: key, sig: sig}, ok
	}
}

// fillStats counts what fill could not use.
type fillStats struct {
	Unrouted int // series without a known id (or PSI resource/kind, or direction)
	OffGrid  int // samples outside the grid or between its points
}

var nan32 = float32(math.NaN())

// fill writes the samples of m onto the snapshot's grid, at points before until. A point that already has a
// value keeps the larger of the two: two Prometheus series feed one target only when they overlap around a
// migration (a recorded series' node label changed, the old one not yet stale), and for capacity planning the
// higher reading is the safe one. NaN samples (0/0 in PromQL) count as missing.
func (s *Snapshot) fill(m model.Matrix, route router, until int) fillStats {
	var st fillStats
	g := s.Grid
	until = min(until, g.Count)
	dst := make([]*Series, len(m))
	need := 0
	for i, stream := range m {
		t, ok := route(stream.Metric)
		if !ok {
			st.Unrouted++
			continue
		}
		ser := &s.entity(t.kind, t.key).Series[t.sig]
		if ser.Values == nil {
			need++
		}
		dst[i] = ser
	}
	// One allocation for every new series keeps a 5,000-guest conversion cheap for the allocator and the GC.
	// Duplicates over-count need slightly; the unused tail is garbage with the rest.
	arena := make([]float32, need*g.Count)
	for i := range arena {
		arena[i] = nan32
	}
	startMs, stepMs, count := g.Start.UnixMilli(), g.Step.Milliseconds(), int64(g.Count)
	for i, stream := range m {
		ser := dst[i]
		if ser == nil {
			continue
		}
		if ser.Values == nil {
			ser.Values, arena = arena[:g.Count:g.Count], arena[g.Count:]
		}
		vals := ser.Values
		// Range query results sit exactly on the grid, so the next sample is usually at the next point: predicting
		// it avoids a division per sample.
		nextTs, nextIdx := int64(-1)<<62, int64(0)
		for _, p := range stream.Values {
			ts := int64(p.Timestamp)
			q := nextIdx
			if ts != nextTs || q >= count {
				d := ts - startMs
				q = d / stepMs
				if d < 0 || q*stepMs != d || q >= count {
					st.OffGrid++
					continue
				}
			}
			nextTs, nextIdx = ts+stepMs, q+1
			if q >= int64(until) {
				continue
			}
			v := float32(p.Value)
			if isNaN32(v) {
				continue
			}
			switch old := vals[q]; {
			case isNaN32(old):
				vals[q] = v
				ser.Present++
			case v > old:
				vals[q] = v
			}
		}
	}
	return st
}

// entity returns the node or guest entry for key, creating it.
func (s *Snapshot) entity(kind entityKind, key string) *Entity {
	m := s.Guests
	if kind == nodeEntity {
		m = s.Nodes
	}
	e := m[key]
	if e == nil {
		e = &Entity{}
		m[key] = e
	}
	return e
}

// newSnapshot returns an empty snapshot on g.
func newSnapshot(g Grid) *Snapshot {
	return &Snapshot{Grid: g, Nodes: map[string]*Entity{}, Guests: map[string]*Entity{}}
}
