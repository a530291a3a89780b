package placement

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// windows are the three averaging windows of a load, in the metric's unit.
type windows struct{ cur, day, week float64 }

func (w windows) plus(o windows, sign float64) windows {
	return windows{w.cur + sign*o.cur, w.day + sign*o.day, w.week + sign*o.week}
}

// blend mixes the windows with the policy's weights.
func (w windows) blend(p WindowWeights) float64 {
	return p.Current*w.cur + p.Day*w.day + p.Week*w.week
}

// nodeM is a node as the simulation sees it: its load series are mutated as moves are applied.
type nodeM struct {
	idx    int
	spec   *Node
	name   string
	online bool
	// usable is online and not in maintenance: the node may receive guests.
	usable   bool
	cpus     float64
	memBytes float64
	// cpu and mem are the load series (node usage, never less than the sum of its guests' demand).
	cpu, mem []float32
	cpuW     windows
	memCur   float64
	ioW      windows
	// cpuPeak and memPeak cache the quantiles of cpu and mem.
	cpuPeak, memPeak float64
	coverage         float64
	storages         map[string]StorageState
	// vcpus sums the vCPUs of running guests; groups counts guests per exclude group; guests counts all.
	vcpus  float64
	groups map[string]int
	small  int
	guests int
}

// guestM is a guest with its demand normalised.
type guestM struct {
	idx  int
	spec *Guest
	id   string
	// node is where the guest is in the simulation; inflight is the target of a running migration or −1, and
	// inflightFrom its source (usually node; PVE may already list the guest on the target).
	node         int
	inflight     int
	inflightFrom int
	demandStats
	vcpus float64
	// excludes, affinities and pins are the group/node names of exclude_, affinity_ and pin_ tags, sorted.
	excludes, affinities, pins []string
	ignore                     bool
	storages                   []string
	// localDisk is bytes of unshared disks per storage, sorted by storage.
	localDisk      []storageBytes
	localDiskBytes uint64
	unit           int
	small          bool
	// moved is set once the simulation moved the guest; origin is the node it was on in the State.
	moved  bool
	origin int
}

type storageBytes struct {
	storage string
	bytes   uint64
}

// unitM is what moves together: one guest, or a whole affinity group.
type unitM struct {
	idx     int
	members []int
	group   string
	// split is true when an affinity group's members are on different nodes.
	split bool
	demandStats
	vcpus float64
}

// demandStats is the normalised demand of a guest or a unit: series in cores and bytes, window averages
// (iowait windows as attributed ratios), the series' extremes (for bounds) and the data coverage.
type demandStats struct {
	cpu, mem     []float32
	cpuW         windows
	memCur       float64
	ioW          windows
	cpuLo, cpuHi float64
	memLo, memHi float64
	coverage     float64
}

// model is the normalised snapshot plus the simulation's mutable state.
type model struct {
	pol        Policy
	T          int
	nCur, nDay int
	nodes      []*nodeM
	guests     []*guestM
	units      []*unitM
	nodeByName map[string]int
	scratch    []float32
	// evacuation relaxes tag gates and lets affinity groups split.
	evacuation bool
}

// day is the length of the 24 h window (7 of them make the week window).
const day = 24 * time.Hour

