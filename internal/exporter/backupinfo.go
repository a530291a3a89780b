package exporter

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/proxbalance/proxbalance/internal/pve"
)

var (
	notBackedUpTotalDesc = prometheus.NewDesc("pve_not_backed_up_total",
		"Total number of guests not covered by any backup job.", idLabel, nil)
	notBackedUpInfoDesc = prometheus.NewDesc("pve_not_backed_up_info",
		"Present if guest is not covered by any backup job.", idLabel, nil)
)

// backupInfoCollector exports /cluster/backup-info/not-backed-up. Nothing is exported when that call failed:
// a zero total would claim every guest is covered.
type backupInfoCollector struct{}

func (backupInfoCollector) Update(inv *pve.Inventory, w *SeriesWriter) error {
	if err := partialError(inv, endpointMatcher([]string{"/cluster/backup-info"}, nil)); err != nil {
		return err
	}
	name := inv.Cluster.Name
	if name == "" {
		// A standalone node: prometheus-pve-exporter takes the first /cluster/status entry's name, the node's.
		name = localNode(inv)
	}
	if name == "" {
		return fmt.Errorf("no cluster or local node name to label pve_not_backed_up_total")
	}
	// The pve_not_backed_up_total name predates the _total-is-for-counters convention; it is a gauge there too.
	w.gauge(notBackedUpTotalDesc, float64(len(inv.NotBackedUp)), clusterID(name))
	for _, id := range inv.NotBackedUp {
		w.gauge(notBackedUpInfoDesc, 1, id)
	}
	return nil
}
