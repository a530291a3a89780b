package pve

import (
	"strconv"
	"time"
)

// Inventory is one consistent snapshot of a cluster as the PVE API showed it. Everything outside this package
// (exporter, planner, policy, executor) reads the cluster through it. Fields that an API version does not send
// are left at their zero value and flagged (e.g. Node.PSI is nil on PVE 8), never invented.
type Inventory struct {
	// FetchedAt is when the snapshot was completed.
	FetchedAt time.Time
	Cluster   Cluster
	Nodes     []Node
	Guests    []Guest
	Storages  []Storage
	Tasks     []Task
	HA        HAStatus
	// Replication lists storage replication jobs of every node (/nodes/{n}/replication).
	Replication []ReplicationJob
	// NotBackedUp lists guest ids ("qemu/100") that no backup job covers (/cluster/backup-info/not-backed-up).
	NotBackedUp []string
	// QDevice is the corosync QDevice (/cluster/config/qdevice); nil when none is configured, on a standalone
	// node, or when it was not read (see Partial).
	QDevice *QDevice
	// Partial lists what could not be fetched (a node offline, 403 on one node, a timeout). An Inventory with
	// Partial entries is still usable for what it does contain; consumers decide whether that is enough.
	Partial []FetchError
}

// Cluster is the cluster-wide part of /cluster/status and /version.
type Cluster struct {
	// Name is empty for a standalone node (no cluster entry in /cluster/status).
	Name      string
	Quorate   bool
	NodeCount int
	// ConfigVersion is the corosync config version of the cluster entry.
	ConfigVersion int
	// PVEVersion is /version's "version" (e.g. "9.2.11"); Release is its "release" ("9.2"); RepoID its "repoid".
	PVEVersion string
	Release    string
	RepoID     string
}

// Node is one cluster member, merged from /cluster/status, /cluster/resources (type node) and /nodes/{n}/status.
type Node struct {
	Name   string
	NodeID int
	Online bool
	// Local is true for the node that answered the API call.
	Local bool
	IP    string
	// Level is the subscription level from /cluster/status ("" when none).
	Level string
	// HAState is the HA manager's state of the node (online, maintenance, unknown, fence, gone) that
	// /cluster/resources sends as "hastate" on node entries; "" when the cluster has no HA manager status.
	HAState string

	// Capacity and usage. CPU is the usage ratio of all CPUs (0..1); CPUs is the logical CPU count.
	CPUs     int
	CPU      float64
	MemTotal uint64
	MemUsed  uint64
	// MemAvailable is node status memory.available (PVE 9.0+); HasMemAvailable says whether it was sent.
	MemAvailable    uint64
	HasMemAvailable bool
	SwapTotal       uint64
	SwapUsed        uint64
	RootFSTotal     uint64
	RootFSUsed      uint64
	Uptime          time.Duration
	// LoadAvg is 1, 5 and 15 minute load (sent as strings by PVE).
	LoadAvg [3]float64
	// IOWait is the iowait ratio (node status "wait").
	IOWait float64
	// PSI is the node's pressure stall information (PVE 9 RRD keys); nil when the API does not send it.
	PSI *Pressure

	CPUModel   string
	CPUSockets int
	CPUCores   int
	CPUMHz     float64
	KernelInfo string
	PVEVersion string // node status pveversion, e.g. "pve-manager/9.2.11/f6997e69"
	// Subscription is /nodes/{n}/subscription; nil when not fetched.
	Subscription *Subscription
	// StatusFetched is false when /nodes/{n}/status could not be read (node offline or erroring); the fields
	// that come only from it are then zero.
	StatusFetched bool
}

// Pressure is Linux PSI as PVE reports it: the share of time (0..1) some or all tasks stalled on a resource.
type Pressure struct {
	CPUSome    float64
	CPUFull    float64
	IOSome     float64
	IOFull     float64
	MemorySome float64
	MemoryFull float64
}

// GuestType is "qemu" or "lxc", as PVE spells it in ids and paths.
type GuestType string

const (
	TypeQEMU GuestType = "qemu"
	TypeLXC  GuestType = "lxc"
)

// Guest is a VM or container from /cluster/resources, with its config facts when the config was fetched.
type Guest struct {
	Type     GuestType
	VMID     int
	Name     string
	Node     string
	Status   string // running, stopped, paused, ...
	Template bool
	Tags     []string
	Pool     string
	// Lock is the config lock (migrate, backup, snapshot, ...) or "".
	Lock string
	// HAState is the HA state from /cluster/resources ("started", "stopped", ...) or "" when not HA-managed.
	HAState   string
	HAManaged bool

	CPUs       float64 // maxcpu
	CPU        float64 // usage ratio of CPUs
	MemMax     uint64
	MemUsed    uint64
	MemHost    uint64 // PVE 9: host memory used by the guest process; 0 when not sent
	HasMemHost bool
	DiskMax    uint64
	DiskUsed   uint64
	NetIn      uint64
	NetOut     uint64
	DiskRead   uint64
	DiskWrite  uint64
	Uptime     time.Duration
	PSI        *Pressure

	// Config is nil until the guest's config was fetched.
	Config *GuestConfig
}

// ID is PVE's resource id, e.g. "qemu/100".
func (g Guest) ID() string { return string(g.Type) + "/" + itoa(g.VMID) }