// newModel normalises st: sorts nodes and guests, fills gaps, computes node loads as max(usage, Σ guests) and
// the windows, and forms units. It returns an error for input that cannot be planned on.
func newModel(st State, pol Policy, evacuation bool) (*model, error) {
	m := &model{pol: pol, nodeByName: make(map[string]int, len(st.Nodes)), evacuation: evacuation}
	T := 0
	lengths := func(what string, s Series) error {
		if len(s) == 0 {
			return nil // missing: replaced below
		}
		if T == 0 {
			T = len(s)
		} else if len(s) != T {
			return fmt.Errorf("%s: series has %d samples, others have %d", what, len(s), T)
		}
		return nil
	}
	for i := range st.Nodes {
		n := &st.Nodes[i]
		for _, x := range []struct {
			k string
			s Series
		}{{"cpu", n.Load.CPU.Series}, {"memory", n.Load.Memory.Series}, {"iowait", n.Load.IOWait.Series}} {
			if err := lengths("node "+n.Name+" "+x.k, x.s); err != nil {
				return nil, err
			}
		}
	}
	for i := range st.Guests {
		g := &st.Guests[i]
		for _, x := range []struct {
			k string
			s Series
		}{{"cpu", g.Demand.CPU.Series}, {"memory", g.Demand.Memory.Series}, {"diskio", g.Demand.DiskIO.Series}} {
			if err := lengths("guest "+g.ID+" "+x.k, x.s); err != nil {
				return nil, err
			}
		}
	}
	step := st.Step
	if T > 1 && step <= 0 {
		return nil, fmt.Errorf("state: step %v must be positive for series of %d samples", step, T)
	}
	if T == 0 {
		T = 1 // no history at all: one synthetic sample per metric (from Summary or conservative values)
	}
	if step <= 0 {
		step = 5 * time.Minute // a single sample: the step only sizes the windows
	}
	m.T = T
	m.scratch = make([]float32, T)
	m.nCur = max(1, int(pol.CurrentWindow/step))
	m.nDay = max(1, int(day/step))
	nWeek := 7 * m.nDay

	// Nodes, sorted by name.
	nodeSpecs := make([]*Node, len(st.Nodes))
	for i := range st.Nodes {
		nodeSpecs[i] = &st.Nodes[i]
	}
	slices.SortFunc(nodeSpecs, func(a, b *Node) int { return strings.Compare(a.Name, b.Name) })
	for i, n := range nodeSpecs {
		if n.Name == "" {
			return nil, fmt.Errorf("node %d: empty name", i)
		}
		if _, dup := m.nodeByName[n.Name]; dup {
			return nil, fmt.Errorf("node %s: listed twice", n.Name)
		}
		if n.CPUs <= 0 || n.MemoryBytes == 0 {
			if n.Online {
				return nil, fmt.Errorf("node %s: online with %d CPUs and %d bytes of memory", n.Name, n.CPUs, n.MemoryBytes)
			}
		}
		m.nodeByName[n.Name] = i
		nm := &nodeM{
			idx: i, spec: n, name: n.Name, online: n.Online, usable: n.Online && !n.Maintenance,
			cpus: float64(max(n.CPUs, 1)), memBytes: float64(max(n.MemoryBytes, 1)),
			cpu: make([]float32, T), mem: make([]float32, T), groups: map[string]int{},
		}
		if n.StoragesKnown {
			nm.storages = make(map[string]StorageState, len(n.Storages))
			for _, s := range n.Storages {
				nm.storages[s.Name] = s
			}
		}
		m.nodes = append(m.nodes, nm)
	}

	// Guests, sorted by ID.
	guestSpecs := make([]*Guest, len(st.Guests))
	for i := range st.Guests {
		guestSpecs[i] = &st.Guests[i]
	}
	slices.SortFunc(guestSpecs, func(a, b *Guest) int { return strings.Compare(a.ID, b.ID) })
	inflight := map[string]Migration{}
	for _, mg := range st.InFlight {
		inflight[mg.Guest] = mg
	}
	seen := map[string]bool{}
	ioSum := make([]float64, len(m.nodes))
	for i, g := range guestSpecs {
		if g.ID == "" {
			return nil, fmt.Errorf("guest %d: empty ID", i)
		}
		if seen[g.ID] {
			return nil, fmt.Errorf("guest %s: listed twice", g.ID)
		}
		seen[g.ID] = true
		ni, ok := m.nodeByName[g.Node]
		if !ok {
			return nil, fmt.Errorf("guest %s: on unknown node %q", g.ID, g.Node)
		}
		gm := &guestM{idx: i, spec: g, id: g.ID, node: ni, origin: ni, inflight: -1}
		if mg, ok := inflight[g.ID]; ok {
			ti, ok := m.nodeByName[mg.Target]
			if !ok {
				return nil, fmt.Errorf("in-flight migration of %s: unknown target %q", g.ID, mg.Target)
			}
			si, ok := m.nodeByName[mg.Source]
			if !ok {
				si = ni // the source is where the guest is listed unless named
			}
			gm.inflight, gm.inflightFrom = ti, si
		}
		gm.vcpus = float64(g.VCPUs)
		if g.VCPUs <= 0 {
			gm.vcpus = m.nodes[ni].cpus
		}
		for _, t := range g.Tags {
			t = strings.ToLower(strings.TrimSpace(t))
			switch {
			case t == "ignore":
				gm.ignore = true
			case strings.HasPrefix(t, "exclude_") && len(t) > len("exclude_"):
				gm.excludes = append(gm.excludes, t)
			case strings.HasPrefix(t, "affinity_") && len(t) > len("affinity_"):
				gm.affinities = append(gm.affinities, t)
			case strings.HasPrefix(t, "pin_") && len(t) > len("pin_"):
				gm.pins = append(gm.pins, strings.TrimPrefix(t, "pin_"))
			}
		}
		slices.Sort(gm.excludes)
		gm.excludes = slices.Compact(gm.excludes)
		slices.Sort(gm.affinities)
		gm.affinities = slices.Compact(gm.affinities)
		slices.Sort(gm.pins)
		gm.pins = slices.Compact(gm.pins)
		local := map[string]uint64{}
		for _, d := range g.Disks {
			if d.Storage == "" {
				continue
			}
			gm.storages = append(gm.storages, d.Storage)
			if !d.Shared {
				local[d.Storage] += d.SizeBytes
				gm.localDiskBytes += d.SizeBytes
			}
		}
		slices.Sort(gm.storages)
		gm.storages = slices.Compact(gm.storages)
		for _, s := range gm.storages {
			if b, ok := local[s]; ok {
				gm.localDisk = append(gm.localDisk, storageBytes{s, b})
			}
		}
		gm.small = g.VCPUs > 0 && g.VCPUs <= pol.Distribute.SmallCPUs && g.MemoryBytes <= pol.Distribute.SmallMemoryBytes
		m.guests = append(m.guests, gm)
	}
	// Demand statistics are independent per guest: computed on fixed chunks in parallel (the result does not
	// depend on the chunking), everything order-sensitive stays sequential.
	const chunk = 512
	var wg sync.WaitGroup
	for lo := 0; lo < len(m.guests); lo += chunk {
		wg.Go(func() {
			for _, gm := range m.guests[lo:min(lo+chunk, len(m.guests))] {
				m.normaliseDemand(gm, nWeek)
			}
		})
	}
	wg.Wait()
	for _, gm := range m.guests {
		ioSum[gm.node] += gm.ioW.week
	}

	// Node loads: max(usage, Σ guests on the node and in flight to it), per sample.
	sumCPU := make([][]float32, len(m.nodes))
	sumMem := make([][]float32, len(m.nodes))
	for i := range m.nodes {
		sumCPU[i] = make([]float32, T)
		sumMem[i] = make([]float32, T)
	}
	for _, g := range m.guests {
		for _, ni := range g.nodesHeld() {
			addInto(sumCPU[ni], g.cpu, 1)
			addInto(sumMem[ni], g.mem, 1)
		}
	}
	for i, n := range m.nodes {
		ld := &n.spec.Load
		cpu, cpuCov := m.metricSeries(ld.CPU, func() float64 { return 0 })
		mem, memCov := m.metricSeries(ld.Memory, func() float64 { return 0 })
		for t := range T {
			n.cpu[t] = max(cpu[t], sumCPU[i][t])
			n.mem[t] = max(mem[t], sumMem[i][t])
		}
		n.coverage = min(cpuCov, memCov)
		n.cpuW, _, _ = m.windowsOf(n.cpu, ld.CPU.Summary, nWeek)
		n.memCur = meanTail(n.mem, m.nCur)
		io, _ := m.metricSeries(ld.IOWait, func() float64 { return 0 })
		n.ioW, _, _ = m.windowsOf(io, ld.IOWait.Summary, nWeek)
		m.refreshPeaks(n)
	}
	// Attribute each node's iowait to its guests in proportion to their disk throughput.
	for _, g := range m.guests {
		if g.ioW == (windows{}) || ioSum[g.node] <= 0 {
			g.ioW = windows{}
			continue
		}
		share, nw := g.ioW.week/ioSum[g.node], m.nodes[g.node].ioW
		g.ioW = windows{nw.cur * share, nw.day * share, nw.week * share}
	}
	for _, g := range m.guests {
		for _, ni := range g.nodesHeld() {
			m.nodes[ni].account(g, 1)
		}
	}
	m.formUnits()
	return m, nil
}

