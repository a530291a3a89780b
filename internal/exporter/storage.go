package exporter

import (
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/proxbalance/proxbalance/internal/pve"
)

var (
	storageInfoDesc = prometheus.NewDesc("pve_storage_info", "Storage info",
		[]string{"id", "node", "storage", "plugintype", "content"}, nil)
	storageSharedDesc = prometheus.NewDesc("pve_storage_shared",
		"Whether or not the storage is shared among cluster nodes", idLabel, nil)
	storageEnabledDesc = prometheus.NewDesc(prometheus.BuildFQName(namespace, "storage", "enabled"),
		"Whether the storage is enabled on the node (1) or not (0).", idLabel, nil)
	storageActiveDesc = prometheus.NewDesc(prometheus.BuildFQName(namespace, "storage", "active"),
		"Whether the storage is active (available) on the node (1) or not (0).", idLabel, nil)
)

// storageCollector exports storages per node (/nodes/{node}/storage or /cluster/resources type storage).
// Sizes of an inactive storage are absent: PVE cannot measure them.
type storageCollector struct{}

func (storageCollector) Update(inv *pve.Inventory, w *SeriesWriter) error {
	for i := range inv.Storages {
		s := &inv.Storages[i]
		id := s.ID()
		// /cluster/resources says "available" for an active storage; prometheus-pve-exporter maps that to pve_up.
		w.gauge(upDesc, boolValue(s.Active), id)
		w.gauge(storageInfoDesc, 1, id, s.Node, s.Storage, s.Type, contentLabel(s.Content))
		w.gauge(storageSharedDesc, boolValue(s.Shared), id)
		w.gauge(storageEnabledDesc, boolValue(s.Enabled), id)
		w.gauge(storageActiveDesc, boolValue(s.Active), id)
		if s.Active {
			w.gauge(diskSizeDesc, float64(s.Total), id)
			w.gauge(diskUsageDesc, float64(s.Used), id)
		}
	}
	return partialError(inv, endpointMatcher([]string{"/cluster/resources"}, []string{"storage"}))
}

// contentLabel joins content types sorted: PVE lists them in random order, and an unsorted label would churn
// series on every scrape.
func contentLabel(content []string) string {
	if slices.IsSorted(content) {
		return strings.Join(content, ",")
	}
	sorted := slices.Clone(content)
	slices.Sort(sorted)
	return strings.Join(sorted, ",")
}
