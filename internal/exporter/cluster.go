package exporter

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/proxbalance/proxbalance/internal/pve"
)

var (
	clusterInfoDesc = prometheus.NewDesc("pve_cluster_info", "Cluster info",
		[]string{"id", "nodes", "quorate", "version"}, nil)
	clusterQuorateDesc = prometheus.NewDesc(prometheus.BuildFQName(namespace, "cluster", "quorate"),
		"Whether the cluster is quorate (1) or not (0).", idLabel, nil)
	versionInfoDesc = prometheus.NewDesc("pve_version_info", "Proxmox VE version info",
		[]string{"release", "repoid", "version"}, nil)
)

// clusterCollector exports /cluster/status's cluster entry and /version.
type clusterCollector struct{}

func (clusterCollector) Update(inv *pve.Inventory, w *SeriesWriter) error {
	c := inv.Cluster
	if c.Name != "" {
		id := clusterID(c.Name)
		w.gauge(clusterInfoDesc, 1,
			id, strconv.Itoa(c.NodeCount), strconv.Itoa(int(boolValue(c.Quorate))), strconv.Itoa(c.ConfigVersion))
		w.gauge(clusterQuorateDesc, boolValue(c.Quorate), id)
		// prometheus-pve-exporter reports the cluster's quorum as its pve_up.
		w.gauge(upDesc, boolValue(c.Quorate), id)
	}
	if c.PVEVersion != "" {
		w.gauge(versionInfoDesc, 1, c.Release, c.RepoID, c.PVEVersion)
	}
	return partialError(inv, endpointMatcher([]string{"/cluster/status", "/version"}, nil))
}

func clusterID(name string) string { return "cluster/" + name }
