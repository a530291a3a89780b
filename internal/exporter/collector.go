package exporter

import (
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/proxbalance/proxbalance/internal/pve"
)

const namespace = "pve"

// Collector converts one aspect of an Inventory into series. Update writes what it can and returns an error
// when its output is incomplete (the inventory lacks data it needs); it never blocks on I/O.
type Collector interface {
	Update(inv *pve.Inventory, w *SeriesWriter) error
}

// Scope says which /pve URL toggle runs a collector, as in prometheus-pve-exporter: cluster=1 runs the
// cluster-wide collectors, node=1 the ones about the node that answered the API call.
type Scope int

const (
	ScopeCluster Scope = iota
	ScopeNode
)

func (s Scope) String() string {
	if s == ScopeNode {
		return "node"
	}
	return "cluster"
}

// CollectorSpec describes one collector the exporter can run.
type CollectorSpec struct {
	// Name is the collector label value and the --collector.<name> flag suffix.
	Name  string
	Help  string
	Scope Scope
	// Default is whether the collector runs unless --no-collector.<name> is given.
	Default bool
	New     func() Collector
}

// Collectors lists every collector, in the order they are documented. The names that
// prometheus-pve-exporter also has (node, cluster, backup-info, qdevice, config, replication, subscription) keep
// its flag names; see CompatFamilyGroups for status, version and resources.
func Collectors() []CollectorSpec {
	return []CollectorSpec{
		{Name: "cluster", Help: "Exposes PVE cluster info, quorum and version", Scope: ScopeCluster, Default: true, New: func() Collector { return clusterCollector{} }},
		{Name: "node", Help: "Exposes PVE node status, info, usage, pressure and allocation", Scope: ScopeCluster, Default: true, New: func() Collector { return nodeCollector{} }},
		{Name: "guest", Help: "Exposes VM/CT status, info, usage, HA and lock state", Scope: ScopeCluster, Default: true, New: func() Collector { return guestCollector{} }},
		{Name: "storage", Help: "Exposes PVE storage info, state and usage", Scope: ScopeCluster, Default: true, New: func() Collector { return storageCollector{} }},
		{Name: "placement", Help: "Exposes what pins guests to nodes: tags, local devices, bind mounts, storages, HA", Scope: ScopeCluster, Default: true, New: func() Collector { return placementCollector{} }},
		{Name: "tasks", Help: "Exposes running and last guest migrations from the cluster task list", Scope: ScopeCluster, Default: true, New: func() Collector { return tasksCollector{} }},
		{Name: "backup-info", Help: "Exposes information about guests which are not covered by any backup job", Scope: ScopeCluster, Default: true, New: func() Collector { return backupInfoCollector{} }},
		{Name: "qdevice", Help: "Exposes PVE QDevice status and info", Scope: ScopeCluster, Default: true, New: func() Collector { return qdeviceCollector{} }},
		{Name: "config", Help: "Exposes PVE onboot status", Scope: ScopeNode, Default: true, New: func() Collector { return configCollector{} }},
		{Name: "replication", Help: "Exposes PVE replication info", Scope: ScopeNode, Default: true, New: func() Collector { return replicationCollector{} }},
		{Name: "subscription", Help: "Exposes PVE subscription info", Scope: ScopeNode, Default: true, New: func() Collector { return subscriptionCollector{} }},
	}
}

var (
	scrapeSuccessDesc = prometheus.NewDesc(
		prometheus.BuildFQName(namespace, "exporter", "scrape_collector_success"),
		"Whether a collector succeeded (1) or its output is missing or incomplete (0); \"inventory\" is fetching the snapshot.",
		[]string{"collector"}, nil)
	scrapeDurationDesc = prometheus.NewDesc(
		prometheus.BuildFQName(namespace, "exporter", "scrape_collector_duration_seconds"),
		"Duration of a collector's part of the scrape; \"inventory\" is fetching the snapshot.",
		[]string{"collector"}, nil)
)

// inventoryCollectorName labels the fetch of the snapshot in the scrape success and duration families.
const inventoryCollectorName = "inventory"

// scrapePart is one piece of a scrape's output: the fetch of the inventory or a collector.
type scrapePart interface {
	write(w *SeriesWriter)
}

// namedCollector is a Collector bound to the inventory of one scrape. It reports its own success and
// duration and logs its error, so that one failing collector never fails the scrape (node_exporter's
// execute pattern).
type namedCollector struct {
	name   string
	c      Collector
	inv    *pve.Inventory
	logger log.Logger
}

func (n namedCollector) write(w *SeriesWriter) {
	if n.inv == nil {
		w.gauge(scrapeDurationDesc, 0, n.name)
		w.gauge(scrapeSuccessDesc, 0, n.name)
		return
	}
	start := time.Now()
	err := n.update(w)
	duration := time.Since(start)
	success := 1.0
	if err != nil {
		success = 0
		level.Error(n.logger).Log("msg", "collector failed", "collector", n.name, "duration_seconds", duration.Seconds(), "err", err)
	} else {
		level.Debug(n.logger).Log("msg", "collector succeeded", "collector", n.name, "duration_seconds", duration.Seconds())
	}
	w.gauge(scrapeDurationDesc, duration.Seconds(), n.name)
	w.gauge(scrapeSuccessDesc, success, n.name)
}

