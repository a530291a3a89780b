package planinput

import (
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/proxbalance/proxbalance/internal/history"
	"github.com/proxbalance/proxbalance/internal/placement"
	"github.com/proxbalance/proxbalance/internal/pve"
)

var fetchedAt = time.Date(2026, 11, 27, 5, 0, 0, 0, time.UTC)

// Inventory builders: a node or guest with defaults, changed by mutators.

func node(name string, muts ...func(*pve.Node)) pve.Node {
	n := pve.Node{Name: name, Online: true, CPUs: 16, MemTotal: 64 << 30, StatusFetched: true}
	for _, m := range muts {
		m(&n)
	}
	return n
}

func offline(n *pve.Node) { n.Online = false }

func storage(node, name string, shared bool) pve.Storage {
	return pve.Storage{Node: node, Storage: name, Type: "dir", Shared: shared, Enabled: true, Active: true,
		Total: 100 << 30, Avail: 60 << 30}
}

func guest(vmid int, on string, muts ...func(*pve.Guest)) pve.Guest {
	g := pve.Guest{Type: pve.TypeQEMU, VMID: vmid, Name: "vm", Node: on, Status: "running", CPUs: 4, MemMax: 8 << 30,
		Config: &pve.GuestConfig{VCPUs: 4, Memory: 8 << 30}}
	for _, m := range muts {
		m(&g)
	}
	return g
}

func lxc(g *pve.Guest)                  { g.Type = pve.TypeLXC }
func status(s string) func(*pve.Guest)  { return func(g *pve.Guest) { g.Status = s } }
func noConfig(g *pve.Guest)             { g.Config = nil }
func template(g *pve.Guest)             { g.Template = true }
func locked(l string) func(*pve.Guest)  { return func(g *pve.Guest) { g.Lock = l } }
func tags(t ...string) func(*pve.Guest) { return func(g *pve.Guest) { g.Tags = t } }
func disks(ds ...pve.Disk) func(*pve.Guest) {
	return func(g *pve.Guest) { g.Config.Disks = ds }
}

func inventory(nodes []pve.Node, guests []pve.Guest, muts ...func(*pve.Inventory)) *pve.Inventory {
	inv := &pve.Inventory{FetchedAt: fetchedAt, Cluster: pve.Cluster{Name: "lab", Quorate: true}, Nodes: nodes, Guests: guests}
	for _, n := range nodes {
		inv.Storages = append(inv.Storages, storage(n.Name, "local", false), storage(n.Name, "ceph", true))
	}
	for _, m := range muts {
		m(inv)
	}
	return inv
}

// snapshot builds a history snapshot of count points at 5m ending at fetchedAt, with the given series.
func snapshot(count int, nodes, guests map[string]map[history.Signal][]float32) *history.Snapshot {
	g := history.Grid{Start: fetchedAt.Add(-time.Duration(count-1) * 5 * time.Minute), Step: 5 * time.Minute, Count: count}
	s := &history.Snapshot{Grid: g, Nodes: map[string]*history.Entity{}, Guests: map[string]*history.Entity{}}
	fill := func(dst map[string]*history.Entity, src map[string]map[history.Signal][]float32) {
		for key, sigs := range src {
			e := &history.Entity{}
			for sig, vals := range sigs {
				present := 0
				for _, v := range vals {
					if !math.IsNaN(float64(v)) {
						present++
					}
				}
				e.Series[sig] = history.Series{Values: vals, Present: present}
			}
			dst[key] = e
		}
	}
	fill(s.Nodes, nodes)
	fill(s.Guests, guests)
	return s
}

var nan = float32(math.NaN())

