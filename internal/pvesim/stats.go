package pvesim

import (
	"math"
	"time"
)

// psi holds pressure stall percentages (avg10) as PVE reads them from /proc/pressure and cgroups.
type psi struct {
	cpuSome, cpuFull, ioSome, ioFull, memSome, memFull float64
}

// guestStats is what the API shows about a guest at one instant.
type guestStats struct {
	status  string // running, stopped, unknown
	cpu     float64
	mem     uint64
	memhost uint64
	netin   uint64
	netout  uint64
	dread   uint64
	dwrite  uint64
	uptime  uint64
	disk    uint64
	psi     psi
}

// nodeStats is what the API shows about a node at one instant.
type nodeStats struct {
	online    bool
	cpu       float64
	usedCores float64
	mem       uint64
	iowait    float64
	load      float64
	psi       psi
	netin     float64 // bytes/s
	netout    float64
	uptime    uint64
	rootUsed  uint64
}

// snapshot is every guest's and node's stats at one stats tick; it is cached per tick and generation.
type snapshot struct {
	at     time.Time
	gen    uint64
	guests []guestStats // aligned with Simulator.guests
	nodes  []nodeStats  // aligned with Simulator.nodes
}

// statsTime is t rounded down to the stats tick.
func statsTime(t time.Time) time.Time { return t.Truncate(statsInterval) }

// snapshotAt returns the stats at the tick containing t. Callers hold s.mu.
func (s *Simulator) snapshotAt(t time.Time) *snapshot {
	at := statsTime(t)
	if s.snap != nil && s.snap.at.Equal(at) && s.snap.gen == s.generation {
		return s.snap
	}
	snap := &snapshot{at: at, gen: s.generation, guests: make([]guestStats, len(s.guests)), nodes: make([]nodeStats, len(s.nodes))}
	nodeIdx := make(map[string]int, len(s.nodes))
	for i, n := range s.nodes {
		nodeIdx[n.spec.Name] = i
		snap.nodes[i] = s.nodeBase(n, at)
	}
	raws := make([]usage, len(s.guests))
	for i, g := range s.guests {
		ni := nodeIdx[g.node]
		if !snap.nodes[ni].online {
			snap.guests[i].status = "unknown"
			continue
		}
		if !g.running {
			snap.guests[i].status = "stopped"
			continue
		}
		raws[i] = g.wl.at(at)
		addGuestLoad(&snap.nodes[ni], g, raws[i])
	}
	for i, n := range s.nodes {
		finishNode(&snap.nodes[i], n)
	}
	for i, g := range s.guests {
		if snap.guests[i].status != "" {
			continue
		}
		snap.guests[i] = guestAt(g, raws[i], at, &snap.nodes[nodeIdx[g.node]])
	}
	s.snap = snap
	return snap
}

// nodeBase is a node's own load before its guests are added.
func (s *Simulator) nodeBase(n *simNode, t time.Time) nodeStats {
	if !s.nodeOnline(n.spec.Name) {
		return nodeStats{}
	}
	up := t.Sub(n.boot).Seconds()
	return nodeStats{
		online:    true,
		usedCores: n.spec.Base.CPU * float64(n.spec.CPUs),
		mem:       uint64(n.spec.Base.Memory),
		netin:     2048,
		netout:    1024,
		uptime:    uint64(max(up, 0)),
		rootUsed:  uint64(float64(n.spec.RootFS)*0.08) + uint64(max(up, 0))*512,
	}
}

func addGuestLoad(ns *nodeStats, g *simGuest, u usage) {
	ns.usedCores += u.cpu * float64(g.spec.Cores)
	mem, memhost := guestMem(g, u)
	if g.spec.Type == "qemu" {
		ns.mem += memhost
	} else {
		ns.mem += mem
	}
	ns.netin += float64(g.spec.Workload.Net)
	ns.netout += 0.4 * float64(g.spec.Workload.Net)
}

// finishNode derives ratios, load and pressure once all guests are added.
func finishNode(ns *nodeStats, n *simNode) {
	if !ns.online {
		return
	}
	cpus := float64(n.spec.CPUs)
	ns.cpu = math.Min(1, ns.usedCores/cpus)
	ns.mem = min(ns.mem, uint64(float64(n.spec.Memory)*0.98))
	ns.iowait = 0.001 + 0.04*ns.cpu*ns.cpu
	ns.load = ns.usedCores * (1 + 5*ns.iowait)
	over := math.Max(0, ns.usedCores/cpus-0.65)
	ns.psi.cpuSome = 200 * over * over
	ns.psi.cpuFull = 0.3 * ns.psi.cpuSome
	ns.psi.ioSome = 50 * ns.iowait
	ns.psi.ioFull = 0.6 * ns.psi.ioSome
	memOver := math.Max(0, float64(ns.mem)/float64(n.spec.Memory)-0.85)
	ns.psi.memSome = 1000 * memOver * memOver
	ns.psi.memFull = 0.5 * ns.psi.memSome
}

