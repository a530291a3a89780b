package exporter

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/proxbalance/proxbalance/internal/pve"
)

// prometheus-pve-exporter's QDeviceCollector families, names, labels and help texts byte for byte.
var (
	qdeviceUpDesc = prometheus.NewDesc("pve_qdevice_up",
		"Proxmox VE QDevice is connected (1) or not (0)", idLabel, nil)
	qdeviceInfoDesc = prometheus.NewDesc("pve_qdevice_info",
		"Proxmox VE QDevice info (1 if configured)",
		[]string{"id", "model", "algorithm", "qnetd_host", "tie_breaker", "state"}, nil)
)

// qdeviceCollector exports /cluster/config/qdevice, labelled with the cluster's id from /cluster/status as
// prometheus-pve-exporter does: nothing without a cluster entry there or without a configured QDevice. When
// either read failed and no older answer stands in, nothing is exported either (a missing family, not a false
// "not connected"), and the collector reports the failure.
type qdeviceCollector struct{}

func (qdeviceCollector) Update(inv *pve.Inventory, w *SeriesWriter) error {
	if q := inv.QDevice; q != nil && inv.Cluster.Name != "" {
		id := clusterID(inv.Cluster.Name)
		w.gauge(qdeviceUpDesc, boolValue(q.Connected()), id)
		w.gauge(qdeviceInfoDesc, 1, id, q.Model, q.Algorithm, q.QNetdHost, q.TieBreaker, q.State)
	}
	return partialError(inv, endpointMatcher([]string{"/cluster/config/qdevice", "/cluster/status"}, nil))
}
