package exporter

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/proxbalance/proxbalance/internal/pve"
)

var (
	nodeInfoDesc = prometheus.NewDesc("pve_node_info", "Node info", []string{"id", "level", "name", "nodeid"}, nil)

	nodeLoad1Desc = prometheus.NewDesc(prometheus.BuildFQName(namespace, "node", "load1"),
		"Node load average over 1 minute.", idLabel, nil)
	nodeLoad5Desc = prometheus.NewDesc(prometheus.BuildFQName(namespace, "node", "load5"),
		"Node load average over 5 minutes.", idLabel, nil)
	nodeLoad15Desc = prometheus.NewDesc(prometheus.BuildFQName(namespace, "node", "load15"),
		"Node load average over 15 minutes.", idLabel, nil)
	nodeIOWaitDesc = prometheus.NewDesc(prometheus.BuildFQName(namespace, "node", "iowait_ratio"),
		"Share of CPU time the node spent waiting for I/O.", idLabel, nil)
	nodeMemAvailableDesc = prometheus.NewDesc(prometheus.BuildFQName(namespace, "node", "memory_available_bytes"),
		"Memory available for starting new applications without swapping (MemAvailable; PVE 9 and later).", idLabel, nil)
	nodeSwapSizeDesc = prometheus.NewDesc(prometheus.BuildFQName(namespace, "node", "swap_size_bytes"),
		"Swap space of the node in bytes.", idLabel, nil)
	nodeSwapUsageDesc = prometheus.NewDesc(prometheus.BuildFQName(namespace, "node", "swap_usage_bytes"),
		"Used swap space of the node in bytes.", idLabel, nil)
	nodeCPUsDesc = prometheus.NewDesc(prometheus.BuildFQName(namespace, "node", "cpus"),
		"Logical CPUs of the node.", idLabel, nil)
	nodePressureDesc = prometheus.NewDesc(prometheus.BuildFQName(namespace, "node", "pressure_ratio"),
		"Share of time some or all tasks of the node stalled on a resource (Linux PSI; PVE 9 and later).", pressureLabels, nil)
	nodeAllocatedVCPUsDesc = prometheus.NewDesc(prometheus.BuildFQName(namespace, "node", "allocated_vcpus"),
		"vCPUs of the running guests on the node, templates excluded.", idLabel, nil)
	nodeAllocatedMemoryDesc = prometheus.NewDesc(prometheus.BuildFQName(namespace, "node", "allocated_memory_bytes"),
		"Configured memory of the running guests on the node in bytes, templates excluded.", idLabel, nil)
)

// haNodeStates are the node states of PVE's HA manager (pve-ha-manager PVE::HA::NodeStatus), the list
// prometheus-pve-exporter emits for type node; sorted like the other state lists.
var haNodeStates = []string{"fence", "gone", "maintenance", "online", "unknown"}

// nodeCollector exports cluster members: /cluster/status node entries, /cluster/resources (type node) and
// /nodes/{node}/status. Values that only node status provides are absent, not zero, when it could not be read.
type nodeCollector struct{}

func (nodeCollector) Update(inv *pve.Inventory, w *SeriesWriter) error {
	vcpus, memory := allocations(inv.Guests)
	for i := range inv.Nodes {
		n := &inv.Nodes[i]
		id := nodeID(n.Name)
		w.gauge(upDesc, boolValue(n.Online), id)
		w.gauge(nodeInfoDesc, 1, id, n.Level, n.Name, strconv.Itoa(n.NodeID))
		w.oneHot(haStateDesc, id, haNodeStates, n.HAState)
		if !n.Online {
			continue
		}
		w.gauge(cpuUsageRatioDesc, n.CPU, id)
		w.gauge(cpuUsageLimitDesc, float64(n.CPUs), id)
		w.gauge(memorySizeDesc, float64(n.MemTotal), id)
		w.gauge(memoryUsageDesc, float64(n.MemUsed), id)
		w.gauge(diskSizeDesc, float64(n.RootFSTotal), id)
		w.gauge(diskUsageDesc, float64(n.RootFSUsed), id)
		w.gauge(uptimeDesc, n.Uptime.Seconds(), id)
		if n.CPUs > 0 {
			w.gauge(nodeCPUsDesc, float64(n.CPUs), id)
		}
		w.gauge(nodeAllocatedVCPUsDesc, vcpus[n.Name], id)
		w.gauge(nodeAllocatedMemoryDesc, memory[n.Name], id)
		if n.StatusFetched {
			w.gauge(nodeLoad1Desc, n.LoadAvg[0], id)
			w.gauge(nodeLoad5Desc, n.LoadAvg[1], id)
			w.gauge(nodeLoad15Desc, n.LoadAvg[2], id)
			w.gauge(nodeIOWaitDesc, n.IOWait, id)
			w.gauge(nodeSwapSizeDesc, float64(n.SwapTotal), id)
			w.gauge(nodeSwapUsageDesc, float64(n.SwapUsed), id)
			if n.HasMemAvailable {
				w.gauge(nodeMemAvailableDesc, float64(n.MemAvailable), id)
			}
		}
		if n.PSI != nil {
			w.pressure(nodePressureDesc, id, (*pressureView)(n.PSI))
		}
	}
	return partialError(inv, endpointMatcher([]string{"/cluster/status", "/cluster/resources"}, []string{"status", "rrddata"}))
}

// allocations sums, per node, the vCPUs and configured memory of running guests that are not templates. The
// guest config is preferred (it holds what the guest may use); /cluster/resources' maxcpu and maxmem stand in
// when the config was not fetched, and for LXC without a cores limit (all host CPUs).
func allocations(guests []pve.Guest) (vcpus, memory map[string]float64) {
	vcpus = make(map[string]float64)
	memory = make(map[string]float64)
	for i := range guests {
		g := &guests[i]
		if g.Template || g.Status != "running" {
			continue
		}
		v, m := g.CPUs, float64(g.MemMax)
		if g.Config != nil {
			if g.Config.VCPUs > 0 {
				v = float64(g.Config.VCPUs)
			}
			if g.Config.Memory > 0 {
				m = float64(g.Config.Memory)
			}
		}
		vcpus[g.Node] += v
		memory[g.Node] += m
	}
	return vcpus, memory
}

func nodeID(name string) string { return "node/" + name }
