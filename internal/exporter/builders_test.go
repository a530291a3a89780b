package exporter

import (
	"errors"
	"fmt"
	"time"

	"github.com/proxbalance/proxbalance/internal/pve"
)

const gib = 1 << 30

// Builders of inventories for tests: each takes mutators, so a test states only what it is about.

func inventory(opts ...func(*pve.Inventory)) *pve.Inventory {
	inv := &pve.Inventory{FetchedAt: time.Date(2026, 11, 27, 4, 0, 0, 0, time.UTC)}
	for _, o := range opts {
		o(inv)
	}
	return inv
}

func withCluster(name string, quorate bool, nodes, configVersion int) func(*pve.Inventory) {
	return func(inv *pve.Inventory) {
		inv.Cluster.Name, inv.Cluster.Quorate, inv.Cluster.NodeCount, inv.Cluster.ConfigVersion = name, quorate, nodes, configVersion
	}
}

func withVersion(version, release, repoID string) func(*pve.Inventory) {
	return func(inv *pve.Inventory) {
		inv.Cluster.PVEVersion, inv.Cluster.Release, inv.Cluster.RepoID = version, release, repoID
	}
}

func withNodes(nodes ...pve.Node) func(*pve.Inventory) {
	return func(inv *pve.Inventory) { inv.Nodes = append(inv.Nodes, nodes...) }
}

func withGuests(guests ...pve.Guest) func(*pve.Inventory) {
	return func(inv *pve.Inventory) { inv.Guests = append(inv.Guests, guests...) }
}

func withStorages(storages ...pve.Storage) func(*pve.Inventory) {
	return func(inv *pve.Inventory) { inv.Storages = append(inv.Storages, storages...) }
}

func withTasks(tasks ...pve.Task) func(*pve.Inventory) {
	return func(inv *pve.Inventory) { inv.Tasks = append(inv.Tasks, tasks...) }
}

func withHA(resources ...pve.HAResource) func(*pve.Inventory) {
	return func(inv *pve.Inventory) {
		inv.HA.Quorate = true
		inv.HA.Resources = append(inv.HA.Resources, resources...)
	}
}

func withReplication(jobs ...pve.ReplicationJob) func(*pve.Inventory) {
	return func(inv *pve.Inventory) { inv.Replication = append(inv.Replication, jobs...) }
}

func withNotBackedUp(ids ...string) func(*pve.Inventory) {
	return func(inv *pve.Inventory) { inv.NotBackedUp = append(inv.NotBackedUp, ids...) }
}

func withQDevice(q pve.QDevice) func(*pve.Inventory) {
	return func(inv *pve.Inventory) { inv.QDevice = &q }
}

func withPartial(endpoint, node, msg string) func(*pve.Inventory) {
	return func(inv *pve.Inventory) {
		inv.Partial = append(inv.Partial, pve.FetchError{Endpoint: endpoint, Node: node, Err: errors.New(msg)})
	}
}

// node is an online node whose status was read: 8 CPUs, 64 GiB, idle.
func node(name string, opts ...func(*pve.Node)) pve.Node {
	n := pve.Node{
		Name: name, Online: true, StatusFetched: true, CPUs: 8, CPU: 0.25,
		MemTotal: 64 * gib, MemUsed: 16 * gib, RootFSTotal: 100 * gib, RootFSUsed: 10 * gib,
		SwapTotal: 8 * gib, SwapUsed: gib, Uptime: 86400 * time.Second, LoadAvg: [3]float64{1.5, 1.25, 1},
		IOWait: 0.01,
	}
	for _, o := range opts {
		o(&n)
	}
	return n
}

func corosyncID(id int) func(*pve.Node) { return func(n *pve.Node) { n.NodeID = id } }
func cpus(c int) func(*pve.Node)        { return func(n *pve.Node) { n.CPUs = c } }
func subLevel(l string) func(*pve.Node) { return func(n *pve.Node) { n.Level = l } }
func local() func(*pve.Node)            { return func(n *pve.Node) { n.Local = true } }
func offline() func(*pve.Node) {
	return func(n *pve.Node) { *n = pve.Node{Name: n.Name, NodeID: n.NodeID, Level: n.Level} }
}
func statusUnread() func(*pve.Node) {
	return func(n *pve.Node) {
		n.StatusFetched, n.LoadAvg, n.IOWait, n.SwapTotal, n.SwapUsed = false, [3]float64{}, 0, 0, 0
		n.HasMemAvailable, n.MemAvailable, n.PSI = false, 0, nil
	}
}
func memAvailable(b uint64) func(*pve.Node) {
	return func(n *pve.Node) { n.MemAvailable, n.HasMemAvailable = b, true }
}
func nodeHA(state string) func(*pve.Node)    { return func(n *pve.Node) { n.HAState = state } }
func nodePSI(p pve.Pressure) func(*pve.Node) { return func(n *pve.Node) { n.PSI = &p } }
func subscription(status, lvl string, due time.Time) func(*pve.Node) {
	return func(n *pve.Node) { n.Subscription = &pve.Subscription{Status: status, Level: lvl, NextDueDate: due} }
}