// update runs the collector, turning a panic (a bug meeting an inventory it did not expect) into its error, so
// that it costs this collector's output rather than the process.
func (n namedCollector) update(w *SeriesWriter) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("collector panicked: %v\n%s", r, debug.Stack())
		}
	}()
	return n.c.Update(n.inv, w)
}

// fetchCollector reports how fetching the scrape's inventory went.
type fetchCollector struct {
	duration time.Duration
	err      error
}

func (f fetchCollector) write(w *SeriesWriter) {
	success := 1.0
	if f.err != nil {
		success = 0
	}
	w.gauge(scrapeDurationDesc, f.duration.Seconds(), inventoryCollectorName)
	w.gauge(scrapeSuccessDesc, success, inventoryCollectorName)
}

// scrapeParts is a scrape's parts in order. The parts write one after the other: the series of a family that
// several collectors share (pve_up, the usage families) then arrive in a few sorted runs.
type scrapeParts struct {
	parts []scrapePart
	drop  map[*prometheus.Desc]bool // families of disabled compatibility groups
}

// writeText renders the scrape into an exposition.
func (s scrapeParts) writeText(e *textExposition) { s.write(&SeriesWriter{text: e, drop: s.drop}) }

func (s scrapeParts) write(w *SeriesWriter) {
	for _, p := range s.parts {
		p.write(w)
	}
}

// Describe sends nothing: the families depend on the inventory, so a scrape is an unchecked collector.
func (s scrapeParts) Describe(chan<- *prometheus.Desc) {}

// Collect makes a scrape a prometheus.Collector, for the registry of the debug view and tests.
func (s scrapeParts) Collect(ch chan<- prometheus.Metric) {
	s.write(&SeriesWriter{ch: ch, drop: s.drop})
}

// errPartial is the error a collector returns when the inventory lacks some of the data it converts.
var errPartial = errors.New("inventory is partial")

// partialError returns an error naming the inventory's fetch errors whose endpoint matches, or nil.
func partialError(inv *pve.Inventory, matches func(endpoint string) bool) error {
	var parts []string
	for _, p := range inv.Partial {
		if matches(p.Endpoint) {
			parts = append(parts, fmt.Sprintf("%s: %v", p.Endpoint, p.Err))
		}
	}
	if len(parts) == 0 {
		return nil
	}
	sort.Strings(parts)
	return fmt.Errorf("%w: %s", errPartial, strings.Join(parts, "; "))
}

// endpointMatcher matches endpoints that equal one of exact or, after the /nodes/{node}/ prefix, start with one
// of the node-relative prefixes (e.g. "status", "qemu/").
func endpointMatcher(exact []string, nodeRelative []string) func(string) bool {
	return func(endpoint string) bool {
		for _, e := range exact {
			if endpoint == e || strings.HasPrefix(endpoint, e+"/") || strings.HasPrefix(endpoint, e+"?") {
				return true
			}
		}
		rest, ok := strings.CutPrefix(endpoint, "/nodes/")
		if !ok {
			return false
		}
		_, rel, ok := strings.Cut(rest, "/")
		if !ok {
			return false
		}
		for _, p := range nodeRelative {
			if strings.HasPrefix(rel, p) {
				return true
			}
		}
		return false
	}
}

// sortedGuests returns the indexes of guests ordered by id as strings, the order in which the registry sorts
// series. Families whose series arrive in that order are sorted in linear time (pdqsort detects sorted input);
// for a cluster of thousands of guests that is most of a scrape's cost otherwise.
func sortedGuests(guests []pve.Guest) []int {
	ids := make([]string, len(guests))
	order := make([]int, len(guests))
	for i := range guests {
		ids[i] = guests[i].ID()
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(ids[a], ids[b]) })
	return order
}

// sortedCopy returns s sorted, copying only when it is not sorted already.
func sortedCopy(s []string) []string {
	if slices.IsSorted(s) {
		return s
	}
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

// isGuestConfigEndpoint matches /nodes/{node}/{qemu,lxc}/{vmid}/config.
func isGuestConfigEndpoint(endpoint string) bool {
	return endpointMatcher(nil, []string{"qemu/", "lxc/"})(endpoint) && strings.HasSuffix(endpoint, "/config")
}

// anyOf matches what one of the matchers matches.
func anyOf(matchers ...func(string) bool) func(string) bool {
	return func(endpoint string) bool {
		return slices.ContainsFunc(matchers, func(m func(string) bool) bool { return m(endpoint) })
	}
}

// boolValue converts a flag into a gauge value.
func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// localNode returns the name of the node that answered the API call, or "" when the inventory does not say.
func localNode(inv *pve.Inventory) string {
	for _, n := range inv.Nodes {
		if n.Local {
			return n.Name
		}
	}
	return ""
}
