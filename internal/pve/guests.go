package pve

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"time"

	proxmox "github.com/luthermonson/go-proxmox"
)

// GuestRef addresses one guest: its type, id and the node it is on.
type GuestRef struct {
	Type GuestType
	VMID int
	Node string
}

// Ref returns the address of g.
func (g Guest) Ref() GuestRef { return GuestRef{Type: g.Type, VMID: g.VMID, Node: g.Node} }

// ID is PVE's resource id, e.g. "qemu/100".
func (r GuestRef) ID() string { return string(r.Type) + "/" + strconv.Itoa(r.VMID) }

func (r GuestRef) path(rest string) (string, error) {
	if r.Type != TypeQEMU && r.Type != TypeLXC {
		return "", fmt.Errorf("guest %s: unknown type %q (want qemu or lxc)", r.ID(), r.Type)
	}
	if r.VMID <= 0 || r.Node == "" {
		return "", fmt.Errorf("guest %s on node %q: incomplete address", r.ID(), r.Node)
	}
	return nodePath(r.Node, "/", string(r.Type), "/", strconv.Itoa(r.VMID), rest), nil
}

// GuestConfig reads and parses …/{qemu|lxc}/{vmid}/config (the current config, pending changes not applied).
func (c *Client) GuestConfig(ctx context.Context, g GuestRef) (*GuestConfig, error) {
	p, err := g.path("/config?current=1")
	if err != nil {
		return nil, err
	}
	var raw rawConfig
	if err := c.get(ctx, p, &raw); err != nil {
		return nil, err
	}
	kv, pairs := raw.split()
	return ParseGuestConfig(g.Type, kv, pairs), nil
}

// DecodeGuestConfig parses the "data" object of a config answer; for tests, fixtures and the simulator.
func DecodeGuestConfig(t GuestType, data []byte) (*GuestConfig, error) {
	var raw rawConfig
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("decoding %s config: %w", t, err)
	}
	kv, pairs := raw.split()
	return ParseGuestConfig(t, kv, pairs), nil
}

// GuestStatus is …/status/current of a VM or container.
type GuestStatus struct {
	Status    string // running, stopped
	QMPStatus string // qemu only: running, paused, prelaunch, ...
	Lock      string
	Uptime    time.Duration
	CPUs      float64
	CPU       float64
	MemMax    uint64
	MemUsed   uint64
	// MemHost is the host memory used by the guest (PVE 9); HasMemHost says whether it was sent.
	MemHost    uint64
	HasMemHost bool
	DiskMax    uint64
	DiskUsed   uint64
	NetIn      uint64
	NetOut     uint64
	DiskRead   uint64
	DiskWrite  uint64
	HAManaged  bool
	Tags       []string
	// PSI is nil unless PVE 9 sent pressure values (numbers for qemu, strings for LXC).
	PSI *Pressure
}

type guestStatusBody struct {
	pressureKeys
	Status    string    `json:"status"`
	QMPStatus string    `json:"qmpstatus"`
	Lock      string    `json:"lock"`
	Uptime    flexInt   `json:"uptime"`
	CPUs      flexFloat `json:"cpus"`
	CPU       flexFloat `json:"cpu"`
	MaxMem    flexInt   `json:"maxmem"`
	Mem       flexInt   `json:"mem"`
	MemHost   *flexInt  `json:"memhost"`
	MaxDisk   flexInt   `json:"maxdisk"`
	Disk      flexInt   `json:"disk"`
	NetIn     flexInt   `json:"netin"`
	NetOut    flexInt   `json:"netout"`
	DiskRead  flexInt   `json:"diskread"`
	DiskWrite flexInt   `json:"diskwrite"`
	Tags      string    `json:"tags"`
	HA        struct {
		Managed pveBool `json:"managed"`
	} `json:"ha"`
}

func (b *guestStatusBody) convert() *GuestStatus {
	s := &GuestStatus{
		Status: b.Status, QMPStatus: b.QMPStatus, Lock: b.Lock,
		Uptime: time.Duration(b.Uptime) * time.Second,
		CPUs:   float64(b.CPUs), CPU: float64(b.CPU),
		MemMax: b.MaxMem.uint64(), MemUsed: b.Mem.uint64(),
		DiskMax: b.MaxDisk.uint64(), DiskUsed: b.Disk.uint64(),
		NetIn: b.NetIn.uint64(), NetOut: b.NetOut.uint64(),
		DiskRead: b.DiskRead.uint64(), DiskWrite: b.DiskWrite.uint64(),
		HAManaged: bool(b.HA.Managed),
		Tags:      SplitTags(b.Tags),
		PSI:       b.pressureKeys.pressure(),
	}
	if b.MemHost != nil {
		s.MemHost, s.HasMemHost = b.MemHost.uint64(), true
	}
	return s
}