// guest is a running qemu VM on pve1 with 2 vCPUs and 4 GiB.
func guest(vmid int, opts ...func(*pve.Guest)) pve.Guest {
	g := pve.Guest{
		Type: pve.TypeQEMU, VMID: vmid, Name: fmt.Sprintf("vm%d", vmid), Node: "pve1", Status: "running",
		CPUs: 2, CPU: 0.5, MemMax: 4 * gib, MemUsed: 2 * gib, DiskMax: 32 * gib,
		NetIn: 1000, NetOut: 2000, DiskRead: 3000, DiskWrite: 4000, Uptime: 3600 * time.Second,
	}
	for _, o := range opts {
		o(&g)
	}
	return g
}

func ct() func(*pve.Guest)               { return func(g *pve.Guest) { g.Type = pve.TypeLXC } }
func on(node string) func(*pve.Guest)    { return func(g *pve.Guest) { g.Node = node } }
func named(name string) func(*pve.Guest) { return func(g *pve.Guest) { g.Name = name } }
func tags(t ...string) func(*pve.Guest)  { return func(g *pve.Guest) { g.Tags = t } }
func haState(s string) func(*pve.Guest) {
	return func(g *pve.Guest) { g.HAState, g.HAManaged = s, true }
}
func locked(s string) func(*pve.Guest) { return func(g *pve.Guest) { g.Lock = s } }
func memHost(b uint64) func(*pve.Guest) {
	return func(g *pve.Guest) { g.MemHost, g.HasMemHost = b, true }
}
func guestPSI(p pve.Pressure) func(*pve.Guest) { return func(g *pve.Guest) { g.PSI = &p } }
func template() func(*pve.Guest) {
	return func(g *pve.Guest) { stopped()(g); g.Template = true }
}
func stopped() func(*pve.Guest) {
	return func(g *pve.Guest) {
		g.Status, g.CPU, g.MemUsed, g.Uptime, g.NetIn, g.NetOut, g.DiskRead, g.DiskWrite = "stopped", 0, 0, 0, 0, 0, 0, 0
	}
}

// config attaches a guest config with the given vCPUs and memory, then applies config mutators.
func config(vcpus int, memory uint64, opts ...func(*pve.GuestConfig)) func(*pve.Guest) {
	return func(g *pve.Guest) {
		c := &pve.GuestConfig{VCPUs: vcpus, Cores: vcpus, Sockets: 1, Memory: memory, Tags: g.Tags}
		for _, o := range opts {
			o(c)
		}
		g.Config = c
	}
}

func onboot() func(*pve.GuestConfig) { return func(c *pve.GuestConfig) { c.OnBoot = true } }
func disk(key, storage string, size uint64) func(*pve.GuestConfig) {
	return func(c *pve.GuestConfig) {
		c.Disks = append(c.Disks, pve.Disk{Key: key, Storage: storage, Volume: storage + ":vm-disk-" + key, Size: size})
	}
}
func cdrom(key, storage string) func(*pve.GuestConfig) {
	return func(c *pve.GuestConfig) {
		c.Disks = append(c.Disks, pve.Disk{Key: key, Storage: storage, Volume: storage + ":iso/x.iso", Size: gib, CDROM: true})
	}
}
func device(key string, kind pve.LocalDeviceKind, value string) func(*pve.GuestConfig) {
	return func(c *pve.GuestConfig) {
		c.LocalDevices = append(c.LocalDevices, pve.LocalDevice{Key: key, Kind: kind, Value: value})
	}
}
func bindMount(key, source string, shared bool) func(*pve.GuestConfig) {
	return func(c *pve.GuestConfig) {
		c.MountPoints = append(c.MountPoints, pve.MountPoint{Key: key, Source: source, Path: "/mnt/" + key, Bind: true, Shared: shared})
	}
}

// storage is an enabled, active, local dir storage holding images.
func storage(nodeName, name string, opts ...func(*pve.Storage)) pve.Storage {
	s := pve.Storage{Node: nodeName, Storage: name, Type: "dir", Content: []string{"images", "rootdir"},
		Enabled: true, Active: true, Total: 500 * gib, Used: 100 * gib, Avail: 400 * gib}
	for _, o := range opts {
		o(&s)
	}
	return s
}