// normaliseDemand fills the guest's demand series and statistics. A missing series is replaced by a flat,
// conservative one (its Summary's p95, else the configured size when running) with coverage 0, so the guest is
// never moved on a guess.
func (m *model) normaliseDemand(gm *guestM, nWeek int) {
	g := gm.spec
	var cpuCov, memCov float64
	gm.cpu, cpuCov = m.metricSeries(g.Demand.CPU, func() float64 {
		if g.Running {
			return gm.vcpus
		}
		return 0
	})
	gm.mem, memCov = m.metricSeries(g.Demand.Memory, func() float64 {
		if g.Running {
			return float64(g.MemoryBytes)
		}
		return 0
	})
	gm.coverage = min(cpuCov, memCov)
	gm.cpuW, gm.cpuLo, gm.cpuHi = m.windowsOf(gm.cpu, g.Demand.CPU.Summary, nWeek)
	var memW windows
	memW, gm.memLo, gm.memHi = m.windowsOf(gm.mem, nil, nWeek)
	gm.memCur = memW.cur
	if len(g.Demand.DiskIO.Series) > 0 || g.Demand.DiskIO.Summary != nil {
		io, _ := m.metricSeries(g.Demand.DiskIO, func() float64 { return 0 })
		gm.ioW, _, _ = m.windowsOf(io, g.Demand.DiskIO.Summary, nWeek) // bytes/s; turned into iowait later
	}
}

