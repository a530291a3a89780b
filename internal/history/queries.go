package history

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
)

// rawWindow is the averaging window of the recording rules (avg5m); raw metrics are averaged (and counters rated)
// over the same window, or over the step when that is longer, so both sources mean the same thing.
const rawWindow = 5 * time.Minute

// Labels this package adds in PromQL to tell series of one query apart.
const (
	directionLabel = "direction" // network and disk queries: receive/transmit, read/write
	fallbackLabel  = "pb_signal" // the shared fallback query: the signal query each series belongs to
)

const (
	guestIDs = `(?:qemu|lxc)/.+`
	nodeIDs  = `node/.+`
)

// signalQuery is one range query of a planning cycle.
type signalQuery struct {
	name string
	// rule reads a recording rule; empty when the signal has none and raw is the only source.
	rule string
	// raw reads the exporter's metrics: the fallback of rule, or the only source.
	raw   string
	route router
	// optional queries (PSI, network, disk) may fail without failing the Fetch: the signal is then left out
	// with a warning.
	optional bool
}

// selector renders a PromQL label matcher list: the extra matchers first, then the cluster selector sorted by
// label name, values quoted.
type selector map[string]string

var labelNameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

func (s selector) validate() error {
	for name, v := range s {
		if !labelNameRE.MatchString(name) || strings.HasPrefix(name, "__") {
			return fmt.Errorf("selector label %q: not a valid label name", name)
		}
		if name == "id" {
			return fmt.Errorf("selector label %q: reserved, the queries set it themselves", name)
		}
		if v == "" {
			return fmt.Errorf("selector label %q: empty value (it would match series without the label)", name)
		}
	}
	return nil
}

func (s selector) render(extra ...string) string {
	ms := slices.Clone(extra)
	names := make([]string, 0, len(s))
	for n := range s {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		ms = append(ms, n+"="+strconv.Quote(s[n]))
	}
	return "{" + strings.Join(ms, ",") + "}"
}

// promDuration renders d the way PromQL writes durations ("5m", "1h").
func promDuration(d time.Duration) string { return model.Duration(d).String() }

// signalQueries builds the cycle's queries for the selector and step. coreOnly leaves out PSI, network and disk.
func signalQueries(sel selector, step time.Duration, coreOnly bool) []signalQuery {
	win := promDuration(max(step, rawWindow))
	id := func(re string) string { return `id=~"` + re + `"` }
	// recorded reads a recording rule at each point; past a 5m step it averages the rule over the step, so that
	// no stretch of the window between two points goes unread.
	recorded := func(name string) string {
		if step <= rawWindow {
			return name + sel.render()
		}
		return "avg_over_time(" + name + sel.render() + "[" + promDuration(step) + "])"
	}
	avg := func(metric, ids string) string {
		return "avg_over_time(" + metric + sel.render(id(ids)) + "[" + win + "])"
	}
	// CPU cores are the usage ratio times the CPU limit (a guest's vCPUs or cpulimit, a node's CPU count), as the
	// guest:pve_cpu_usage_cores rules compute them. Node rules record ratios; the current capacity converts them.
	cores := func(ids string) string {
		return avg("pve_cpu_usage_ratio", ids) + " * on (job, instance, id) " + avg("pve_cpu_usage_limit", ids)
	}
	rate := func(metric, dir string) string {
		return `label_replace(rate(` + metric + sel.render() + "[" + win + `]), "` + directionLabel + `", "` + dir + `", "", "")`
	}
	qs := []signalQuery{
		{
			name:  "guest_cpu",
			rule:  recorded("guest:pve_cpu_usage_cores:avg5m"),
			raw:   cores(guestIDs),
			route: fixedSignal(CPU),
		},
		{
			name:  "guest_memory",
			rule:  recorded("guest:pve_memory_usage_bytes:avg5m"),
			raw:   avg("pve_memory_usage_bytes", guestIDs),
			route: fixedSignal(Memory),
		},
		{
			name:  "node_cpu",
			rule:  recorded("node:pve_cpu_usage_ratio:avg5m") + " * on (job, instance, id) pve_cpu_usage_limit" + sel.render(id(nodeIDs)),
			raw:   cores(nodeIDs),
			route: fixedSignal(CPU),
		},
		{
			name:  "node_memory",
			rule:  recorded("node:pve_memory_usage_ratio:avg5m") + " * on (job, instance, id) pve_memory_size_bytes" + sel.render(id(nodeIDs)),
			raw:   avg("pve_memory_usage_bytes", nodeIDs),
			route: fixedSignal(Memory),
		},
		{
			name:  "node_iowait",
			rule:  recorded("node:pve_node_iowait_ratio:avg5m"),
			raw:   avg("pve_node_iowait_ratio", nodeIDs),
			route: fixedSignal(IOWait),
		},
	}
	if coreOnly {
		return qs
	}
	return append(qs,
		signalQuery{
			name:     "pressure",
			optional: true,
			raw:      "avg_over_time(" + sel.render(`__name__=~"pve_node_pressure_ratio|pve_guest_pressure_ratio"`) + "[" + win + "])",
			route:    routePressure,
		},
		signalQuery{
			name:     "network",
			optional: true,
			raw:      rate("pve_network_receive_bytes_total", "receive") + " or " + rate("pve_network_transmit_bytes_total", "transmit"),
			route:    byDirection(map[string]Signal{"receive": NetReceive, "transmit": NetTransmit}),
		},
		signalQuery{
			name:     "disk",
			optional: true,
			raw:      rate("pve_disk_read_bytes_total", "read") + " or " + rate("pve_disk_written_bytes_total", "write"),
			route:    byDirection(map[string]Signal{"read": DiskRead, "write": DiskWrite}),
		},
	)
}

// fallbackExpr joins the raw expressions of several signal queries into one, each series labelled with the name
// of the query it belongs to, so that one query serves every fallback of a cycle.
func fallbackExpr(qs []signalQuery) string {
	parts := make([]string, len(qs))
	for i, q := range qs {
		parts[i] = `label_replace(` + q.raw + `, "` + fallbackLabel + `", "` + q.name + `", "", "")`
	}
	return strings.Join(parts, " or ")
}
