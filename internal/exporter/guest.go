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

func (guestCollector) Update(inv *pve.Inventory, ch chan<- prometheus.Metric) error {
	states := newStateLabels(haServiceStates, qemuLockStates, lxcLockStates)
	psi := newPressurePairs()
	for _, i := range sortedGuests(inv.Guests) {
		g := &inv.Guests[i]
		id := g.ID()
		s := newIDSeries(ch, id)
		s.gauge(upDesc, boolValue(g.Status == "running"))
		gauge(ch, guestInfoDesc, 1, id, g.Node, g.Name, string(g.Type), templateLabel(g.Template), strings.Join(g.Tags, ";")) // PVE's own separator

		s.gauge(cpuUsageRatioDesc, g.CPU)
		s.gauge(cpuUsageLimitDesc, g.CPUs)
		s.gauge(memorySizeDesc, float64(g.MemMax))
		s.gauge(memoryUsageDesc, float64(g.MemUsed))
		s.gauge(diskSizeDesc, float64(g.DiskMax))
		s.gauge(diskUsageDesc, float64(g.DiskUsed))
		s.gauge(uptimeDesc, g.Uptime.Seconds())

		s.counter(netOutDesc, float64(g.NetOut))
		s.counter(netInDesc, float64(g.NetIn))
		s.counter(diskWrittenDesc, float64(g.DiskWrite))
		s.counter(diskReadDesc, float64(g.DiskRead))
		s.gauge(netOutGaugeDesc, float64(g.NetOut))
		s.gauge(netInGaugeDesc, float64(g.NetIn))
		s.gauge(diskWriteGaugeDesc, float64(g.DiskWrite))
		s.gauge(diskReadGaugeDesc, float64(g.DiskRead))

		s.oneHot(haStateDesc, states, haServiceStates, g.HAState)
		locks := qemuLockStates
		if g.Type == pve.TypeLXC {
			locks = lxcLockStates
		}
		s.oneHot(lockStateDesc, states, locks, g.Lock)

		if g.HasMemHost {
			s.gauge(guestMemoryHostDesc, float64(g.MemHost))
		}
		if g.PSI != nil {
			s.pressure(guestPressureDesc, psi, (*pressureView)(g.PSI))
		}
		if g.Config != nil {
			s.gauge(guestVCPUsDesc, float64(g.Config.VCPUs))
		}
	}
	// Node-relative "qemu" and "lxc" cover the node's guest lists (PSI), guest status and configs (vCPUs).
	return partialError(inv, endpointMatcher([]string{"/cluster/resources"}, []string{"qemu", "lxc"}))
}

// oneHot sends one series per state, 1 for current and 0 for the others. A current state outside the list
// yields only zeros, as in prometheus-pve-exporter.
func oneHot(ch chan<- prometheus.Metric, desc *prometheus.Desc, id string, states []string, current string) {
	for _, s := range states {
		gauge(ch, desc, boolValue(s == current), id, s)
	}
}

// templateLabel renders the template flag as PVE sends it (0/1).
func templateLabel(t bool) string {
	if t {
		return "1"
	}
	return "0"
}
