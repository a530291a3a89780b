package pve

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"
)

// NodeStatus is /nodes/{node}/status.
type NodeStatus struct {
	CPU     float64 // usage ratio 0..1
	IOWait  float64 // "wait", ratio 0..1
	LoadAvg [3]float64
	Uptime  time.Duration

	MemTotal uint64
	MemUsed  uint64
	MemFree  uint64
	// MemAvailable is memory.available, sent from PVE 9.0 on.
	MemAvailable    uint64
	HasMemAvailable bool
	SwapTotal       uint64
	SwapUsed        uint64
	RootFSTotal     uint64
	RootFSUsed      uint64
	KSMShared       uint64

	CPUs       int
	CPUModel   string
	CPUSockets int
	CPUCores   int
	CPUMHz     float64
	KernelInfo string // kversion
	PVEVersion string // "pve-manager/9.2.11/f6997e69"
}

type nodeStatusBody struct {
	CPU     flexFloat   `json:"cpu"`
	Wait    flexFloat   `json:"wait"`
	LoadAvg []flexFloat `json:"loadavg"`
	Uptime  flexInt     `json:"uptime"`
	Memory  struct {
		Total     flexInt  `json:"total"`
		Used      flexInt  `json:"used"`
		Free      flexInt  `json:"free"`
		Available *flexInt `json:"available"`
	} `json:"memory"`
	Swap struct {
		Total flexInt `json:"total"`
		Used  flexInt `json:"used"`
	} `json:"swap"`
	RootFS struct {
		Total flexInt `json:"total"`
		Used  flexInt `json:"used"`
	} `json:"rootfs"`
	KSM struct {
		Shared flexInt `json:"shared"`
	} `json:"ksm"`
	CPUInfo struct {
		Model   string    `json:"model"`
		Sockets flexInt   `json:"sockets"`
		Cores   flexInt   `json:"cores"`
		CPUs    flexInt   `json:"cpus"`
		MHz     flexFloat `json:"mhz"`
	} `json:"cpuinfo"`
	KVersion   string `json:"kversion"`
	PVEVersion string `json:"pveversion"`
}

func (b *nodeStatusBody) convert() *NodeStatus {
	s := &NodeStatus{
		CPU:         float64(b.CPU),
		IOWait:      float64(b.Wait),
		Uptime:      time.Duration(b.Uptime) * time.Second,
		MemTotal:    b.Memory.Total.uint64(),
		MemUsed:     b.Memory.Used.uint64(),
		MemFree:     b.Memory.Free.uint64(),
		SwapTotal:   b.Swap.Total.uint64(),
		SwapUsed:    b.Swap.Used.uint64(),
		RootFSTotal: b.RootFS.Total.uint64(),
		RootFSUsed:  b.RootFS.Used.uint64(),
		KSMShared:   b.KSM.Shared.uint64(),
		CPUs:        int(b.CPUInfo.CPUs),
		CPUModel:    b.CPUInfo.Model,
		CPUSockets:  int(b.CPUInfo.Sockets),
		CPUCores:    int(b.CPUInfo.Cores),
		CPUMHz:      float64(b.CPUInfo.MHz),
		KernelInfo:  b.KVersion,
		PVEVersion:  b.PVEVersion,
	}
	for i := 0; i < len(b.LoadAvg) && i < 3; i++ {
		s.LoadAvg[i] = float64(b.LoadAvg[i])
	}
	if b.Memory.Available != nil {
		s.MemAvailable, s.HasMemAvailable = b.Memory.Available.uint64(), true
	}
	return s
}

// apply copies the status onto n and marks it fetched.
func (s *NodeStatus) apply(n *Node) {
	n.StatusFetched = true
	n.CPU = s.CPU
	n.IOWait = s.IOWait
	n.LoadAvg = s.LoadAvg
	n.Uptime = s.Uptime
	n.MemTotal, n.MemUsed = s.MemTotal, s.MemUsed
	n.MemAvailable, n.HasMemAvailable = s.MemAvailable, s.HasMemAvailable
	n.SwapTotal, n.SwapUsed = s.SwapTotal, s.SwapUsed
	n.RootFSTotal, n.RootFSUsed = s.RootFSTotal, s.RootFSUsed
	if s.CPUs > 0 {
		n.CPUs = s.CPUs
	}
	n.CPUModel, n.CPUSockets, n.CPUCores, n.CPUMHz = s.CPUModel, s.CPUSockets, s.CPUCores, s.CPUMHz
	n.KernelInfo, n.PVEVersion = s.KernelInfo, s.PVEVersion
}