// guestMem is the memory a guest uses inside, and (for VMs) what its QEMU process takes on the host.
func guestMem(g *simGuest, u usage) (mem, memhost uint64) {
	maxmem := float64(g.spec.Memory)
	mem = uint64(u.mem * maxmem)
	memhost = min(uint64(maxmem*1.03)+48*uint64(MiB), mem+uint64(maxmem*0.03)+48*uint64(MiB))
	return mem, memhost
}

// guestAt completes a running guest's stats at t on a node whose totals are known.
func guestAt(g *simGuest, u usage, t time.Time, node *nodeStats) guestStats {
	elapsed := t.Sub(g.started).Seconds()
	net, dio := float64(g.spec.Workload.Net), float64(g.spec.Workload.DiskIO)
	mem, memhost := guestMem(g, u)
	st := guestStats{
		status:  "running",
		cpu:     u.cpu,
		mem:     mem,
		memhost: memhost,
		netin:   counter(net, elapsed),
		netout:  counter(0.4*net, elapsed),
		dread:   counter(dio, elapsed),
		dwrite:  counter(0.6*dio, elapsed),
		uptime:  uint64(max(elapsed, 0)),
		psi:     guestPSI(u, node),
	}
	if g.spec.Type == "lxc" {
		st.disk = guestDiskUsed(g)
	}
	return st
}

func guestPSI(u usage, node *nodeStats) psi {
	var p psi
	p.cpuSome = 0.9*node.psi.cpuSome + 50*math.Max(0, u.cpu-0.9)
	p.cpuFull = 0.4 * p.cpuSome
	p.ioSome = node.psi.ioSome
	p.ioFull = node.psi.ioFull
	memOver := math.Max(0, u.mem-0.9)
	p.memSome = 2000 * memOver * memOver
	p.memFull = 0.5 * p.memSome
	return p
}

// guestDiskUsed is a container's root filesystem usage (PVE knows it for CTs; for VMs it reports 0).
func guestDiskUsed(g *simGuest) uint64 {
	if len(g.spec.Disks) == 0 {
		return 0
	}
	return uint64(float64(g.spec.Disks[0].Size) * (0.2 + 0.3*unit(mix(uint64(g.spec.VMID), 7))))
}

// maxDisk is the size of the boot disk (VM) or rootfs (CT), as PVE reports maxdisk.
func maxDisk(g *simGuest) uint64 {
	if len(g.spec.Disks) == 0 {
		return 0
	}
	return uint64(g.spec.Disks[0].Size)
}

// nodeLoadAt computes a node's stats at any time t from the guests that were on it then; RRD history and
// load averages use it. candidates are the guests that ever were on the node.
func (s *Simulator) nodeLoadAt(n *simNode, t time.Time, candidates []*simGuest) nodeStats {
	ns := s.nodeBase(n, t)
	if !ns.online {
		return ns
	}
	for _, g := range candidates {
		if g.nodeAt(t) == n.spec.Name && g.ranAt(t) {
			addGuestLoad(&ns, g, g.wl.at(t))
		}
	}
	finishNode(&ns, n)
	return ns
}

// guestsEverOn lists guests that are or were on node.
func (s *Simulator) guestsEverOn(node string) []*simGuest {
	var out []*simGuest
	for _, g := range s.guests {
		if g.node == node {
			out = append(out, g)
			continue
		}
		for _, p := range g.history {
			if p.node == node {
				out = append(out, g)
				break
			}
		}
	}
	return out
}

// storageUsage is how much of each storage is taken, keyed "node/storage" for local storages and "storage"
// for shared ones: guest volumes (thin-provisioned at 40%) plus a fixed share for ISOs, templates and
// backups. One pass over the guests serves every node and storage.
func (s *Simulator) storageUsage() map[string]uint64 {
	raw := map[string]float64{}
	add := func(g *simGuest, id string, size ByteSize) {
		key := id
		if !s.storages[id].Shared {
			key = g.node + "/" + id
		}
		raw[key] += 0.4 * float64(size)
	}
	for _, g := range s.guests {
		for _, d := range g.spec.Disks {
			add(g, d.Storage, d.Size)
		}
		for _, m := range g.spec.Mounts {
			if m.Storage != "" {
				add(g, m.Storage, m.Size)
			}
		}
	}
	out := make(map[string]uint64, len(s.nodes)*len(s.storages))
	for _, n := range s.nodes {
		for _, st := range s.scn.Storages {
			key := st.ID
			if !st.Shared {
				key = n.spec.Name + "/" + st.ID
			}
			used := raw[key] + 0.03*float64(st.Size)
			out[key] = uint64(math.Min(used, 0.97*float64(st.Size)))
		}
	}
	return out
}

// storageUsed looks up one storage's usage on a node in storageUsage's answer.
func (s *Simulator) storageUsed(usage map[string]uint64, st StorageSpec, node string) uint64 {
	if st.Shared {
		return usage[st.ID]
	}
	return usage[node+"/"+st.ID]
}
