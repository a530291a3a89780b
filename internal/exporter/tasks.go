package exporter

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/proxbalance/proxbalance/internal/pve"
)

var (
	guestMigrationRunningDesc = prometheus.NewDesc(prometheus.BuildFQName(namespace, "guest", "migration_running"),
		"1 per running migration task of a guest; node is the source node.", []string{"id", "node"}, nil)
	guestLastMigrationTimestampDesc = prometheus.NewDesc(prometheus.BuildFQName(namespace, "guest", "last_migration_timestamp_seconds"),
		"End time of the guest's last finished migration task in /cluster/tasks, as a Unix timestamp.", []string{"id", "node", "outcome"}, nil)
	guestLastMigrationDurationDesc = prometheus.NewDesc(prometheus.BuildFQName(namespace, "guest", "last_migration_duration_seconds"),
		"Duration of the guest's last finished migration task in /cluster/tasks.", []string{"id", "node", "outcome"}, nil)
)

// migrationTaskGuestType maps PVE's migration task types to the guest type of their id.
var migrationTaskGuestType = map[string]pve.GuestType{"qmigrate": pve.TypeQEMU, "vzmigrate": pve.TypeLXC}

// tasksCollector exports guest migrations from /cluster/tasks: the running ones and each guest's last finished
// one. /cluster/tasks holds a bounded recent history, so a guest migrated long ago has no last-migration series.
type tasksCollector struct{}

func (tasksCollector) Update(inv *pve.Inventory, w *SeriesWriter) error {
	last := make(map[string]*pve.Task)
	var order []string
	for i := range inv.Tasks {
		t := &inv.Tasks[i]
		guestType, ok := migrationTaskGuestType[t.Type]
		if !ok || t.ID == "" {
			continue
		}
		id := string(guestType) + "/" + t.ID
		if t.Running() {
			w.gauge(guestMigrationRunningDesc, 1, id, t.Node)
			continue
		}
		prev, seen := last[id]
		if !seen {
			order = append(order, id)
		}
		if !seen || t.EndTime.After(prev.EndTime) {
			last[id] = t
		}
	}
	for _, id := range order {
		t := last[id]
		outcome := taskOutcome(t.Status)
		w.gauge(guestLastMigrationTimestampDesc, float64(t.EndTime.UnixNano())/1e9, id, t.Node, outcome)
		w.gauge(guestLastMigrationDurationDesc, t.EndTime.Sub(t.StartTime).Seconds(), id, t.Node, outcome)
	}
	return partialError(inv, endpointMatcher([]string{"/cluster/tasks"}, nil))
}

// taskOutcome classifies a finished task's exit status: "OK", "WARNINGS: N" (a success), or an error text.
func taskOutcome(status string) string {
	switch {
	case status == "OK":
		return "ok"
	case strings.HasPrefix(status, "WARNINGS"):
		return "warning"
	default:
		return "error"
	}
}