func nodePath(node string, rest ...string) string {
	return "/nodes/" + url.PathEscape(node) + strings.Join(rest, "")
}

// NodeStatus reads /nodes/{node}/status.
func (c *Client) NodeStatus(ctx context.Context, node string) (*NodeStatus, error) {
	var b nodeStatusBody
	if err := c.get(ctx, nodePath(node, "/status"), &b); err != nil {
		return nil, err
	}
	return b.convert(), nil
}

// NodeRRDPoint is one row of /nodes/{node}/rrddata. RRD leaves out data sources that were unknown (NaN) in a step;
// those stay 0 here. PSI is nil unless the row carries pressure values (PVE 9).
type NodeRRDPoint struct {
	Time         time.Time
	CPU          float64
	MaxCPU       float64
	IOWait       float64
	LoadAvg      float64
	MemTotal     float64
	MemUsed      float64
	MemAvailable float64
	SwapTotal    float64
	SwapUsed     float64
	RootTotal    float64
	RootUsed     float64
	NetIn        float64
	NetOut       float64
	ARCSize      float64
	PSI          *Pressure
}

type nodeRRDRow struct {
	Time               flexInt    `json:"time"`
	CPU                flexFloat  `json:"cpu"`
	MaxCPU             flexFloat  `json:"maxcpu"`
	IOWait             flexFloat  `json:"iowait"`
	LoadAvg            flexFloat  `json:"loadavg"`
	MemTotal           flexFloat  `json:"memtotal"`
	MemUsed            flexFloat  `json:"memused"`
	MemAvailable       flexFloat  `json:"memavailable"`
	SwapTotal          flexFloat  `json:"swaptotal"`
	SwapUsed           flexFloat  `json:"swapused"`
	RootTotal          flexFloat  `json:"roottotal"`
	RootUsed           flexFloat  `json:"rootused"`
	NetIn              flexFloat  `json:"netin"`
	NetOut             flexFloat  `json:"netout"`
	ARCSize            flexFloat  `json:"arcsize"`
	PressureCPUSome    *flexFloat `json:"pressurecpusome"`
	PressureCPUFull    *flexFloat `json:"pressurecpufull"`
	PressureIOSome     *flexFloat `json:"pressureiosome"`
	PressureIOFull     *flexFloat `json:"pressureiofull"`
	PressureMemorySome *flexFloat `json:"pressurememorysome"`
	PressureMemoryFull *flexFloat `json:"pressurememoryfull"`
}

// pressureKeys are PVE 9's PSI keys in node RRD rows and guest status; qemu sends numbers, LXC strings.
type pressureKeys struct {
	CPUSome    *flexFloat `json:"pressurecpusome"`
	CPUFull    *flexFloat `json:"pressurecpufull"`
	IOSome     *flexFloat `json:"pressureiosome"`
	IOFull     *flexFloat `json:"pressureiofull"`
	MemorySome *flexFloat `json:"pressurememorysome"`
	MemoryFull *flexFloat `json:"pressurememoryfull"`
}

// pressure returns nil when none of the keys was sent. PVE reports percentages (avg10); Pressure holds ratios.
func (k pressureKeys) pressure() *Pressure {
	vals := []*flexFloat{k.CPUSome, k.CPUFull, k.IOSome, k.IOFull, k.MemorySome, k.MemoryFull}
	any := false
	for _, v := range vals {
		any = any || v != nil
	}
	if !any {
		return nil
	}
	ratio := func(v *flexFloat) float64 {
		if v == nil {
			return 0
		}
		return float64(*v) / 100
	}
	return &Pressure{
		CPUSome: ratio(k.CPUSome), CPUFull: ratio(k.CPUFull),
		IOSome: ratio(k.IOSome), IOFull: ratio(k.IOFull),
		MemorySome: ratio(k.MemorySome), MemoryFull: ratio(k.MemoryFull),
	}
}