// GuestConfig holds the facts of a guest config that placement and the exporter need, parsed once.
type GuestConfig struct {
	Digest  string
	Cores   int
	Sockets int
	// VCPUs is the effective vCPU count: qemu vcpus if set, else cores*sockets; LXC cores (0 = all host CPUs).
	VCPUs  int
	Memory uint64 // bytes
	OnBoot bool
	Tags   []string
	// Disks are the guest's volumes (qemu scsi/virtio/ide/sata/efidisk/tpmstate/unused, LXC rootfs/mpN volumes).
	Disks []Disk
	// LocalDevices are passthrough and host-local hardware that pins the guest to its node.
	LocalDevices []LocalDevice
	// MountPoints are LXC mount points (rootfs excluded).
	MountPoints []MountPoint
}

// Disk is one volume of a guest config.
type Disk struct {
	Key     string // "scsi0", "rootfs", "mp1", "unused0", ...
	Storage string // storage ID, "" for raw device paths
	Volume  string // full volid, e.g. "local-zfs:vm-100-disk-0"
	Size    uint64 // bytes, from size=; 0 when unknown
	CDROM   bool   // media=cdrom (not a disk to copy)
	Unused  bool
}

// LocalDeviceKind classifies hardware that cannot follow a guest to another node.
type LocalDeviceKind string

const (
	DevicePCI     LocalDeviceKind = "hostpci"
	DeviceUSB     LocalDeviceKind = "usb"
	DeviceSerial  LocalDeviceKind = "serial"
	DeviceRawDisk LocalDeviceKind = "rawdisk" // a /dev/... path used as a disk
	DeviceLXCDev  LocalDeviceKind = "lxcdev"  // LXC devN or raw lxc.* device passthrough
)

// LocalDevice is one piece of host-local hardware a guest uses.
type LocalDevice struct {
	Key   string
	Kind  LocalDeviceKind
	Value string
}

// MountPoint is an LXC mpN entry.
type MountPoint struct {
	Key    string // "mp0"
	Source string // a path (bind mount) or a volid
	Path   string // mp=
	Bind   bool   // source is a host path, not a storage volume
	Shared bool   // shared=1: the same path exists on every node
}

// Storage is a storage as seen from one node (/nodes/{n}/storage, or /cluster/resources type storage).
type Storage struct {
	Node    string
	Storage string
	Type    string   // plugin type: dir, zfspool, lvmthin, nfs, rbd, ...
	Content []string // sorted
	Shared  bool
	Enabled bool
	Active  bool
	Total   uint64
	Used    uint64
	Avail   uint64
}

// ID is PVE's resource id, e.g. "storage/pve1/local".
func (s Storage) ID() string { return "storage/" + s.Node + "/" + s.Storage }

// Task is one entry of /cluster/tasks.
type Task struct {
	UPID      string
	Node      string
	Type      string // qmigrate, vzmigrate, vzdump, ...
	ID        string // usually the vmid; "" for cluster-wide tasks
	User      string
	TokenID   string
	StartTime time.Time
	// EndTime is zero while the task runs.
	EndTime time.Time
	// Status is "" while running, else the exit status: "OK", "WARNINGS: N" or an error text.
	Status string
}

// Running reports whether the task has not ended.
func (t Task) Running() bool { return t.EndTime.IsZero() }

// HAStatus is /cluster/ha/resources merged with /cluster/ha/status/current.
type HAStatus struct {
	Quorate   bool
	Master    string
	Resources []HAResource
}

// HAResource is one HA-managed resource.
type HAResource struct {
	SID   string // "vm:100", "ct:101"
	Type  string // "vm", "ct"
	VMID  int
	State string // requested state: started, stopped, ignored, disabled
	// CRMState is the manager's current state from ha/status/current (started, migrate, fence, ...).
	CRMState string
	Node     string
}

// FetchError records one part of the snapshot that could not be read.
type FetchError struct {
	Endpoint string // API path, e.g. "/nodes/pve3/status"
	Node     string
	Err      error
	// Stale is true when an older value of this part stands in for it in the Inventory.
	Stale bool
}

func (e FetchError) Error() string {
	if e.Stale {
		return e.Endpoint + " (using older data): " + e.Err.Error()
	}
	return e.Endpoint + ": " + e.Err.Error()
}

// Unwrap gives errors.As access to the *APIError.
func (e FetchError) Unwrap() error { return e.Err }

func itoa(i int) string { return strconv.Itoa(i) }

// Subscription is a node's subscription state.
type Subscription struct {
	Status      string // "active", "notfound", "expired", "invalid", ...
	Level       string // "c", "b", "s", "p" or ""
	NextDueDate time.Time
}

// ReplicationJob is one storage replication job as /nodes/{n}/replication reports it.
type ReplicationJob struct {
	ID    string // "100-0"
	Guest int
	// GuestType is PVE's vmtype of the guest; "" when the answer did not say.
	GuestType GuestType
	Source    string
	Target    string
	// LastSync is the start of the last successful sync, LastTry of the last attempt; zero before the first.
	LastSync  time.Time
	LastTry   time.Time
	NextSync  time.Time
	Duration  time.Duration
	FailCount int
	Error     string
}
