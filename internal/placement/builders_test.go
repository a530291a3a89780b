package placement

import (
	"fmt"
	"math"
	"time"
)

// Test fixtures: a week of hourly samples, so "current" is the last sample, "24h" the last 24 and "7d" all.
const (
	testT    = 168
	testStep = time.Hour
)

var testEnd = time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC)

type nodeOpt func(*Node)

// node builds an online node with 16 CPUs, 64 GiB, a shared "ceph" storage and a local "local-zfs" with 1 TiB
// free; its load series are filled in by cluster() as base load + its guests' demand.
func node(name string, opts ...nodeOpt) Node {
	n := Node{
		Name: name, Online: true, CPUs: 16, MemoryBytes: 64 * GiB, StoragesKnown: true,
		Storages: []StorageState{
			{Name: "ceph", Enabled: true, Active: true, Shared: true},
			{Name: "local-zfs", Enabled: true, Active: true, AvailBytes: 1024 * GiB, AvailKnown: true},
		},
	}
	for _, o := range opts {
		o(&n)
	}
	return n
}

func cpus(c int) nodeOpt       { return func(n *Node) { n.CPUs = c } }
func mem(b uint64) nodeOpt     { return func(n *Node) { n.MemoryBytes = b } }
func offline() nodeOpt         { return func(n *Node) { n.Online = false } }
func inMaintenance() nodeOpt   { return func(n *Node) { n.Maintenance = true } }
func storagesUnknown() nodeOpt { return func(n *Node) { n.StoragesKnown = false; n.Storages = nil } }
func nodeCoverageOf(c float64) nodeOpt {
	return func(n *Node) { n.Load.CPU.Coverage, n.Load.Memory.Coverage = c, c }
}

// storage replaces (or adds) one storage of the node.
func storage(s StorageState) nodeOpt {
	return func(n *Node) {
		for i := range n.Storages {
			if n.Storages[i].Name == s.Name {
				n.Storages[i] = s
				return
			}
		}
		n.Storages = append(n.Storages, s)
	}
}

func withoutStorage(name string) nodeOpt {
	return func(n *Node) {
		var keep []StorageState
		for _, s := range n.Storages {
			if s.Name != name {
				keep = append(keep, s)
			}
		}
		n.Storages = keep
	}
}

type guestOpt func(*Guest)

// guest builds a running qemu guest "qemu/<id>" on pve1 with 2 vCPUs, 4 GiB, one 32 GiB disk on shared ceph,
// using a flat 1 core and 2 GiB.
func guest(id int, opts ...guestOpt) Guest {
	g := Guest{
		ID: fmt.Sprintf("qemu/%d", id), Type: QEMU, Name: fmt.Sprintf("vm-%d", id), Node: "pve1", Running: true,
		VCPUs: 2, MemoryBytes: 4 * GiB,
		Disks: []Disk{{Key: "scsi0", Storage: "ceph", SizeBytes: 32 * GiB, Shared: true}},
	}
	g.Demand.CPU = Metric{Series: flat(1), Coverage: 1}
	g.Demand.Memory = Metric{Series: flat(2 * GiB), Coverage: 1}
	for _, o := range opts {
		o(&g)
	}
	return g
}

func on(n string) guestOpt       { return func(g *Guest) { g.Node = n } }
func tags(ts ...string) guestOpt { return func(g *Guest) { g.Tags = append(g.Tags, ts...) } }
func vcpus(c int) guestOpt       { return func(g *Guest) { g.VCPUs = c } }
func memory(b uint64) guestOpt   { return func(g *Guest) { g.MemoryBytes = b } }
func ha() guestOpt               { return func(g *Guest) { g.HAManaged = true } }
func locked(l string) guestOpt   { return func(g *Guest) { g.Lock = l } }
func template() guestOpt         { return func(g *Guest) { g.Template = true; g.Running = false } }
func device(key string) guestOpt {
	return func(g *Guest) { g.LocalDevices = append(g.LocalDevices, key) }
}
func named(name string) guestOpt       { return func(g *Guest) { g.Name = name } }
func guestCoverage(c float64) guestOpt { return func(g *Guest) { g.Demand.CPU.Coverage = c } }