// GuestStatus reads …/{qemu|lxc}/{vmid}/status/current.
func (c *Client) GuestStatus(ctx context.Context, g GuestRef) (*GuestStatus, error) {
	p, err := g.path("/status/current")
	if err != nil {
		return nil, err
	}
	var b guestStatusBody
	if err := c.get(ctx, p, &b); err != nil {
		return nil, err
	}
	return b.convert(), nil
}

// MigrateOptions are the knobs of a migration. Online applies to running VMs (live migration); Restart to
// running containers (stop, move, start: containers cannot migrate live).
type MigrateOptions struct {
	Online         bool
	WithLocalDisks bool // qemu: copy local disks along (with-local-disks=1)
	Restart        bool // lxc: restart migration
	// Timeout is the LXC restart-migration shutdown timeout; 0 keeps PVE's default (180s).
	Timeout time.Duration
	// BandwidthLimitKiB caps the migration in KiB/s; 0 keeps the datacenter/storage default.
	BandwidthLimitKiB uint64
}

// lxcMigrateParams adds pve-container's shutdown timeout, which go-proxmox's options lack.
type lxcMigrateParams struct {
	proxmox.ContainerMigrateOptions
	Timeout int `json:"timeout,omitempty"`
}

// Migrate starts moving g to target and returns the task's UPID. It is never retried: a POST whose answer got
// lost may still have started the task, so the caller must look at /cluster/tasks before trying again.
func (c *Client) Migrate(ctx context.Context, g GuestRef, target string, o MigrateOptions) (string, error) {
	p, err := g.path("/migrate")
	if err != nil {
		return "", err
	}
	if target == "" {
		return "", fmt.Errorf("migrating %s: empty target node", g.ID())
	}
	var bw *uint64
	if o.BandwidthLimitKiB > 0 {
		bw = &o.BandwidthLimitKiB
	}
	var body any
	switch g.Type {
	case TypeQEMU:
		body = &proxmox.VirtualMachineMigrateOptions{
			Target: target, BWLimit: bw,
			Online: proxmox.IntOrBool(o.Online), WithLocalDisks: proxmox.IntOrBool(o.WithLocalDisks),
		}
	default:
		body = &lxcMigrateParams{
			ContainerMigrateOptions: proxmox.ContainerMigrateOptions{
				Target: target, BWLimit: bw, Restart: proxmox.IntOrBool(o.Restart),
			},
			Timeout: int(o.Timeout / time.Second),
		}
	}
	var upid string
	if err := c.post(ctx, p, body, &upid); err != nil {
		return "", fmt.Errorf("migrating %s from %s to %s: %w", g.ID(), g.Node, target, err)
	}
	if _, err := ParseUPID(upid); err != nil {
		return "", fmt.Errorf("migrating %s: answer is not a task id: %w", g.ID(), err)
	}
	return upid, nil
}

// MigratePrecondition is what PVE says about migrating a guest (GET …/migrate): the nodes it may go to and why
// the others are refused. Containers have this endpoint from PVE 9.0 on.
type MigratePrecondition struct {
	Running      bool
	AllowedNodes []string
	// NotAllowed maps a refused node to its reasons.
	NotAllowed map[string]MigrateBlockers
	// LocalDisks are qemu volumes on local storage.
	LocalDisks []LocalDiskInfo
	// LocalResources are qemu config keys that pin the VM (hostpci0, usb0, ...).
	LocalResources []string
	// MappedResources are keys that use cluster resource mappings.
	MappedResources []string
	// DependentHAResources are HA resources that must move along (PVE 9 HA rules).
	DependentHAResources []string
}

// MigrateBlockers are the reasons one node is refused.
type MigrateBlockers struct {
	UnavailableStorages  []string
	UnavailableResources []string
	BlockingHAResources  []string
}

