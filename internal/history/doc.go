// Package history reads the cluster's past from Prometheus for the planner: a handful of PromQL range queries per
// planning cycle (one per signal, covering every node or guest at once) turned into per-node and per-guest float32
// series on one shared, step-aligned time grid, with the coverage of every series so that short history, gaps and
// missing series lower the planner's confidence instead of breaking it.
//
// Sources. Each core signal (CPU cores, memory bytes, I/O wait) is read from the recording rules of rules/
// recording.yml (guest:pve_cpu_usage_cores:avg5m, node:pve_cpu_usage_ratio:avg5m, ...), which are cheap to read
// over long windows. Recording rules only exist from the moment they were deployed (and never for backfilled
// history), so when a rule's data starts after the window's start, or it has no data at all, the part of the
// window before its first sample is read from the exporter's raw metrics with the same 5-minute averaging. All
// such fallbacks of one cycle share a single query. Gaps inside the rule's own history are left as gaps: they
// are what Prometheus saw, and they show up as coverage. Pressure (PSI), network and disk throughput have no
// recording rules and are always read from the exporter's metrics; they are optional (PSI is absent on PVE 8)
// and do not count towards the overall coverage.
//
// Failures. A failing core query (Prometheus down, an overloaded server) fails the Fetch with an error that names
// the query, and the caller plans nothing. Once the core queries are in, a failing optional or fallback query
// only costs its signal or its stretch of history: a warning, and lower coverage.
package history
