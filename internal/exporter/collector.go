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

// Collector converts one aspect of an Inventory into metrics. Update sends what it can and returns an error
// when its output is incomplete (the inventory lacks data it needs); it never blocks on I/O.
type Collector interface {
	Update(inv *pve.Inventory, ch chan<- prometheus.Metric) error
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
// prometheus-pve-exporter also has (node, cluster, backup-info, config, replication, subscription) keep its
// flag names; see CompatFamilyGroups for status, version and resources.
func Collectors() []CollectorSpec {
	return []CollectorSpec{
		{Name: "cluster", Help: "Exposes PVE cluster info, quorum and version", Scope: ScopeCluster, Default: true, New: func() Collector { return clusterCollector{} }},
		{Name: "node", Help: "Exposes PVE node status, info, usage, pressure and allocation", Scope: ScopeCluster, Default: true, New: func() Collector { return nodeCollector{} }},
		{Name: "guest", Help: "Exposes VM/CT status, info, usage, HA and lock state", Scope: ScopeCluster, Default: true, New: func() Collector { return guestCollector{} }},
		{Name: "storage", Help: "Exposes PVE storage info, state and usage", Scope: ScopeCluster, Default: true, New: func() Collector { return storageCollector{} }},
		{Name: "placement", Help: "Exposes what pins guests to nodes: tags, local devices, bind mounts, storages, HA", Scope: ScopeCluster, Default: true, New: func() Collector { return placementCollector{} }},
		{Name: "tasks", Help: "Exposes running and last guest migrations from the cluster task list", Scope: ScopeCluster, Default: true, New: func() Collector { return tasksCollector{} }},
		{Name: "backup-info", Help: "Exposes information about guests which are not covered by any backup job", Scope: ScopeCluster, Default: true, New: func() Collector { return backupInfoCollector{} }},
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

// namedCollector is a Collector bound to the inventory of one scrape. It reports its own success and
// duration and logs its error, so that one failing collector never fails the scrape (node_exporter's
// execute pattern).
type namedCollector struct {
	name   string
	c      Collector
	inv    *pve.Inventory
	logger log.Logger
}

// Describe sends nothing: the families depend on the inventory, so the collector is unchecked.
func (n namedCollector) Describe(chan<- *prometheus.Desc) {}

func (n namedCollector) Collect(ch chan<- prometheus.Metric) {
	if n.inv == nil {
		ch <- prometheus.MustNewConstMetric(scrapeDurationDesc, prometheus.GaugeValue, 0, n.name)
		ch <- prometheus.MustNewConstMetric(scrapeSuccessDesc, prometheus.GaugeValue, 0, n.name)
		return
	}
	start := time.Now()
	err := n.update(ch)
	duration := time.Since(start)
	success := 1.0
	if err != nil {
		success = 0
		level.Error(n.logger).Log("msg", "collector failed", "collector", n.name, "duration_seconds", duration.Seconds(), "err", err)
	} else {
		level.Debug(n.logger).Log("msg", "collector succeeded", "collector", n.name, "duration_seconds", duration.Seconds())
	}
	ch <- prometheus.MustNewConstMetric(scrapeDurationDesc, prometheus.GaugeValue, duration.Seconds(), n.name)
	ch <- prometheus.MustNewConstMetric(scrapeSuccessDesc, prometheus.GaugeValue, success, n.name)
}

// update runs the collector, turning a panic (a bug meeting an inventory it did not expect) into its error, so
// that it costs this collector's output rather than the process.
func (n namedCollector) update(ch chan<- prometheus.Metric) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("collector panicked: %v\n%s", r, debug.Stack())
		}
	}()
	return n.c.Update(n.inv, ch)
}

// fetchCollector reports how fetching the scrape's inventory went.
type fetchCollector struct {
	duration time.Duration
	err      error
}

func (f fetchCollector) Describe(chan<- *prometheus.Desc) {}

func (f fetchCollector) Collect(ch chan<- prometheus.Metric) {
	success := 1.0
	if f.err != nil {
		success = 0
	}
	ch <- prometheus.MustNewConstMetric(scrapeDurationDesc, prometheus.GaugeValue, f.duration.Seconds(), inventoryCollectorName)
	ch <- prometheus.MustNewConstMetric(scrapeSuccessDesc, prometheus.GaugeValue, success, inventoryCollectorName)
}

// filteredCollector drops the families of disabled compatibility groups (see CompatFamilyGroups).
type filteredCollector struct {
	c    Collector
	drop map[*prometheus.Desc]bool
}

func (f filteredCollector) Update(inv *pve.Inventory, ch chan<- prometheus.Metric) error {
	inner := make(chan prometheus.Metric, 256)
	errc := make(chan error, 1)
	go func() {
		defer close(inner)
		errc <- f.c.Update(inv, inner)
	}()
	for m := range inner {
		if !f.drop[m.Desc()] {
			ch <- m
		}
	}
	return <-errc
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
