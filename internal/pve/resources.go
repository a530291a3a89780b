package pve

import (
	"context"
	"sort"
	"strings"
	"sync"
	"time"

	jsoniter "github.com/json-iterator/go"
)

// resourceEntry is one element of /cluster/resources. Nodes, guests, storages, pools and SDN zones share it; go-proxmox's
// ClusterResource lacks lock, memhost, hastate and pool and fails on string-typed numbers. It is decoded by
// readFrom (resourcedecode.go); the tags name the keys, and a fuzz test holds readFrom to what encoding/json
// makes of them.
type resourceEntry struct {
	pressureKeys           // guest PSI: PVE 9's node-level guest lists carry it, /cluster/resources does not
	ID           string    `json:"id"`
	Type         string    `json:"type"`
	Node         string    `json:"node"`
	Status       string    `json:"status"`
	Name         string    `json:"name"`
	VMID         flexInt   `json:"vmid"`
	Template     pveBool   `json:"template"`
	Tags         string    `json:"tags"`
	Pool         string    `json:"pool"`
	Lock         string    `json:"lock"`
	HAState      string    `json:"hastate"`
	CPU          flexFloat `json:"cpu"`
	MaxCPU       flexFloat `json:"maxcpu"`
	CPUs         flexFloat `json:"cpus"` // node-level guest lists say cpus where /cluster/resources says maxcpu
	Mem          flexInt   `json:"mem"`
	MaxMem       flexInt   `json:"maxmem"`
	MemHost      *flexInt  `json:"memhost"`
	Disk         flexInt   `json:"disk"`
	MaxDisk      flexInt   `json:"maxdisk"`
	NetIn        flexInt   `json:"netin"`
	NetOut       flexInt   `json:"netout"`
	DiskRead     flexInt   `json:"diskread"`
	DiskWrite    flexInt   `json:"diskwrite"`
	Uptime       flexInt   `json:"uptime"`
	Level        string    `json:"level"`
	Storage      string    `json:"storage"`
	PluginType   string    `json:"plugintype"`
	Content      string    `json:"content"`
	Shared       pveBool   `json:"shared"`
}

// Resources is /cluster/resources split by type: the one call that shows the whole cluster's placement and usage.
type Resources struct {
	Nodes    []Node
	Guests   []Guest
	Storages []Storage
}

// ClusterResources reads /cluster/resources.
func (c *Client) ClusterResources(ctx context.Context) (*Resources, error) {
	r := &Resources{}
	err := c.getIter(ctx, "/cluster/resources", func(it *jsoniter.Iterator) {
		*r = c.resourceSizes.make() // a repeated attempt starts over
		readEntries(it, r.add)
	})
	if err != nil {
		return nil, err
	}
	r.sort()
	c.resourceSizes.remember(r)
	return r, nil
}

// resourceSizes are the lengths of the last Resources read: the next read allocates them at once instead of
// growing its slices (as Prometheus sizes a scrape's buffer from the last scrape).
type resourceSizes struct {
	mu                      sync.Mutex
	nodes, guests, storages int
}

func (s *resourceSizes) make() Resources {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Resources{
		Nodes:    make([]Node, 0, s.nodes),
		Guests:   make([]Guest, 0, s.guests),
		Storages: make([]Storage, 0, s.storages),
	}
}

func (s *resourceSizes) remember(r *Resources) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nodes, s.guests, s.storages = len(r.Nodes), len(r.Guests), len(r.Storages)
}

// add converts an entry of a type Resources holds (node, qemu, lxc, storage) and appends it.
func (r *Resources) add(e *resourceEntry) {
	switch e.Type {
	case "node":
		r.Nodes = append(r.Nodes, e.node())
	case "qemu", "lxc":
		r.Guests = append(r.Guests, e.guest())
	case "storage":
		r.Storages = append(r.Storages, e.storage())
	}
}

func (r *Resources) sort() {
	sort.Slice(r.Nodes, func(i, j int) bool { return r.Nodes[i].Name < r.Nodes[j].Name })
	sort.Slice(r.Guests, func(i, j int) bool { return r.Guests[i].VMID < r.Guests[j].VMID })
	sort.Slice(r.Storages, func(i, j int) bool {
		if r.Storages[i].Node != r.Storages[j].Node {
			return r.Storages[i].Node < r.Storages[j].Node
		}
		return r.Storages[i].Storage < r.Storages[j].Storage
	})
}

func (e *resourceEntry) node() Node {
	name := e.Node
	if name == "" {
		name = strings.TrimPrefix(e.ID, "node/")
	}
	return Node{
		Name:        name,
		Online:      e.Status == "online",
		Level:       e.Level,
		HAState:     e.HAState,
		CPUs:        int(e.MaxCPU),
		CPU:         float64(e.CPU),
		MemTotal:    e.MaxMem.uint64(),
		MemUsed:     e.Mem.uint64(),
		RootFSTotal: e.MaxDisk.uint64(),
		RootFSUsed:  e.Disk.uint64(),
		Uptime:      time.Duration(e.Uptime) * time.Second,
	}
}

func (e *resourceEntry) guest() Guest {
	g := Guest{
		Type:      GuestType(e.Type),
		VMID:      int(e.VMID),
		Name:      e.Name,
		Node:      e.Node,
		Status:    e.Status,
		Template:  bool(e.Template),
		Tags:      SplitTags(e.Tags),
		Pool:      e.Pool,
		Lock:      e.Lock,
		HAState:   e.HAState,
		HAManaged: e.HAState != "",
		CPUs:      float64(e.MaxCPU),
		CPU:       float64(e.CPU),
		MemMax:    e.MaxMem.uint64(),
		MemUsed:   e.Mem.uint64(),
		DiskMax:   e.MaxDisk.uint64(),
		DiskUsed:  e.Disk.uint64(),
		NetIn:     e.NetIn.uint64(),
		NetOut:    e.NetOut.uint64(),
		DiskRead:  e.DiskRead.uint64(),
		DiskWrite: e.DiskWrite.uint64(),
		Uptime:    time.Duration(e.Uptime) * time.Second,
		PSI:       e.pressure(),
	}
	if g.CPUs == 0 {
		g.CPUs = float64(e.CPUs)
	}
	if e.MemHost != nil {
		g.MemHost, g.HasMemHost = e.MemHost.uint64(), true
	}
	return g
}

func (e *resourceEntry) storage() Storage {
	total, used := e.MaxDisk.uint64(), e.Disk.uint64()
	s := Storage{
		Node:    e.Node,
		Storage: e.Storage,
		Type:    e.PluginType,
		Content: splitContent(e.Content),
		Shared:  bool(e.Shared),
		// /cluster/resources lists only enabled storages; "available" means PVE could activate it.
		Enabled: true,
		Active:  e.Status == "available",
		Total:   total,
		Used:    used,
	}
	if total > used {
		s.Avail = total - used
	}
	return s
}

// splitContent splits a storage content list ("images,rootdir") and sorts it.
func splitContent(s string) []string {
	if s == "" {
		return nil
	}
	parts := strings.Split(s, ",")
	out := parts[:0]
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}
