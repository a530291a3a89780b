package pve

import (
	"context"
	"net/url"
	"sort"
	"time"
)

// Nodes reads /nodes: every member with its online state and usage (the same numbers as /cluster/resources).
func (c *Client) Nodes(ctx context.Context) ([]Node, error) {
	var entries resourceList
	if err := c.get(ctx, "/nodes", &entries); err != nil {
		return nil, err
	}
	out := make([]Node, 0, len(entries))
	for i := range entries {
		out = append(out, entries[i].node())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// NodeGuests reads /nodes/{node}/qemu or /nodes/{node}/lxc: the guests of one node as that node sees them.
func (c *Client) NodeGuests(ctx context.Context, node string, t GuestType) ([]Guest, error) {
	var entries resourceList
	if err := c.get(ctx, nodePath(node, "/", string(t)), &entries); err != nil {
		return nil, err
	}
	out := make([]Guest, 0, len(entries))
	for i := range entries {
		e := &entries[i]
		e.Type, e.Node = string(t), node
		out = append(out, e.guest())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].VMID < out[j].VMID })
	return out, nil
}

// GuestRRDPoint is one row of a guest's rrddata. Rows of a stopped guest carry only the max* values and disk.
type GuestRRDPoint struct {
	Time      time.Time
	CPU       float64
	MaxCPU    float64
	Mem       float64
	MaxMem    float64
	MemHost   float64
	Disk      float64
	MaxDisk   float64
	NetIn     float64
	NetOut    float64
	DiskRead  float64
	DiskWrite float64
	PSI       *Pressure
}

// GuestRRD reads …/{qemu|lxc}/{vmid}/rrddata for a timeframe ("hour", "day", ...) with AVERAGE consolidation.
func (c *Client) GuestRRD(ctx context.Context, g GuestRef, timeframe string) ([]GuestRRDPoint, error) {
	p, err := g.path("/rrddata?" + url.Values{"timeframe": {timeframe}, "cf": {"AVERAGE"}}.Encode())
	if err != nil {
		return nil, err
	}
	var rows []struct {
		pressureKeys
		Time      flexInt   `json:"time"`
		CPU       flexFloat `json:"cpu"`
		MaxCPU    flexFloat `json:"maxcpu"`
		Mem       flexFloat `json:"mem"`
		MaxMem    flexFloat `json:"maxmem"`
		MemHost   flexFloat `json:"memhost"`
		Disk      flexFloat `json:"disk"`
		MaxDisk   flexFloat `json:"maxdisk"`
		NetIn     flexFloat `json:"netin"`
		NetOut    flexFloat `json:"netout"`
		DiskRead  flexFloat `json:"diskread"`
		DiskWrite flexFloat `json:"diskwrite"`
	}
	if err := c.get(ctx, p, &rows); err != nil {
		return nil, err
	}
	out := make([]GuestRRDPoint, len(rows))
	for i, r := range rows {
		out[i] = GuestRRDPoint{
			Time: unixTime(r.Time), CPU: float64(r.CPU), MaxCPU: float64(r.MaxCPU), Mem: float64(r.Mem),
			MaxMem: float64(r.MaxMem), MemHost: float64(r.MemHost), Disk: float64(r.Disk),
			MaxDisk: float64(r.MaxDisk), NetIn: float64(r.NetIn), NetOut: float64(r.NetOut),
			DiskRead: float64(r.DiskRead), DiskWrite: float64(r.DiskWrite), PSI: r.pressureKeys.pressure(),
		}
	}
	return out, nil
}