func TestBuildNodes(t *testing.T) {
	tests := []struct {
		name  string
		inv   *pve.Inventory
		opts  Options
		check func(t *testing.T, n placement.Node)
		notes []string
	}{
		{
			name: "online node with capacity and storages sorted by name",
			inv:  inventory([]pve.Node{node("pve1")}, nil),
			check: func(t *testing.T, n placement.Node) {
				want := placement.Node{Name: "pve1", Online: true, CPUs: 16, MemoryBytes: 64 << 30, StoragesKnown: true,
					Storages: []placement.StorageState{
						{Name: "ceph", Enabled: true, Active: true, Shared: true, AvailBytes: 60 << 30, AvailKnown: true},
						{Name: "local", Enabled: true, Active: true, AvailBytes: 60 << 30, AvailKnown: true},
					}}
				if n.Name != want.Name || n.Online != want.Online || n.CPUs != want.CPUs || n.MemoryBytes != want.MemoryBytes ||
					n.StoragesKnown != want.StoragesKnown || !slices.Equal(n.Storages, want.Storages) || n.Maintenance {
					t.Fatalf("node = %+v\nwant %+v", n, want)
				}
			},
		},
		{
			name: "offline node",
			inv:  inventory([]pve.Node{node("pve1", offline)}, nil),
			check: func(t *testing.T, n placement.Node) {
				if n.Online {
					t.Fatal("offline node is online")
				}
			},
		},
		{
			name: "lost quorum takes every node offline",
			inv:  inventory([]pve.Node{node("pve1")}, nil, func(i *pve.Inventory) { i.Cluster.Quorate = false }),
			check: func(t *testing.T, n placement.Node) {
				if n.Online {
					t.Fatal("node online without quorum")
				}
			},
			notes: []string{"cluster lab is not quorate: every node counts as offline"},
		},
		{
			name: "standalone node needs no quorum",
			inv:  inventory([]pve.Node{node("pve1")}, nil, func(i *pve.Inventory) { i.Cluster = pve.Cluster{} }),
			check: func(t *testing.T, n placement.Node) {
				if !n.Online {
					t.Fatal("standalone node offline")
				}
			},
		},
		{
			name: "online node without capacity (its status could not be read) counts as offline",
			inv:  inventory([]pve.Node{node("pve1", func(n *pve.Node) { n.CPUs, n.MemTotal, n.StatusFetched = 0, 0, false })}, nil),
			check: func(t *testing.T, n placement.Node) {
				if n.Online {
					t.Fatal("node without capacity is online")
				}
			},
			notes: []string{"node pve1: capacity unknown (0 CPUs, 0 bytes of memory), treated as offline"},
		},
		{
			name: "maintenance from the options",
			inv:  inventory([]pve.Node{node("pve1")}, nil),
			opts: Options{Maintenance: map[string]bool{"pve1": true}},
			check: func(t *testing.T, n placement.Node) {
				if !n.Maintenance {
					t.Fatal("maintenance lost")
				}
			},
		},
		{
			name: "storage list failed to load",
			inv: inventory([]pve.Node{node("pve1")}, nil, func(i *pve.Inventory) {
				i.Partial = []pve.FetchError{{Endpoint: "/nodes/pve1/storage", Node: "pve1", Err: errors.New("timeout")}}
			}),
			check: func(t *testing.T, n placement.Node) {
				if n.StoragesKnown {
					t.Fatal("storages known despite a failed fetch")
				}
			},
			notes: []string{"node pve1: storages unknown, no guest with disks will be placed on it"},
		},
		{
			name: "no storages at all",
			inv:  inventory([]pve.Node{node("pve1")}, nil, func(i *pve.Inventory) { i.Storages = nil }),
			check: func(t *testing.T, n placement.Node) {
				if n.StoragesKnown || n.Storages != nil {
					t.Fatalf("storages = %v, known %v", n.Storages, n.StoragesKnown)
				}
			},
			notes: []string{"node pve1: storages unknown, no guest with disks will be placed on it"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, notes, err := Build(tt.inv, nil, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(st.Nodes) != 1 {
				t.Fatalf("%d nodes", len(st.Nodes))
			}
			tt.check(t, st.Nodes[0])
			if !slices.Equal(notes, tt.notes) {
				t.Fatalf("notes = %q, want %q", notes, tt.notes)
			}
		})
	}
}

func TestBuildGuests(t *testing.T) {
	nodes := []pve.Node{node("pve1"), node("pve2")}
	tests := []struct {
		name  string
		g     pve.Guest
		inv   func(*pve.Inventory)
		want  func(*placement.Guest)
		notes []string
	}{
		{name: "running VM with config", g: guest(100, "pve1")},
		{name: "paused counts as running", g: guest(100, "pve1", status("paused"))},
		{name: "stopped", g: guest(100, "pve1", status("stopped")), want: func(g *placement.Guest) { g.Running = false }},
		{
			name: "container with bind mounts and local devices",
			g: guest(101, "pve1", lxc, func(g *pve.Guest) {
				g.Config.LocalDevices = []pve.LocalDevice{{Key: "dev0", Kind: pve.DeviceLXCDev, Value: "/dev/ttyUSB0"}}
				g.Config.MountPoints = []pve.MountPoint{
					{Key: "mp0", Source: "/srv/data", Path: "/data", Bind: true},
					{Key: "mp1", Source: "/mnt/nfs", Path: "/nfs", Bind: true, Shared: true},
					{Key: "mp2", Source: "local:subvol-101-disk-1", Path: "/vol"},
				}
			}),
			want: func(g *placement.Guest) {
				g.ID, g.Type = "lxc/101", placement.LXC
				g.LocalDevices = []string{"dev0"}
				g.BindMounts = []placement.BindMount{{Key: "mp0", Source: "/srv/data"}, {Key: "mp1", Source: "/mnt/nfs", Shared: true}}
			},
		},
		{
			name: "disks: shared flag from the node's storage, CD-ROMs and raw paths left out",
			g: guest(100, "pve1", disks(
				pve.Disk{Key: "scsi0", Storage: "local", Size: 32 << 30},
				pve.Disk{Key: "scsi1", Storage: "ceph", Size: 100 << 30},
				pve.Disk{Key: "ide2", Storage: "local", CDROM: true},
				pve.Disk{Key: "scsi2", Volume: "/dev/sdb"},
				pve.Disk{Key: "unused0", Storage: "local", Size: 1 << 30, Unused: true},
			)),
			want: func(g *placement.Guest) {
				g.Disks = []placement.Disk{
					{Key: "scsi0", Storage: "local", SizeBytes: 32 << 30},
					{Key: "scsi1", Storage: "ceph", SizeBytes: 100 << 30, Shared: true},
					{Key: "unused0", Storage: "local", SizeBytes: 1 << 30},
				}
			},
		},
		{
			name: "tags from resources and config, lower case, once, sorted",
			g:    guest(100, "pve1", tags("Exclude_DB", "prod"), func(g *pve.Guest) { g.Config.Tags = []string{"prod", " pin_pve1 "} }),
			want: func(g *placement.Guest) { g.Tags = []string{"exclude_db", "pin_pve1", "prod"} },
		},
		{
			name: "config memory and vCPUs win over the resource list",
			g:    guest(100, "pve1", func(g *pve.Guest) { g.CPUs, g.MemMax = 8, 1<<30 }),
		},
		{
			name:  "unread config holds the guest with a lock; the resource list supplies capacity",
			g:     guest(100, "pve1", noConfig, func(g *pve.Guest) { g.CPUs, g.MemMax = 2.5, 2<<30 }),
			want:  func(g *placement.Guest) { g.Lock, g.VCPUs, g.MemoryBytes = LockConfigUnread, 3, 2<<30 },
			notes: []string{"guest qemu/100: config not read, held in place"},
		},
		{
			name: "template without config is not locked (templates never move anyway)",
			g:    guest(100, "pve1", noConfig, template),
			want: func(g *placement.Guest) { g.Template, g.Running = true, true },
		},
		{
			name: "a real lock is kept",
			g:    guest(100, "pve1", locked("backup")),
			want: func(g *placement.Guest) { g.Lock = "backup" },
		},
		{
			name: "running migration task locks the guest",
			g:    guest(100, "pve1"),
			inv: func(i *pve.Inventory) {
				i.Tasks = []pve.Task{
					{Type: "qmigrate", ID: "100", Node: "pve1", StartTime: fetchedAt.Add(-time.Minute)},
					{Type: "qmigrate", ID: "100", Node: "pve2", StartTime: fetchedAt.Add(-time.Hour), EndTime: fetchedAt.Add(-50 * time.Minute), Status: "OK"},
				}
			},
			want: func(g *placement.Guest) { g.Lock = LockMigrating },
		},
		{
			name: "finished migration task does not",
			g:    guest(100, "pve1"),
			inv: func(i *pve.Inventory) {
				i.Tasks = []pve.Task{{Type: "qmigrate", ID: "100", Node: "pve1", EndTime: fetchedAt, Status: "OK"}}
			},
		},
		{
			name: "container migration task does not lock the VM with the same number",
			g:    guest(100, "pve1"),
			inv:  func(i *pve.Inventory) { i.Tasks = []pve.Task{{Type: "vzmigrate", ID: "100", Node: "pve1"}} },
		},
		{
			name: "HA migration locks the guest",
			g:    guest(100, "pve1", func(g *pve.Guest) { g.HAManaged = true }),
			inv: func(i *pve.Inventory) {
				i.HA.Resources = []pve.HAResource{{SID: "vm:100", Type: "vm", VMID: 100, State: "started", CRMState: "migrate", Node: "pve1"}}
			},
			want: func(g *placement.Guest) { g.HAManaged, g.Lock = true, LockMigrating },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := inventory(nodes, []pve.Guest{tt.g})
			if tt.inv != nil {
				tt.inv(inv)
			}
			st, notes, err := Build(inv, nil, Options{})
			if err != nil {
				t.Fatal(err)
			}
			want := placement.Guest{ID: "qemu/100", Type: placement.QEMU, Name: "vm", Node: "pve1", Running: true, VCPUs: 4, MemoryBytes: 8 << 30}
			if tt.g.Status == "stopped" {
				want.Running = false
			}
			if tt.want != nil {
				tt.want(&want)
			}
			if len(st.Guests) != 1 {
				t.Fatalf("%d guests", len(st.Guests))
			}
			got := st.Guests[0]
			if got.ID != want.ID || got.Type != want.Type || got.Name != want.Name || got.Node != want.Node ||
				got.Running != want.Running || got.Template != want.Template || got.VCPUs != want.VCPUs ||
				got.MemoryBytes != want.MemoryBytes || got.HAManaged != want.HAManaged || got.Lock != want.Lock ||
				!slices.Equal(got.Tags, want.Tags) || !slices.Equal(got.Disks, want.Disks) ||
				!slices.Equal(got.LocalDevices, want.LocalDevices) || !slices.Equal(got.BindMounts, want.BindMounts) {
				t.Fatalf("guest = %+v\nwant    %+v", got, want)
			}
			if !slices.Equal(notes, tt.notes) {
				t.Fatalf("notes = %q, want %q", notes, tt.notes)
			}
		})
	}
}

