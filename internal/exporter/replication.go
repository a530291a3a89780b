package exporter

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/proxbalance/proxbalance/internal/pve"
)

var (
	replicationInfoDesc = prometheus.NewDesc("pve_replication_info", "Proxmox vm replication info",
		[]string{"id", "type", "source", "target", "guest"}, nil)
	replicationDurationDesc = prometheus.NewDesc("pve_replication_duration_seconds",
		"Proxmox vm replication duration", idLabel, nil)
	replicationLastSyncDesc = prometheus.NewDesc("pve_replication_last_sync_timestamp_seconds",
		"Proxmox vm replication last_sync", idLabel, nil)
	replicationLastTryDesc = prometheus.NewDesc("pve_replication_last_try_timestamp_seconds",
		"Proxmox vm replication last_try", idLabel, nil)
	replicationNextSyncDesc = prometheus.NewDesc("pve_replication_next_sync_timestamp_seconds",
		"Proxmox vm replication next_sync", idLabel, nil)
	replicationFailedSyncsDesc = prometheus.NewDesc("pve_replication_failed_syncs",
		"Proxmox vm replication fail_count", idLabel, nil)
)

// replicationJobType is the only storage replication type PVE has.
const replicationJobType = "local"

// replicationCollector exports the storage replication jobs whose source is the node that answered the API
// call (all jobs when the inventory does not mark a local node), from /nodes/{node}/replication.
type replicationCollector struct{}

func (replicationCollector) Update(inv *pve.Inventory, w *SeriesWriter) error {
	local := localNode(inv)
	guestType := make(map[int]pve.GuestType, len(inv.Guests))
	for i := range inv.Guests {
		guestType[inv.Guests[i].VMID] = inv.Guests[i].Type
	}
	for _, j := range inv.Replication {
		if local != "" && j.Source != local {
			continue
		}
		typ, ok := j.GuestType, j.GuestType != ""
		if !ok {
			typ, ok = guestType[j.Guest]
		}
		if !ok {
			// Replication exists for VMs and containers alike; a guest missing from the inventory is most
			// likely a VM, the common case.
			typ = pve.TypeQEMU
		}
		w.gauge(replicationInfoDesc, 1, j.ID, replicationJobType, nodeID(j.Source), nodeID(j.Target), pve.Guest{Type: typ, VMID: j.Guest}.ID())
		w.gauge(replicationDurationDesc, j.Duration.Seconds(), j.ID)
		if !j.LastSync.IsZero() {
			w.gauge(replicationLastSyncDesc, float64(j.LastSync.Unix()), j.ID)
		}
		if !j.LastTry.IsZero() {
			w.gauge(replicationLastTryDesc, float64(j.LastTry.Unix()), j.ID)
		}
		if !j.NextSync.IsZero() {
			w.gauge(replicationNextSyncDesc, float64(j.NextSync.Unix()), j.ID)
		}
		w.gauge(replicationFailedSyncsDesc, float64(j.FailCount), j.ID)
	}
	return partialError(inv, endpointMatcher(nil, []string{"replication"}))
}