// NodeRRD reads /nodes/{node}/rrddata for a timeframe ("hour", "day", ...) with the AVERAGE consolidation.
func (c *Client) NodeRRD(ctx context.Context, node, timeframe string) ([]NodeRRDPoint, error) {
	var rows []nodeRRDRow
	q := url.Values{"timeframe": {timeframe}, "cf": {"AVERAGE"}}
	if err := c.get(ctx, nodePath(node, "/rrddata?", q.Encode()), &rows); err != nil {
		return nil, err
	}
	out := make([]NodeRRDPoint, 0, len(rows))
	for _, r := range rows {
		out = append(out, NodeRRDPoint{
			Time: unixTime(r.Time), CPU: float64(r.CPU), MaxCPU: float64(r.MaxCPU), IOWait: float64(r.IOWait),
			LoadAvg: float64(r.LoadAvg), MemTotal: float64(r.MemTotal), MemUsed: float64(r.MemUsed),
			MemAvailable: float64(r.MemAvailable), SwapTotal: float64(r.SwapTotal), SwapUsed: float64(r.SwapUsed),
			RootTotal: float64(r.RootTotal), RootUsed: float64(r.RootUsed), NetIn: float64(r.NetIn),
			NetOut: float64(r.NetOut), ARCSize: float64(r.ARCSize),
			PSI: pressureKeys{r.PressureCPUSome, r.PressureCPUFull, r.PressureIOSome, r.PressureIOFull,
				r.PressureMemorySome, r.PressureMemoryFull}.pressure(),
		})
	}
	return out, nil
}

// latestPressure is the PSI of the newest RRD row that has it.
func latestPressure(points []NodeRRDPoint) *Pressure {
	for i := len(points) - 1; i >= 0; i-- {
		if points[i].PSI != nil {
			return points[i].PSI
		}
	}
	return nil
}

type nodeStorageEntry struct {
	Storage string  `json:"storage"`
	Type    string  `json:"type"`
	Content string  `json:"content"`
	Shared  pveBool `json:"shared"`
	Active  pveBool `json:"active"`
	Enabled pveBool `json:"enabled"`
	Total   flexInt `json:"total"`
	Used    flexInt `json:"used"`
	Avail   flexInt `json:"avail"`
}

// NodeStorage reads /nodes/{node}/storage: every storage configured for the node, including disabled ones.
func (c *Client) NodeStorage(ctx context.Context, node string) ([]Storage, error) {
	var entries []nodeStorageEntry
	if err := c.get(ctx, nodePath(node, "/storage"), &entries); err != nil {
		return nil, err
	}
	out := make([]Storage, 0, len(entries))
	for _, e := range entries {
		out = append(out, Storage{
			Node: node, Storage: e.Storage, Type: e.Type, Content: splitContent(e.Content),
			Shared: bool(e.Shared), Enabled: bool(e.Enabled), Active: bool(e.Active),
			Total: e.Total.uint64(), Used: e.Used.uint64(), Avail: e.Avail.uint64(),
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Storage < out[j].Storage })
	return out, nil
}

// Subscription reads /nodes/{node}/subscription.
func (c *Client) Subscription(ctx context.Context, node string) (*Subscription, error) {
	var b struct {
		Status      string `json:"status"`
		Level       string `json:"level"`
		NextDueDate string `json:"nextduedate"`
	}
	if err := c.get(ctx, nodePath(node, "/subscription"), &b); err != nil {
		return nil, err
	}
	s := &Subscription{Status: strings.ToLower(b.Status), Level: b.Level}
	if b.NextDueDate != "" {
		d, err := time.Parse(time.DateOnly, b.NextDueDate)
		if err != nil {
			return nil, fmt.Errorf("subscription of node %s: nextduedate %q: %w", node, b.NextDueDate, err)
		}
		s.NextDueDate = d
	}
	return s, nil
}

type replicationEntry struct {
	ID        string    `json:"id"`
	Guest     flexInt   `json:"guest"`
	Source    string    `json:"source"`
	Target    string    `json:"target"`
	VMType    string    `json:"vmtype"`
	LastSync  flexInt   `json:"last_sync"`
	LastTry   flexInt   `json:"last_try"`
	NextSync  flexInt   `json:"next_sync"`
	Duration  flexFloat `json:"duration"`
	FailCount flexInt   `json:"fail_count"`
	Error     string    `json:"error"`
}

// Replication reads /nodes/{node}/replication: the state of the replication jobs whose source is node.
func (c *Client) Replication(ctx context.Context, node string) ([]ReplicationJob, error) {
	var entries []replicationEntry
	if err := c.get(ctx, nodePath(node, "/replication"), &entries); err != nil {
		return nil, err
	}
	out := make([]ReplicationJob, 0, len(entries))
	for _, e := range entries {
		src := e.Source
		if src == "" {
			src = node
		}
		out = append(out, ReplicationJob{
			ID: e.ID, Guest: int(e.Guest), GuestType: GuestType(e.VMType), Source: src, Target: e.Target,
			LastSync: unixTime(e.LastSync), LastTry: unixTime(e.LastTry), NextSync: unixTime(e.NextSync),
			Duration:  time.Duration(float64(e.Duration) * float64(time.Second)),
			FailCount: int(e.FailCount), Error: e.Error,
		})
	}
	return out, nil
}