// LocalDiskInfo is one local volume a qemu migration would have to copy.
type LocalDiskInfo struct {
	VolID     string
	DriveName string
	Size      uint64
	CDROM     bool
	Shared    bool
	Replicate bool
	Unused    bool
}

// haRef is a HA resource reference that PVE sends either as a sid string or as {sid, cause}.
type haRef string

func (h *haRef) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '{' {
		var o struct {
			SID string `json:"sid"`
		}
		if err := json.Unmarshal(b, &o); err != nil {
			return err
		}
		*h = haRef(o.SID)
		return nil
	}
	var s flexString
	if err := s.UnmarshalJSON(b); err != nil {
		return err
	}
	*h = haRef(s)
	return nil
}

type blockersBody struct {
	UnavailableStorages  []string `json:"unavailable_storages"`
	UnavailableResources []string `json:"unavailable-resources"`
	BlockingHA           []haRef  `json:"blocking-ha-resources"`
	BlockingHAUnderscore []haRef  `json:"blocking_ha_resources"`
}

// preconditionBody accepts qemu-server's underscore keys and pve-container's (PVE 9) hyphenated ones.
type preconditionBody struct {
	Running           pveBool                 `json:"running"`
	AllowedNodes      []string                `json:"allowed_nodes"`
	AllowedNodesH     []string                `json:"allowed-nodes"`
	NotAllowedNodes   map[string]blockersBody `json:"not_allowed_nodes"`
	NotAllowedNodesH  map[string]blockersBody `json:"not-allowed-nodes"`
	LocalDisks        []localDiskBody         `json:"local_disks"`
	LocalResources    []string                `json:"local_resources"`
	MappedResources   []string                `json:"mapped-resources"`
	DependentHA       []haRef                 `json:"dependent-ha-resources"`
	DependentHAUnders []haRef                 `json:"dependent_ha_resources"`
}

type localDiskBody struct {
	VolID     string  `json:"volid"`
	DriveName string  `json:"drivename"`
	Size      flexInt `json:"size"`
	CDROM     pveBool `json:"cdrom"`
	Shared    pveBool `json:"shared"`
	Replicate pveBool `json:"replicate"`
	Unused    pveBool `json:"is_unused"`
}

func (b *preconditionBody) convert() *MigratePrecondition {
	mp := &MigratePrecondition{
		Running:         bool(b.Running),
		AllowedNodes:    append(append([]string(nil), b.AllowedNodes...), b.AllowedNodesH...),
		NotAllowed:      map[string]MigrateBlockers{},
		LocalResources:  b.LocalResources,
		MappedResources: b.MappedResources,
	}
	for _, m := range []map[string]blockersBody{b.NotAllowedNodes, b.NotAllowedNodesH} {
		for node, bl := range m {
			mb := MigrateBlockers{UnavailableStorages: bl.UnavailableStorages, UnavailableResources: bl.UnavailableResources}
			for _, h := range append(bl.BlockingHA, bl.BlockingHAUnderscore...) {
				mb.BlockingHAResources = append(mb.BlockingHAResources, string(h))
			}
			// qemu-server lists every allowed node here with an empty object; only real reasons count.
			if len(mb.UnavailableStorages)+len(mb.UnavailableResources)+len(mb.BlockingHAResources) > 0 {
				mp.NotAllowed[node] = mb
			}
		}
	}
	for _, h := range append(b.DependentHA, b.DependentHAUnders...) {
		mp.DependentHAResources = append(mp.DependentHAResources, string(h))
	}
	for _, d := range b.LocalDisks {
		mp.LocalDisks = append(mp.LocalDisks, LocalDiskInfo{
			VolID: d.VolID, DriveName: d.DriveName, Size: d.Size.uint64(), CDROM: bool(d.CDROM),
			Shared: bool(d.Shared), Replicate: bool(d.Replicate), Unused: bool(d.Unused),
		})
	}
	return mp
}

// MigratePrecondition asks PVE whether g can migrate to target ("" asks about every node).
func (c *Client) MigratePrecondition(ctx context.Context, g GuestRef, target string) (*MigratePrecondition, error) {
	p, err := g.path("/migrate")
	if err != nil {
		return nil, err
	}
	if target != "" {
		p += "?" + url.Values{"target": {target}}.Encode()
	}
	var b preconditionBody
	if err := c.get(ctx, p, &b); err != nil {
		return nil, err
	}
	return b.convert(), nil
}
