package history

import (
	"math"
	"slices"
	"time"
)

// Signal is one measured quantity of a node or guest.
type Signal uint8

// Signals, in absolute units. CPU, Memory and IOWait are the core signals: they are what the planner balances and
// what Coverage measures. The rest are optional and present only where the exporter sends them.
const (
	CPU                Signal = iota // CPU cores in use
	Memory                           // bytes of memory in use
	IOWait                           // share of CPU time waiting for I/O, 0..1 (nodes only)
	PressureCPUSome                  // PSI: share of time some tasks stalled on CPU, 0..1
	PressureCPUFull                  // PSI: share of time all tasks stalled on CPU
	PressureIOSome                   // PSI: some tasks stalled on I/O
	PressureIOFull                   // PSI: all tasks stalled on I/O
	PressureMemorySome               // PSI: some tasks stalled on memory
	PressureMemoryFull               // PSI: all tasks stalled on memory
	NetReceive                       // network bytes received per second
	NetTransmit                      // network bytes sent per second
	DiskRead                         // disk bytes read per second
	DiskWrite                        // disk bytes written per second
	numSignals
)

var signalNames = [numSignals]string{
	CPU: "cpu", Memory: "memory", IOWait: "iowait",
	PressureCPUSome: "pressure_cpu_some", PressureCPUFull: "pressure_cpu_full",
	PressureIOSome: "pressure_io_some", PressureIOFull: "pressure_io_full",
	PressureMemorySome: "pressure_memory_some", PressureMemoryFull: "pressure_memory_full",
	NetReceive: "net_receive", NetTransmit: "net_transmit", DiskRead: "disk_read", DiskWrite: "disk_write",
}

func (s Signal) String() string {
	if s < numSignals {
		return signalNames[s]
	}
	return "unknown"
}

// pressureSignal maps the exporter's PSI labels (resource, kind) to a signal.
func pressureSignal(resource, kind string) (Signal, bool) {
	switch resource + "/" + kind {
	case "cpu/some":
		return PressureCPUSome, true
	case "cpu/full":
		return PressureCPUFull, true
	case "io/some":
		return PressureIOSome, true
	case "io/full":
		return PressureIOFull, true
	case "memory/some":
		return PressureMemorySome, true
	case "memory/full":
		return PressureMemoryFull, true
	}
	return 0, false
}

// Series is one signal of one node or guest on the snapshot's grid.
type Series struct {
	// Values has one entry per grid point, NaN where Prometheus had no sample. It is nil when Prometheus had no
	// series at all. Views of a Snapshot share it: treat it as read-only.
	Values []float32
	// Present counts the non-NaN values.
	Present int
}

// Coverage is the fraction of grid points that have a value (0 for a missing series).
func (s Series) Coverage() float64 {
	if len(s.Values) == 0 {
		return 0
	}
	return float64(s.Present) / float64(len(s.Values))
}

// Summary describes the present values of a series.
type Summary struct {
	Mean, Max, P95 float64
	// Last is the value of the latest present point, at LastIndex; LastIndex is -1 when nothing is present.
	Last      float64
	LastIndex int
	Present   int
	Coverage  float64
}

// Summarize computes mean, maximum, 95th percentile (nearest rank) and the latest value over the present points.
// A series without values has NaN statistics and LastIndex -1.
func (s Series) Summarize() Summary {
	sum := Summary{Mean: math.NaN(), Max: math.NaN(), P95: math.NaN(), Last: math.NaN(), LastIndex: -1,
		Present: s.Present, Coverage: s.Coverage()}
	if s.Present == 0 {
		return sum
	}
	vals := make([]float64, 0, s.Present)
	var total float64
	for i, v := range s.Values {
		if isNaN32(v) {
			continue
		}
		f := float64(v)
		vals = append(vals, f)
		total += f
		sum.Last, sum.LastIndex = f, i
	}
	slices.Sort(vals)
	sum.Mean = total / float64(len(vals))
	sum.Max = vals[len(vals)-1]
	rank := int(math.Ceil(0.95*float64(len(vals)))) - 1
	sum.P95 = vals[max(rank, 0)]
	return sum
}

func isNaN32(v float32) bool { return v != v }

// Entity is every signal of one node or guest.
type Entity struct {
	Series [numSignals]Series
}

// Get returns one signal's series; a nil Entity has only missing series.
func (e *Entity) Get(s Signal) Series {
	if e == nil || s >= numSignals {
		return Series{}
	}
	return e.Series[s]
}