func shared(pluginType string) func(*pve.Storage) {
	return func(s *pve.Storage) { s.Shared, s.Type = true, pluginType }
}
func content(c ...string) func(*pve.Storage) { return func(s *pve.Storage) { s.Content = c } }
func inactive() func(*pve.Storage)           { return func(s *pve.Storage) { s.Active = false } }
func disabled() func(*pve.Storage) {
	return func(s *pve.Storage) { s.Enabled, s.Active = false, false }
}

var t0 = time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)

// task is a finished task started at t0+start lasting dur; status "" with dur 0 means running.
func task(typ, nodeName, id string, start, dur time.Duration, status string) pve.Task {
	t := pve.Task{
		UPID: fmt.Sprintf("UPID:%s:0000A1B2:00C0FFEE:%08X:%s:%s:root@pam:", nodeName, t0.Add(start).Unix(), typ, id),
		Node: nodeName, Type: typ, ID: id, User: "root@pam", StartTime: t0.Add(start), Status: status,
	}
	if status != "" {
		t.EndTime = t0.Add(start + dur)
	}
	return t
}

// representativeInventory is a three-node cluster with one node offline, VMs and containers in every state the
// collectors distinguish, local and shared storage, HA, tasks, replication, subscriptions and a connected QDevice.
func representativeInventory() *pve.Inventory {
	return inventory(
		withCluster("pvec", true, 3, 7),
		withVersion("9.2.11", "9.2", "f6997e69"),
		withNodes(
			node("pve1", corosyncID(1), cpus(16), local(), subLevel("c"), memAvailable(40*gib), nodeHA("online"),
				nodePSI(pve.Pressure{CPUSome: 0.02, IOSome: 0.01, IOFull: 0.005, MemorySome: 0.001}),
				subscription("Active", "c", time.Date(2027, 1, 31, 0, 0, 0, 0, time.UTC))),
			node("pve2", corosyncID(2), statusUnread(), nodeHA("maintenance")),
			node("pve3", corosyncID(3), offline(), nodeHA("unknown")),
		),
		withGuests(
			guest(100, named("web"), tags("exclude_db", "prod"), haState("started"),
				memHost(3*gib), guestPSI(pve.Pressure{CPUSome: 0.1, CPUFull: 0.05}),
				config(4, 4*gib, onboot(), disk("scsi0", "local-lvm", 32*gib), disk("scsi1", "ceph", 100*gib),
					cdrom("ide2", "local"), device("hostpci0", pve.DevicePCI, "0000:01:00.0"))),
			guest(101, ct(), named("db"), on("pve2"), locked("backup"),
				config(0, 2*gib, disk("rootfs", "local", 8*gib), bindMount("mp0", "/srv/data", false), bindMount("mp1", "/mnt/pve/nfs", true))),
			guest(102, named("old"), stopped(), config(2, 2*gib, disk("virtio0", "ceph", 10*gib))),
			guest(9000, named("tmpl"), template(), config(2, 2*gib)),
		),
		withStorages(
			storage("pve1", "local", content("vztmpl", "iso", "backup")),
			storage("pve1", "local-lvm", func(s *pve.Storage) { s.Type = "lvmthin" }),
			storage("pve1", "ceph", shared("rbd"), content("images")),
			storage("pve2", "local", inactive()),
			storage("pve2", "ceph", shared("rbd"), content("images")),
			storage("pve2", "nfs-off", shared("nfs"), disabled()),
		),
		withHA(pve.HAResource{SID: "vm:100", Type: "vm", VMID: 100, State: "started", CRMState: "started", Node: "pve1"}),
		withTasks(
			task("qmigrate", "pve1", "100", 0, 90*time.Second, "OK"),
			task("qmigrate", "pve2", "100", time.Hour, 30*time.Second, "WARNINGS: 1"),
			task("vzmigrate", "pve2", "101", 10*time.Minute, 5*time.Second, "migration aborted"),
			task("qmigrate", "pve1", "102", 2*time.Hour, 0, ""),
			task("vzdump", "pve1", "100", 0, time.Minute, "OK"),
		),
		withReplication(pve.ReplicationJob{
			ID: "100-0", Guest: 100, Source: "pve1", Target: "pve2",
			LastSync: t0, LastTry: t0, NextSync: t0.Add(15 * time.Minute), Duration: 7500 * time.Millisecond, FailCount: 0,
		}, pve.ReplicationJob{ID: "101-0", Guest: 101, GuestType: pve.TypeLXC, Source: "pve2", Target: "pve1", LastTry: t0.Add(-time.Hour), FailCount: 2, Error: "no space"}),
		withNotBackedUp("qemu/102", "lxc/101"),
		withQDevice(pve.QDevice{Model: "Net", Algorithm: "Fifty-Fifty split", QNetdHost: "10.0.0.9:5403",
			TieBreaker: "Node with lowest node ID", State: "Connected"}),
	)
}