// nodesHeld lists the nodes that count the guest: its node, and the source and target of an in-flight
// migration.
func (g *guestM) nodesHeld() []int {
	held := []int{g.node}
	if g.inflight >= 0 {
		for _, n := range []int{g.inflightFrom, g.inflight} {
			if !slices.Contains(held, n) {
				held = append(held, n)
			}
		}
	}
	return held
}

// account adds (sign +1) or removes (−1) a guest's bookkeeping (not its series) on n.
func (n *nodeM) account(g *guestM, sign int) {
	if g.spec.Running {
		n.vcpus += float64(sign) * g.vcpus
	}
	for _, x := range g.excludes {
		n.groups[x] += sign
	}
	if g.small {
		n.small += sign
	}
	n.guests += sign
}

// metricSeries returns the metric's gap-filled series and coverage; a missing series becomes a flat one at the
// Summary's p95 or, without a Summary, at fallback(), with coverage 0.
func (m *model) metricSeries(mt Metric, fallback func() float64) ([]float32, float64) {
	if len(mt.Series) == m.T {
		s, share := fillGaps(mt.Series)
		if s != nil {
			return s, clamp01(mt.Coverage) * share
		}
	}
	v := fallback()
	cov := 0.0
	if mt.Summary != nil {
		v = mt.Summary.P95
		cov = clamp01(mt.Coverage)
	}
	s := make([]float32, m.T)
	for i := range s {
		s[i] = float32(v)
	}
	return s, cov
}

// windowsOf averages s over the current, 24 h and 7 d windows, and returns its minimum and maximum, in one
// pass; when s is shorter than a window and a Summary exists, the Summary's figure is used for that window.
func (m *model) windowsOf(s []float32, sum *Summary, nWeek int) (w windows, lo, hi float64) {
	n := len(s)
	if n == 0 {
		return windows{}, 0, 0
	}
	nCur, nDay, nWk := min(m.nCur, n), min(m.nDay, n), min(nWeek, n)
	var sCur, sDay, sWeek float64
	l, h := s[0], s[0]
	for i, v := range s {
		l, h = min(l, v), max(h, v)
		back := n - i // 1 for the last sample
		if back <= nWk {
			sWeek += float64(v)
			if back <= nDay {
				sDay += float64(v)
				if back <= nCur {
					sCur += float64(v)
				}
			}
		}
	}
	w = windows{cur: sCur / float64(nCur), day: sDay / float64(nDay), week: sWeek / float64(nWk)}
	if sum != nil {
		if n < m.nDay {
			w.day = sum.Avg24h
		}
		if n < nWeek {
			w.week = sum.Avg7d
		}
	}
	return w, float64(l), float64(h)
}

