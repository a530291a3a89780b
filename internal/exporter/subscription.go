package exporter

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/proxbalance/proxbalance/internal/pve"
)

var (
	subscriptionInfoDesc = prometheus.NewDesc("pve_subscription_info",
		"Proxmox VE subscription info (1 if present)", []string{"id", "level"}, nil)
	subscriptionStatusDesc = prometheus.NewDesc("pve_subscription_status",
		"Proxmox VE subscription status (1 if matches status)", []string{"id", "status"}, nil)
	subscriptionNextDueDesc = prometheus.NewDesc("pve_subscription_next_due_timestamp_seconds",
		"Subscription next due date as Unix timestamp", idLabel, nil)
)

// subscriptionStatuses are the states of /nodes/{node}/subscription that prometheus-pve-exporter lists, sorted
// as the exposition is.
var subscriptionStatuses = []string{"active", "expired", "invalid", "new", "notfound", "suspended"}

// subscriptionCollector exports the subscription of the node that answered the API call (of every node whose
// subscription was fetched when the inventory does not mark a local node).
type subscriptionCollector struct{}

func (subscriptionCollector) Update(inv *pve.Inventory, w *SeriesWriter) error {
	local := localNode(inv)
	for i := range inv.Nodes {
		n := &inv.Nodes[i]
		if n.Subscription == nil || (local != "" && n.Name != local) {
			continue
		}
		id := nodeID(n.Name)
		lvl := n.Subscription.Level
		if lvl == "" {
			lvl = "unknown" // prometheus-pve-exporter's value when PVE sends no level
		}
		w.gauge(subscriptionInfoDesc, 1, id, lvl)
		// Older PVE releases capitalise the status ("Active", "NotFound").
		w.oneHot(subscriptionStatusDesc, id, subscriptionStatuses, strings.ToLower(n.Subscription.Status))
		if !n.Subscription.NextDueDate.IsZero() {
			w.gauge(subscriptionNextDueDesc, float64(n.Subscription.NextDueDate.Unix()), id)
		}
	}
	return partialError(inv, endpointMatcher(nil, []string{"subscription"}))
}
