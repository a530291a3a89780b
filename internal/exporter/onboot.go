package exporter

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/proxbalance/proxbalance/internal/pve"
)

var onbootStatusDesc = prometheus.NewDesc("pve_onboot_status", "Proxmox vm config onboot value",
	[]string{"id", "node", "type"}, nil)

// configCollector exports the onboot flag of the guest configs on the node that answered the API call (all
// guests when the inventory does not mark a local node), like prometheus-pve-exporter's config collector.
type configCollector struct{}

func (configCollector) Update(inv *pve.Inventory, w *SeriesWriter) error {
	local := localNode(inv)
	for _, i := range sortedGuests(inv.Guests) {
		g := &inv.Guests[i]
		if g.Config == nil || (local != "" && g.Node != local) {
			continue
		}
		w.gauge(onbootStatusDesc, boolValue(g.Config.OnBoot), g.ID(), g.Node, string(g.Type))
	}
	return partialError(inv, isGuestConfigEndpoint)
}