func (m *model) refreshPeaks(n *nodeM) {
	n.cpuPeak = quantileOf(n.cpu, m.pol.PeakQuantile, m.scratch)
	n.memPeak = quantileOf(n.mem, m.pol.PeakQuantile, m.scratch)
}

// formUnits groups guests sharing affinity_ tags (transitively) into units; other guests are units of one.
func (m *model) formUnits() {
	parent := make([]int, len(m.guests))
	for i := range parent {
		parent[i] = i
	}
	find := func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	if !m.evacuation {
		first := map[string]int{}
		for _, g := range m.guests {
			for _, a := range g.affinities {
				if j, ok := first[a]; ok {
					ri, rj := find(g.idx), find(j)
					parent[max(ri, rj)] = min(ri, rj)
				} else {
					first[a] = g.idx
				}
			}
		}
	}
	byRoot := map[int]*unitM{}
	for _, g := range m.guests {
		r := find(g.idx)
		u, ok := byRoot[r]
		if !ok {
			u = &unitM{idx: len(m.units)}
			byRoot[r] = u
			m.units = append(m.units, u)
		}
		u.members = append(u.members, g.idx)
		g.unit = u.idx
	}
	for _, u := range m.units {
		first := m.guests[u.members[0]]
		if len(u.members) == 1 {
			u.cpu, u.mem = first.cpu, first.mem
		} else {
			u.cpu, u.mem = make([]float32, m.T), make([]float32, m.T)
			var names []string
			for _, gi := range u.members {
				g := m.guests[gi]
				addInto(u.cpu, g.cpu, 1)
				addInto(u.mem, g.mem, 1)
				names = append(names, g.affinities...)
				if g.node != first.node {
					u.split = true
				}
			}
			slices.Sort(names)
			u.group = strings.Join(slices.Compact(names), "+")
		}
		u.coverage = 1
		for _, gi := range u.members {
			g := m.guests[gi]
			u.cpuW = u.cpuW.plus(g.cpuW, 1)
			u.memCur += g.memCur
			u.ioW = u.ioW.plus(g.ioW, 1)
			if g.spec.Running {
				u.vcpus += g.vcpus
			}
			u.coverage = min(u.coverage, g.coverage)
		}
		if len(u.members) == 1 {
			u.cpuLo, u.cpuHi, u.memLo, u.memHi = first.cpuLo, first.cpuHi, first.memLo, first.memHi
		} else {
			u.cpuLo, u.cpuHi = minMax(u.cpu)
			u.memLo, u.memHi = minMax(u.mem)
		}
	}
}

// node returns the node a unit is on (its first member's).
func (m *model) nodeOf(u *unitM) *nodeM { return m.nodes[m.guests[u.members[0]].node] }

// move applies a unit's move to the simulation: series, windows, peaks and bookkeeping of both nodes.
func (m *model) move(u *unitM, to *nodeM) {
	from := m.nodeOf(u)
	addInto(from.cpu, u.cpu, -1)
	addInto(from.mem, u.mem, -1)
	addInto(to.cpu, u.cpu, 1)
	addInto(to.mem, u.mem, 1)
	from.cpuW, to.cpuW = from.cpuW.plus(u.cpuW, -1), to.cpuW.plus(u.cpuW, 1)
	from.memCur, to.memCur = from.memCur-u.memCur, to.memCur+u.memCur
	from.ioW, to.ioW = from.ioW.plus(u.ioW, -1), to.ioW.plus(u.ioW, 1)
	for _, gi := range u.members {
		g := m.guests[gi]
		from.account(g, -1)
		to.account(g, 1)
		g.node = to.idx
		g.moved = true
	}
	m.refreshPeaks(from)
	m.refreshPeaks(to)
}

func clamp01(v float64) float64 { return min(max(v, 0), 1) }

// sortedKeys returns a map's keys in order, so no map iteration order leaks into a plan.
func sortedKeys[K cmp.Ordered, V any](mp map[K]V) []K {
	ks := make([]K, 0, len(mp))
	for k := range mp {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
