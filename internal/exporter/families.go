package exporter

import "github.com/prometheus/client_golang/prometheus"

// Families that several collectors fill (nodes, guests and storages share them, keyed by id). Their names, label
// names and help texts are prometheus-pve-exporter's, kept byte for byte so that existing dashboards and alerts
// keep working: compatibility wins over the convention that help text ends with a period.
var (
	idLabel = []string{"id"}

	upDesc = prometheus.NewDesc("pve_up", "Node/VM/CT-Status is online/running", idLabel, nil)

	diskSizeDesc = prometheus.NewDesc("pve_disk_size_bytes",
		"Storage size in bytes (for type 'storage'), root image size for VMs (for types 'qemu' and 'lxc').", idLabel, nil)
	diskUsageDesc = prometheus.NewDesc("pve_disk_usage_bytes",
		"Used disk space in bytes (for type 'storage'), used root image space for VMs (for types 'qemu' and 'lxc').", idLabel, nil)
	memorySizeDesc = prometheus.NewDesc("pve_memory_size_bytes",
		"Number of available memory in bytes (for types 'node', 'qemu' and 'lxc').", idLabel, nil)
	memoryUsageDesc = prometheus.NewDesc("pve_memory_usage_bytes",
		"Used memory in bytes (for types 'node', 'qemu' and 'lxc').", idLabel, nil)
	cpuUsageRatioDesc = prometheus.NewDesc("pve_cpu_usage_ratio",
		"CPU utilization (for types 'node', 'qemu' and 'lxc').", idLabel, nil)
	cpuUsageLimitDesc = prometheus.NewDesc("pve_cpu_usage_limit",
		"Number of available CPUs (for types 'node', 'qemu' and 'lxc').", idLabel, nil)
	uptimeDesc = prometheus.NewDesc("pve_uptime_seconds",
		"Uptime of node or virtual guest in seconds (for types 'node', 'qemu' and 'lxc').", idLabel, nil)

	pressureLabels = []string{"id", "resource", "kind"}
)

// CompatFamilyGroups maps prometheus-pve-exporter collector flags whose granularity differs from ours to the
// families they toggle, so that --no-collector.status, --no-collector.version and --no-collector.resources keep
// removing what they removed there. Its qdevice flag is not here: the qdevice collector has the same name and
// families (Collectors), so --[no-]collector.qdevice is that collector's own flag.
func CompatFamilyGroups() map[string][]*prometheus.Desc {
	return map[string][]*prometheus.Desc{
		"status":  {upDesc},
		"version": {versionInfoDesc},
		"resources": {
			diskSizeDesc, diskUsageDesc, memorySizeDesc, memoryUsageDesc, cpuUsageRatioDesc, cpuUsageLimitDesc,
			uptimeDesc, storageSharedDesc, netOutGaugeDesc, netInGaugeDesc, diskWriteGaugeDesc, diskReadGaugeDesc,
			netOutDesc, netInDesc, diskWrittenDesc, diskReadDesc, haStateDesc, lockStateDesc, guestInfoDesc,
			storageInfoDesc,
		},
	}
}
