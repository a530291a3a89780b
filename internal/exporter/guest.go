package exporter

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/proxbalance/proxbalance/internal/pve"
)

var (
	guestInfoDesc = prometheus.NewDesc("pve_guest_info", "VM/CT info",
		[]string{"id", "node", "name", "type", "template", "tags"}, nil)

	netOutDesc = prometheus.NewDesc("pve_network_transmit_bytes_total",
		"The amount of traffic in bytes that was sent from the guest over the network since it was started. (for types 'qemu' and 'lxc')", idLabel, nil)
	netInDesc = prometheus.NewDesc("pve_network_receive_bytes_total",
		"The amount of traffic in bytes that was sent to the guest over the network since it was started. (for types 'qemu' and 'lxc')", idLabel, nil)
	diskWrittenDesc = prometheus.NewDesc("pve_disk_written_bytes_total",
		"The amount of bytes the guest wrote to its block devices since the guest was started. This info is not available for all storage types. (for types 'qemu' and 'lxc')", idLabel, nil)
	diskReadDesc = prometheus.NewDesc("pve_disk_read_bytes_total",
		"The amount of bytes the guest read from its block devices since the guest was started. This info is not available for all storage types. (for types 'qemu' and 'lxc')", idLabel, nil)

	netOutGaugeDesc = prometheus.NewDesc("pve_network_transmit_bytes",
		"The amount of traffic in bytes that was sent from the guest over the network since it was started. (for types 'qemu' and 'lxc') DEPRECATED: Use pve_network_transmit_bytes_total instead.", idLabel, nil)
	netInGaugeDesc = prometheus.NewDesc("pve_network_receive_bytes",
		"The amount of traffic in bytes that was sent to the guest over the network since it was started. (for types 'qemu' and 'lxc') DEPRECATED: Use pve_network_receive_bytes_total instead.", idLabel, nil)
	diskWriteGaugeDesc = prometheus.NewDesc("pve_disk_write_bytes",
		"The amount of bytes the guest wrote to its block devices since the guest was started. This info is not available for all storage types. (for types 'qemu' and 'lxc') DEPRECATED: Use pve_disk_written_bytes_total instead.", idLabel, nil)
	diskReadGaugeDesc = prometheus.NewDesc("pve_disk_read_bytes",
		"The amount of bytes the guest read from its block devices since the guest was started. This info is not available for all storage types. (for types 'qemu' and 'lxc') DEPRECATED: Use pve_disk_read_bytes_total instead.", idLabel, nil)

	haStateDesc   = prometheus.NewDesc("pve_ha_state", "HA service status (for HA managed VMs).", []string{"id", "state"}, nil)
	lockStateDesc = prometheus.NewDesc("pve_lock_state", "The guest's current config lock (for types 'qemu' and 'lxc')", []string{"id", "state"}, nil)

	guestPressureDesc = prometheus.NewDesc(prometheus.BuildFQName(namespace, "guest", "pressure_ratio"),
		"Share of time some or all tasks of the guest stalled on a resource (Linux PSI; PVE 9 and later).", pressureLabels, nil)
	guestMemoryHostDesc = prometheus.NewDesc(prometheus.BuildFQName(namespace, "guest", "memory_host_bytes"),
		"Host memory used by the guest in bytes (memhost; PVE 9 and later).", idLabel, nil)
	guestVCPUsDesc = prometheus.NewDesc(prometheus.BuildFQName(namespace, "guest", "vcpus"),
		"vCPUs of the guest from its config (0 for a container without a cores limit).", idLabel, nil)
)

// haServiceStates are the states of PVE's HA manager for a service (pve-ha-manager PVE::HA::Manager), the
// list prometheus-pve-exporter emits. State lists are kept sorted: see sortedGuests.
var haServiceStates = []string{
	"error", "fence", "freeze", "migrate", "recovery", "relocate", "request_start", "request_start_balance",
	"request_stop", "started", "stopped",
}

// Config locks: qemu-server's lock enum (prometheus-pve-exporter's list) and, for containers, the same list
// (kept for compatibility) plus pve-container's own locks (destroyed, disk, fstrim, mounted).
var (
	qemuLockStates = []string{
		"backup", "clone", "create", "migrate", "rollback", "snapshot", "snapshot-delete", "suspended", "suspending",
	}
	lxcLockStates = []string{
		"backup", "clone", "create", "destroyed", "disk", "fstrim", "migrate", "mounted", "rollback", "snapshot",
		"snapshot-delete", "suspended", "suspending",
	}
)

// guestCollector exports VMs and containers from /cluster/resources (type vm) with their config's vCPUs.
type guestCollector struct{}

func (guestCollector) Update(inv *pve.Inventory, w *SeriesWriter) error {
	for _, i := range sortedGuests(inv.Guests) {
		g := &inv.Guests[i]
		id := g.ID()
		w.gauge(upDesc, boolValue(g.Status == "running"), id)
		w.gauge(guestInfoDesc, 1, id, g.Node, g.Name, string(g.Type), templateLabel(g.Template), strings.Join(g.Tags, ";")) // PVE's own separator

		w.gauge(cpuUsageRatioDesc, g.CPU, id)
		w.gauge(cpuUsageLimitDesc, g.CPUs, id)
		w.gauge(memorySizeDesc, float64(g.MemMax), id)
		w.gauge(memoryUsageDesc, float64(g.MemUsed), id)
		w.gauge(diskSizeDesc, float64(g.DiskMax), id)
		w.gauge(diskUsageDesc, float64(g.DiskUsed), id)
		w.gauge(uptimeDesc, g.Uptime.Seconds(), id)

		w.counter(netOutDesc, float64(g.NetOut), id)
		w.counter(netInDesc, float64(g.NetIn), id)
		w.counter(diskWrittenDesc, float64(g.DiskWrite), id)
		w.counter(diskReadDesc, float64(g.DiskRead), id)
		w.gauge(netOutGaugeDesc, float64(g.NetOut), id)
		w.gauge(netInGaugeDesc, float64(g.NetIn), id)
		w.gauge(diskWriteGaugeDesc, float64(g.DiskWrite), id)
		w.gauge(diskReadGaugeDesc, float64(g.DiskRead), id)

		w.oneHot(haStateDesc, id, haServiceStates, g.HAState)
		locks := qemuLockStates
		if g.Type == pve.TypeLXC {
			locks = lxcLockStates
		}
		w.oneHot(lockStateDesc, id, locks, g.Lock)

		if g.HasMemHost {
			w.gauge(guestMemoryHostDesc, float64(g.MemHost), id)
		}
		if g.PSI != nil {
			w.pressure(guestPressureDesc, id, (*pressureView)(g.PSI))
		}
		if g.Config != nil {
			w.gauge(guestVCPUsDesc, float64(g.Config.VCPUs), id)
		}
	}
	// Node-relative "qemu" and "lxc" cover the node's guest lists (PSI), guest status and configs (vCPUs).
	return partialError(inv, endpointMatcher([]string{"/cluster/resources"}, []string{"qemu", "lxc"}))
}

// templateLabel renders the template flag as PVE sends it (0/1).
func templateLabel(t bool) string {
	if t {
		return "1"
	}
	return "0"
}