func TestBuildGuestOnUnknownNodeLeftOut(t *testing.T) {
	st, notes, err := Build(inventory([]pve.Node{node("pve1")}, []pve.Guest{guest(100, "pve1"), guest(101, "pve9")}), nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Guests) != 1 || st.Guests[0].ID != "qemu/100" {
		t.Fatalf("guests = %+v", st.Guests)
	}
	if want := []string{`guest qemu/101 is on node "pve9", which the inventory does not list: left out`}; !slices.Equal(notes, want) {
		t.Fatalf("notes = %q", notes)
	}
}

func TestBuildHistory(t *testing.T) {
	nodes := []pve.Node{node("pve1"), node("pve2")}
	guests := []pve.Guest{guest(100, "pve1"), guest(101, "pve2"), guest(102, "pve2", status("stopped"))}
	// 48h of 5m points would be 576; four points keep the literals readable, the horizon share is what matters.
	snap := snapshot(4,
		map[string]map[history.Signal][]float32{
			"pve1": {history.CPU: {4, 4, 5, 5}, history.Memory: {1e9, 1e9, 1e9, 1e9}, history.IOWait: {0.1, nan, 0.1, 0.1}},
		},
		map[string]map[history.Signal][]float32{
			"qemu/100": {history.CPU: {1, 2, 3, 4}, history.Memory: {8, 8, 8, 8}, history.DiskRead: {1, nan, nan, 4}, history.DiskWrite: {10, 20, nan, 40}},
			"qemu/999": {history.CPU: {1, 1, 1, 1}}, // deleted since: ignored
		})
	st, notes, err := Build(inventory(nodes, guests), snap, Options{Horizon: 80 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if !st.End.Equal(fetchedAt) || st.Step != 5*time.Minute || !st.Now.Equal(fetchedAt) {
		t.Fatalf("state grid: now %s, end %s, step %s", st.Now, st.End, st.Step)
	}
	const share = 20.0 / 80 // 4 points of 5m over an 80m horizon
	pve1, q100 := st.Nodes[0], st.Guests[0]
	tests := []struct {
		name string
		got  placement.Metric
		want []float32
		cov  float64
	}{
		{"node CPU", pve1.Load.CPU, []float32{4, 4, 5, 5}, share},
		{"node memory", pve1.Load.Memory, []float32{1e9, 1e9, 1e9, 1e9}, share},
		{"node iowait with a gap (the planner discounts NaN itself)", pve1.Load.IOWait, []float32{0.1, nan, 0.1, 0.1}, share},
		{"node without history", st.Nodes[1].Load.CPU, nil, 0},
		{"guest CPU", q100.Demand.CPU, []float32{1, 2, 3, 4}, share},
		{"guest memory", q100.Demand.Memory, []float32{8, 8, 8, 8}, share},
		{"guest disk I/O is read + write", q100.Demand.DiskIO, []float32{11, 20, nan, 44}, share},
		{"guest without history", st.Guests[1].Demand.CPU, nil, 0},
		{"guest without disk counters", st.Guests[1].Demand.DiskIO, nil, 0},
	}
	for _, tt := range tests {
		same := slices.EqualFunc([]float32(tt.got.Series), tt.want, func(a, b float32) bool { return a == b || (a != a && b != b) })
		if !same || tt.got.Coverage != tt.cov || (tt.want == nil) != (tt.got.Series == nil) {
			t.Errorf("%s = %v (coverage %v), want %v (coverage %v)", tt.name, tt.got.Series, tt.got.Coverage, tt.want, tt.cov)
		}
	}
	if &q100.Demand.CPU.Series[0] != &snap.Guests["qemu/100"].Series[history.CPU].Values[0] {
		t.Error("series copied; they should be shared with the snapshot")
	}
	if want := []string{"guest qemu/101: running but without history"}; !slices.Equal(notes, want) {
		t.Errorf("notes = %q, want %q", notes, want)
	}
	if _, _, err := Build(nil, snap, Options{}); err == nil || !strings.Contains(err.Error(), "no inventory") {
		t.Errorf("Build(nil) = %v", err)
	}
}

// TestBuildFeedsThePlanner checks that a built State is one the planner accepts and acts on: evacuating pve1
// moves its guests to pve2, the guest with an unread config stays.
func TestBuildFeedsThePlanner(t *testing.T) {
	inv := inventory([]pve.Node{node("pve1"), node("pve2")}, []pve.Guest{
		guest(100, "pve1", disks(pve.Disk{Key: "scsi0", Storage: "ceph", Size: 10 << 30})),
		guest(101, "pve1", lxc, disks(pve.Disk{Key: "rootfs", Storage: "ceph", Size: 8 << 30})),
		guest(102, "pve1", noConfig),
		guest(200, "pve2"),
	})
	points := func(v float32) []float32 { return []float32{v, v, v, v} }
	snap := snapshot(4,
		map[string]map[history.Signal][]float32{
			"pve1": {history.CPU: points(6), history.Memory: points(24 << 30), history.IOWait: points(0.01)},
			"pve2": {history.CPU: points(2), history.Memory: points(8 << 30), history.IOWait: points(0.01)},
		},
		map[string]map[history.Signal][]float32{
			"qemu/100": {history.CPU: points(2), history.Memory: points(8 << 30)},
			"lxc/101":  {history.CPU: points(1), history.Memory: points(4 << 30)},
			"qemu/102": {history.CPU: points(1), history.Memory: points(4 << 30)},
			"qemu/200": {history.CPU: points(1), history.Memory: points(4 << 30)},
		})
	st, _, err := Build(inv, snap, Options{Maintenance: map[string]bool{"pve1": true}})
	if err != nil {
		t.Fatal(err)
	}
	plan, err := placement.Compute(st, placement.DefaultPolicy(), placement.Request{Action: placement.ActionEvacuate, Node: "pve1"})
	if err != nil {
		t.Fatalf("planner rejected the built state: %v", err)
	}
	var moved []string
	for _, mv := range plan.Moves {
		if mv.Source != "pve1" || mv.Target != "pve2" {
			t.Errorf("move %+v, want pve1 → pve2", mv)
		}
		moved = append(moved, mv.Guest)
	}
	slices.Sort(moved)
	if !slices.Equal(moved, []string{"lxc/101", "qemu/100"}) {
		t.Fatalf("moved %v, want lxc/101 and qemu/100 (qemu/102 has no config)", moved)
	}
	for _, d := range plan.Decisions {
		if d.Guest == "qemu/102" && !slices.Contains(d.Reasons, placement.ReasonLocked) {
			t.Errorf("qemu/102 decision = %+v, want %s", d, placement.ReasonLocked)
		}
	}
}

// BenchmarkBuild builds the State of a 64-node, 5,000-guest cluster with a week of 5-minute history.
func BenchmarkBuild(b *testing.B) {
	const nodes, guests, points = 64, 5000, 2016
	var ns []pve.Node
	nodeHist := map[string]map[history.Signal][]float32{}
	flat := func(v float32) []float32 {
		s := make([]float32, points)
		for i := range s {
			s[i] = v
		}
		return s
	}
	for i := range nodes {
		name := "pve" + strconv.Itoa(i)
		ns = append(ns, node(name))
		nodeHist[name] = map[history.Signal][]float32{history.CPU: flat(8), history.Memory: flat(1 << 35), history.IOWait: flat(0.02)}
	}
	var gs []pve.Guest
	guestHist := map[string]map[history.Signal][]float32{}
	for i := range guests {
		g := guest(1000+i, "pve"+strconv.Itoa(i%nodes), disks(pve.Disk{Key: "scsi0", Storage: "ceph", Size: 32 << 30}), tags("prod"))
		gs = append(gs, g)
		guestHist[g.ID()] = map[history.Signal][]float32{history.CPU: flat(1), history.Memory: flat(1 << 32),
			history.DiskRead: flat(1000), history.DiskWrite: flat(2000)}
	}
	inv := inventory(ns, gs)
	snap := snapshot(points, nodeHist, guestHist)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		st, _, err := Build(inv, snap, Options{})
		if err != nil || len(st.Guests) != guests {
			b.Fatalf("%d guests, %v", len(st.Guests), err)
		}
	}
}

// TestBuildNodeWithoutCapacityStillPlans: one node whose status failed must not make the planner refuse the
// whole cluster.
func TestBuildNodeWithoutCapacityStillPlans(t *testing.T) {
	inv := inventory([]pve.Node{node("pve1"), node("pve2", func(n *pve.Node) { n.CPUs, n.MemTotal = 0, 0 })},
		[]pve.Guest{guest(100, "pve1"), guest(101, "pve2")})
	st, _, err := Build(inv, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []placement.Action{placement.ActionRebalance, placement.ActionDistribute, placement.ActionRepairAntiAffinity} {
		if _, err := placement.Compute(st, placement.DefaultPolicy(), placement.Request{Action: a}); err != nil {
			t.Errorf("%s: planner rejected the state: %v", a, err)
		}
	}
}