func stopped() guestOpt {
	return func(g *Guest) {
		g.Running = false
		g.Demand.CPU.Series, g.Demand.Memory.Series = flat(0), flat(0)
	}
}

func lxc() guestOpt {
	return func(g *Guest) { g.Type = LXC; g.ID = "lxc/" + g.ID[len("qemu/"):] }
}

func bind(src string, shared bool) guestOpt {
	return func(g *Guest) {
		g.BindMounts = append(g.BindMounts, BindMount{Key: fmt.Sprintf("mp%d", len(g.BindMounts)), Source: src, Shared: shared})
	}
}

// localDisk replaces the guest's disks by one unshared disk.
func localDisk(storage string, size uint64) guestOpt {
	return func(g *Guest) { g.Disks = []Disk{{Key: "scsi0", Storage: storage, SizeBytes: size}} }
}

// useCPU sets a flat CPU demand in cores; useMem a flat memory demand in bytes.
func useCPU(cores float64) guestOpt { return func(g *Guest) { g.Demand.CPU.Series = flat(cores) } }
func useMem(b float64) guestOpt     { return func(g *Guest) { g.Demand.Memory.Series = flat(b) } }

// peakAt sets a CPU demand of base cores with a daily peak of peak cores during hours [from, from+width).
func peakAt(base, peak float64, from, width int) guestOpt {
	return func(g *Guest) {
		s := make(Series, testT)
		for i := range s {
			h := ((6-(testT-1-i))%24 + 24) % 24 // hour of day of sample i; the last sample is 06:00
			s[i] = float32(base)
			if (h-from+24)%24 < width {
				s[i] = float32(peak)
			}
		}
		g.Demand.CPU.Series = s
	}
}

func flat(v float64) Series {
	s := make(Series, testT)
	for i := range s {
		s[i] = float32(v)
	}
	return s
}

// clusterOpt adjusts a whole State after the node series have been derived.
type clusterOpt func(*State)

func inFlight(g, src, dst string) clusterOpt {
	return func(s *State) { s.InFlight = append(s.InFlight, Migration{Guest: g, Source: src, Target: dst}) }
}

// cluster assembles a State whose node usage is a base load (0.5 core, 2 GiB) plus the demand of the guests
// on the node (and of guests migrating to it), with full coverage unless a node option said otherwise.
func cluster(nodes []Node, guests []Guest, opts ...clusterOpt) State {
	st := State{Now: testEnd, End: testEnd, Step: testStep, Nodes: nodes, Guests: guests}
	for _, o := range opts {
		o(&st)
	}
	for i := range st.Nodes {
		n := &st.Nodes[i]
		cpu, memS, io := flat(0.5), flat(2*GiB), flat(0.02)
		for _, g := range st.Guests {
			holds := g.Node == n.Name
			for _, mg := range st.InFlight {
				holds = holds || (mg.Guest == g.ID && mg.Target == n.Name)
			}
			if !holds {
				continue
			}
			for t := range testT {
				cpu[t] += g.Demand.CPU.Series[t]
				memS[t] += g.Demand.Memory.Series[t]
			}
		}
		cov := 1.0
		if n.Load.CPU.Coverage != 0 {
			cov = n.Load.CPU.Coverage
		}
		n.Load.CPU = Metric{Series: cpu, Coverage: cov}
		n.Load.Memory = Metric{Series: memS, Coverage: cov}
		n.Load.IOWait = Metric{Series: io, Coverage: cov}
	}
	return st
}

// nodes3 is pve1..pve3 with default options.
func nodesN(n int, opts ...nodeOpt) []Node {
	out := make([]Node, n)
	for i := range out {
		out[i] = node(fmt.Sprintf("pve%d", i+1), opts...)
	}
	return out
}

func approx(a, b, tol float64) bool { return math.Abs(a-b) <= tol }
