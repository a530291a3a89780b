// Package placement decides which guests of a Proxmox VE cluster should move where, and explains why.
//
// It is pure: a State (the cluster as it is and as it has been, including the current time) and a Policy go in,
// a Plan comes out. It does no I/O, reads no clock and is deterministic: the same State, Policy and Request
// always give the same Plan, byte for byte. Hard constraints are filters with coded reasons, soft preferences are
// weighted scorers whose per-plugin breakdown is kept, and the planner proceeds in explicit steps (snapshot,
// normalise, classify, guard, sort, move-and-simulate) in the spirit of kube-scheduler and the descheduler.
package placement

import "time"

// GiB is 2^30 bytes.
const GiB = 1 << 30

// Series is one metric sampled on the State's grid: Series[i] is the value at State.End − (len−1−i)·State.Step,
// so the last element is the most recent sample. NaN marks a missing sample. Every non-nil Series in a State has
// the same length.
type Series []float32

// Metric is one measured quantity of a node or a guest: its history on the State grid plus the adapter's
// statement of how much of that history is real.
type Metric struct {
	// Series is the history on the State grid; nil when the metric is missing altogether.
	Series Series
	// Coverage is the share (0..1) of the planning horizon covered by real samples, as the adapter judged it
	// (missing series, gaps, history shorter than 7 days). The planner further multiplies it by the share of
	// finite samples it sees, so 1 is a safe value for a complete series; 0 (the zero value) means "no data".
	Coverage float64
	// Summary optionally supplies window aggregates for windows the Series does not span (e.g. a 24 h series
	// with a 7 d average computed by Prometheus). Same unit as Series. Nil: the planner uses what the Series has.
	Summary *Summary
}

// Summary holds aggregates of a Metric over fixed windows, in the Metric's unit.
type Summary struct {
	// Avg24h and Avg7d are averages over the last 24 hours and 7 days.
	Avg24h, Avg7d float64
	// P95 is the 95th percentile over the longest window available.
	P95 float64
}

// NodeLoad is a node's measured usage.
type NodeLoad struct {
	// CPU is CPU in use, in cores (usage ratio × logical CPUs), everything on the node included.
	CPU Metric
	// Memory is memory in use, in bytes, everything on the node included.
	Memory Metric
	// IOWait is the iowait ratio (0..1).
	IOWait Metric
}

// Demand is what a guest consumes, in node-independent units so it can be re-expressed on any target.
type Demand struct {
	// CPU is the guest's CPU use in cores (usage ratio × its vCPUs).
	CPU Metric
	// Memory is host memory used by the guest in bytes (PVE 9 memhost when available, else mem).
	Memory Metric
	// DiskIO is the guest's disk throughput in bytes per second (read+write). Optional: when present on the
	// guests of a node, that node's iowait is attributed to its guests in proportion to it and moves with them.
	DiskIO Metric
}

// StorageState is one storage as seen from one node.
type StorageState struct {
	// Name is the storage ID, e.g. "local-zfs".
	Name string
	// Enabled and Active are PVE's flags for this storage on this node.
	Enabled, Active bool
	// Shared is true when the same storage is reachable from every node (NFS, Ceph RBD, ...).
	Shared bool
	// AvailBytes is the free space; meaningful only when AvailKnown.
	AvailBytes uint64
	AvailKnown bool
}

// Node is one cluster member.
type Node struct {
	// Name is the PVE node name, e.g. "pve1".
	Name string
	// Online is true when the node is a quorate, reachable cluster member.
	Online bool
	// Maintenance is true when the node is in (or being put into) maintenance: it accepts no guests.
	Maintenance bool
	// CPUs is the number of logical CPUs.
	CPUs int
	// MemoryBytes is the node's total memory in bytes.
	MemoryBytes uint64
	// StoragesKnown is false when the node's storage list could not be read. Storage checks then fail closed:
	// no guest with a disk is placed on the node.
	StoragesKnown bool
	// Storages lists the storages configured for this node.
	Storages []StorageState
	// Load is the node's measured usage.
	Load NodeLoad
}

// GuestType is "qemu" or "lxc", as PVE spells it.
type GuestType string

// The guest types PVE knows.
const (
	QEMU GuestType = "qemu"
	LXC  GuestType = "lxc"
)

// Disk is one volume of a guest: a disk, an unused volume or CD-ROM media on a storage (each needs its storage on
// the target). Raw device paths are LocalDevices, not Disks.
type Disk struct {
	// Key is the config key, e.g. "scsi0", "rootfs", "mp1".
	Key string
	// Storage is the storage ID the volume lives on.
	Storage string
	// SizeBytes is the volume size; 0 when unknown.
	SizeBytes uint64
	// Shared is true when Storage is shared, so migration copies nothing.
	Shared bool
}

// BindMount is an LXC mount point whose source is a host path.
type BindMount struct {
	// Key is the config key, e.g. "mp0"; Source is the host path.
	Key, Source string
	// Shared is true when the path is marked shared=1 (present on every node).
	Shared bool
}

// Guest is one VM or container.
type Guest struct {
	// ID is PVE's resource id, e.g. "qemu/100"; it identifies the guest everywhere in a Plan.
	ID   string
	Type GuestType
	// Name is the guest's name (informational).
	Name string
	// Node is the node the guest is on now (for an in-flight migration: the source).
	Node string
	// Running is true when the guest is running (or paused): it occupies CPU and memory.
	Running bool
	// Template is true for templates; templates never move.
	Template bool
	// VCPUs is the configured vCPU count (0 for an LXC with no limit, counted as the node's CPUs).
	VCPUs int
	// MemoryBytes is the configured maximum memory.
	MemoryBytes uint64
	// Tags are PVE tags, lower case: "ignore", "pin_<node>", "exclude_<group>", "affinity_<group>".
	Tags []string
	// Disks are the guest's volumes.
	Disks []Disk
	// LocalDevices are config keys of host-local hardware (hostpci0, usb1, serial0, dev0, a raw /dev disk):
	// such a guest never moves.
	LocalDevices []string
	// BindMounts are LXC bind mounts.
	BindMounts []BindMount
	// HAManaged is true when the guest is an HA resource.
	HAManaged bool
	// Lock is the config lock (migrate, backup, snapshot, ...) or "": a locked guest never moves.
	Lock string
	// Demand is the guest's measured use.
	Demand Demand
}

// Migration is a migration already running: both source and target count as holding the guest.
type Migration struct {
	// Guest is the guest ID, e.g. "qemu/100".
	Guest string
	// Source and Target are node names.
	Source, Target string
}

// State is everything the planner knows: the cluster as it is and as it has been.
type State struct {
	// Now is the planning time; plans carry it, nothing reads a clock.
	Now time.Time
	// End is the time of the last sample of every Series; Step the grid step (e.g. 5 minutes).
	End  time.Time
	Step time.Duration
	// Nodes and Guests in any order; the planner sorts them by name/ID.
	Nodes  []Node
	Guests []Guest
	// InFlight are migrations running now.
	InFlight []Migration
}