// Fallback records that raw exporter metrics stood in for a recording rule over [From, Until] (grid point times).
type Fallback struct {
	Query       string // the signal query's name, e.g. "guest_cpu"
	From, Until time.Time
}

// QueryRecord is one range query a Fetch made, for logs and explanations.
type QueryRecord struct {
	Name     string
	Expr     string
	Start    time.Time
	End      time.Time
	Step     time.Duration
	Series   int
	Duration time.Duration
}

// Snapshot is the history of one cluster on one grid.
type Snapshot struct {
	Grid Grid
	// Nodes is keyed by node name ("pve1"), Guests by PVE id ("qemu/100").
	Nodes  map[string]*Entity
	Guests map[string]*Entity
	// Fallbacks lists where raw metrics replaced a recording rule that had no data.
	Fallbacks []Fallback
	// Warnings are Prometheus' warnings and this package's own remarks (series off the grid, signals without
	// any data); none of them made the snapshot unusable.
	Warnings []string
	Queries  []QueryRecord
}

// coreSignals are the signals Coverage counts, per kind of entity.
var (
	nodeCoreSignals  = []Signal{CPU, Memory, IOWait}
	guestCoreSignals = []Signal{CPU, Memory}
)

// NodeCoverage is the fraction of grid points present over the node's core signals (0 for an unknown node).
func (s *Snapshot) NodeCoverage(name string) float64 {
	return entityCoverage(s.Nodes[name], nodeCoreSignals, s.Grid.Count)
}

// GuestCoverage is the fraction of grid points present over the guest's core signals (0 for an unknown guest).
func (s *Snapshot) GuestCoverage(id string) float64 {
	return entityCoverage(s.Guests[id], guestCoreSignals, s.Grid.Count)
}

// Coverage is the fraction of expected points present over the core signals of every node and guest that has
// at least one core series: 1 for complete history, lower for short history, gaps, or an entity missing one of
// its core signals. Entities seen only in optional signals (a stopped guest's network counters, say) do not
// count: Prometheus has no core history for them because there is none to have. It is 0 for an empty snapshot.
func (s *Snapshot) Coverage() float64 {
	var present, expected int
	for _, e := range s.Nodes {
		if hasAny(e, nodeCoreSignals) {
			p, n := entityPoints(e, nodeCoreSignals, s.Grid.Count)
			present, expected = present+p, expected+n
		}
	}
	for _, e := range s.Guests {
		if hasAny(e, guestCoreSignals) {
			p, n := entityPoints(e, guestCoreSignals, s.Grid.Count)
			present, expected = present+p, expected+n
		}
	}
	if expected == 0 {
		return 0
	}
	return float64(present) / float64(expected)
}

func hasAny(e *Entity, sigs []Signal) bool {
	for _, sig := range sigs {
		if e.Get(sig).Values != nil {
			return true
		}
	}
	return false
}

func entityCoverage(e *Entity, sigs []Signal, count int) float64 {
	p, n := entityPoints(e, sigs, count)
	if n == 0 {
		return 0
	}
	return float64(p) / float64(n)
}

func entityPoints(e *Entity, sigs []Signal, count int) (present, expected int) {
	for _, sig := range sigs {
		present += e.Get(sig).Present
	}
	return present, len(sigs) * count
}

// Window returns a view of the snapshot's last d (rounded up to whole steps; all of it when d is longer), sharing
// the value slices. Fallbacks, Warnings and Queries are the snapshot's own.
func (s *Snapshot) Window(d time.Duration) *Snapshot {
	n := pointsFor(d, s.Grid.Step)
	g, off := s.Grid.Tail(n)
	v := &Snapshot{
		Grid:      g,
		Nodes:     make(map[string]*Entity, len(s.Nodes)),
		Guests:    make(map[string]*Entity, len(s.Guests)),
		Fallbacks: s.Fallbacks,
		Warnings:  s.Warnings,
		Queries:   s.Queries,
	}
	for k, e := range s.Nodes {
		v.Nodes[k] = e.tail(off)
	}
	for k, e := range s.Guests {
		v.Guests[k] = e.tail(off)
	}
	return v
}

func (e *Entity) tail(off int) *Entity {
	t := &Entity{}
	for i, s := range e.Series {
		if s.Values == nil {
			continue
		}
		vals := s.Values[off:]
		t.Series[i] = Series{Values: vals, Present: countPresent(vals)}
	}
	return t
}

func countPresent(vals []float32) int {
	n := 0
	for _, v := range vals {
		if !isNaN32(v) {
			n++
		}
	}
	return n
}
