package placement

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// genSpec describes a deterministic random cluster.
type genSpec struct {
	seed           uint64
	nodes, guests  int
	T              int
	step           time.Duration
	hot            float64 // share of guests placed on the first node (the rest uniform)
	constraints    bool    // tags, local disks, devices, HA, storage gaps
	peakAmp        float64 // diurnal peak amplitude as a share of vCPUs
	smallGuests    bool    // mostly 1–2 vCPU, ≤ 4 GiB guests
	cpuBusy        float64 // mean CPU use as a share of vCPUs
	uniformNodes   bool
	memoryBound    bool
	nodeCPUs       int
	nodeMemory     uint64
	maxGuestVCPUs  int
	antiAffinity   int // number of exclude groups of 3 members, placed on the first node
	storageLimited bool
}

// generate builds the State: node usage = base load + Σ guest demand, series with a daily shape and noise.
func generate(s genSpec) State {
	r := rand.New(rand.NewPCG(s.seed, 0x5eed))
	if s.T == 0 {
		s.T, s.step = testT, testStep
	}
	end := time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC)
	st := State{Now: end, End: end, Step: s.step}
	for i := range s.nodes {
		n := Node{Name: fmt.Sprintf("pve%02d", i+1), Online: true, StoragesKnown: true,
			CPUs: 16, MemoryBytes: 64 * GiB,
			Storages: []StorageState{{Name: "ceph", Enabled: true, Active: true, Shared: true},
				{Name: "local-zfs", Enabled: true, Active: true, AvailBytes: 2048 * GiB, AvailKnown: true}}}
		if s.nodeCPUs > 0 {
			n.CPUs, n.MemoryBytes = s.nodeCPUs, s.nodeMemory
		} else if !s.uniformNodes {
			n.CPUs = []int{8, 16, 32}[r.IntN(3)]
			n.MemoryBytes = uint64(n.CPUs) * 4 * GiB
		}
		if s.storageLimited && i > 0 && i%2 == 0 {
			n.Storages = n.Storages[:1] // no local-zfs
		}
		if s.constraints && r.Float64() < 0.1 && i > 0 {
			n.StoragesKnown, n.Storages = false, nil
		}
		st.Nodes = append(st.Nodes, n)
	}
	hourOf := func(i int) float64 {
		t := end.Add(-time.Duration(s.T-1-i) * s.step)
		return float64(t.Hour()) + float64(t.Minute())/60
	}
	hours := make([]float64, s.T)
	for i := range hours {
		hours[i] = hourOf(i)
	}
	maxV := max(s.maxGuestVCPUs, 1)
	if maxV == 1 {
		maxV = 8
	}
	for i := range s.guests {
		ni := r.IntN(s.nodes)
		if r.Float64() < s.hot {
			ni = 0
		}
		g := Guest{ID: fmt.Sprintf("qemu/%d", 1000+i), Type: QEMU, Name: fmt.Sprintf("g%d", i), Node: st.Nodes[ni].Name,
			Running: true, VCPUs: 1 + r.IntN(maxV), MemoryBytes: uint64(1+r.IntN(8)) * GiB}
		if s.smallGuests && r.Float64() < 0.8 {
			g.VCPUs, g.MemoryBytes = 1+r.IntN(2), uint64(1+r.IntN(4))*GiB
		}
		g.Disks = []Disk{{Key: "scsi0", Storage: "ceph", SizeBytes: 32 * GiB, Shared: true}}
		if (s.constraints || s.storageLimited) && r.Float64() < 0.3 && storageOn(st.Nodes[ni], "local-zfs") {
			g.Disks = []Disk{{Key: "scsi0", Storage: "local-zfs", SizeBytes: uint64(8+r.IntN(64)) * GiB}}
		}
		if s.constraints {
			switch x := r.Float64(); {
			case x < 0.05:
				g.LocalDevices = []string{"hostpci0"}
			case x < 0.10:
				g.Tags = append(g.Tags, "ignore")
			case x < 0.15:
				g.Tags = append(g.Tags, "pin_"+g.Node)
			case x < 0.30:
				g.Tags = append(g.Tags, fmt.Sprintf("exclude_grp%d", r.IntN(3)))
			case x < 0.33:
				g.Lock = "backup"
			}
			g.HAManaged = r.Float64() < 0.2
		}
		busy := s.cpuBusy
		if busy == 0 {
			busy = 0.35
		}
		base := float64(g.VCPUs) * busy * (0.5 + r.Float64())
		amp := float64(g.VCPUs) * s.peakAmp * r.Float64()
		peakHour := float64(r.IntN(24))
		memUse := float64(g.MemoryBytes) * (0.5 + 0.4*r.Float64())
		if s.memoryBound {
			memUse = float64(g.MemoryBytes) * 0.95
		}
		cpu, memS := make(Series, s.T), make(Series, s.T)
		noise := r.Uint64() | 1
		for t := range s.T {
			noise ^= noise << 13
			noise ^= noise >> 7
			noise ^= noise << 17
			jitter := float64(noise%1000)/1000 - 0.5
			d := math.Abs(hours[t] - peakHour)
			d = math.Min(d, 24-d)
			v := base*(1+0.1*jitter) + amp*math.Exp(-d*d/2)
			cpu[t] = float32(min(max(v, 0), float64(g.VCPUs)))
			memS[t] = float32(memUse * (1 + 0.02*jitter))
		}
		g.Demand = Demand{CPU: Metric{Series: cpu, Coverage: 1}, Memory: Metric{Series: memS, Coverage: 1}}
		st.Guests = append(st.Guests, g)
	}
	for a := range s.antiAffinity {
		for k := range 3 {
			i := (a*3 + k) % len(st.Guests)
			st.Guests[i].Node = st.Nodes[0].Name
			st.Guests[i].Tags = []string{fmt.Sprintf("exclude_aa%d", a)}
			st.Guests[i].Disks = []Disk{{Key: "scsi0", Storage: "ceph", SizeBytes: 32 * GiB, Shared: true}}
		}
	}
	deriveNodeLoad(&st)
	return st
}

func storageOn(n Node, name string) bool {
	for _, s := range n.Storages {
		if s.Name == name {
			return true
		}
	}
	return false
}

// deriveNodeLoad sets every node's usage to a base load (0.3 core, 1.5 GiB) plus its guests' demand.
func deriveNodeLoad(st *State) {
	T := 0
	for _, g := range st.Guests {
		T = max(T, len(g.Demand.CPU.Series))
	}
	idx := map[string]int{}
	for i, n := range st.Nodes {
		idx[n.Name] = i
		cpu, m, io := make(Series, T), make(Series, T), make(Series, T)
		for t := range T {
			cpu[t], m[t], io[t] = 0.3, 1.5*GiB, 0.02
		}
		st.Nodes[i].Load = NodeLoad{CPU: Metric{Series: cpu, Coverage: 1}, Memory: Metric{Series: m, Coverage: 1},
			IOWait: Metric{Series: io, Coverage: 1}}
	}
	for _, g := range st.Guests {
		n := &st.Nodes[idx[g.Node]]
		addInto(n.Load.CPU.Series, g.Demand.CPU.Series, 1)
		addInto(n.Load.Memory.Series, g.Demand.Memory.Series, 1)
	}
}
