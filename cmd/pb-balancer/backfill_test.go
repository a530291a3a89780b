package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"

	"github.com/proxbalance/proxbalance/internal/config"
	"github.com/proxbalance/proxbalance/internal/promtest"
	"github.com/proxbalance/proxbalance/internal/pve"
	"github.com/proxbalance/proxbalance/internal/pvesim/pvesimtest"
)

// stint is a stretch of time a guest ran on one node.
type stint struct {
	node     string
	from, to time.Time
}

// guestHistory is one guest's load (constant: the simulator's current reading) and its placements over time.
type guestHistory struct {
	id, name, typ   string
	cores, ratio    float64 // CPU limit and usage ratio of it
	memUsed, memMax uint64
	stints          []stint
}

func (g guestHistory) nodeAt(t time.Time) string {
	for _, s := range g.stints {
		if !t.Before(s.from) && !t.After(s.to) {
			return s.node
		}
	}
	return ""
}

type nodeHistory struct {
	name     string
	cpus     float64
	memTotal uint64
	// baseCores and baseMem are what the node uses besides its guests.
	baseCores float64
	baseMem   uint64
}

// renderHistory writes OpenMetrics for every grid point from start to end: the raw series the exporter emits
// (pve_up, pve_cpu_usage_ratio/limit, pve_memory_usage/size_bytes, pve_node_iowait_ratio, pve_guest_info) and the
// recorded series of rules/recording.yml the balancer reads (5m and 1h node and guest averages, the running
// placement), all with the target labels job="pve", instance="sim". A node's load at a point is its base load
// plus the guests placed on it then, so raw and recorded series agree with each other and with the placements.
func renderHistory(w io.Writer, start, end time.Time, step time.Duration, nodes []nodeHistory, guests []guestHistory) {
	var times []time.Time
	for t := start; !t.After(end); t = t.Add(step) {
		times = append(times, t)
	}
	nodeCores := map[string][]float64{}
	nodeMem := map[string][]float64{}
	for _, n := range nodes {
		nodeCores[n.name] = make([]float64, len(times))
		nodeMem[n.name] = make([]float64, len(times))
		for i := range times {
			nodeCores[n.name][i], nodeMem[n.name][i] = n.baseCores, float64(n.baseMem)
		}
	}
	for _, g := range guests {
		for i, t := range times {
			if node := g.nodeAt(t); nodeCores[node] != nil {
				nodeCores[node][i] += g.cores * g.ratio
				nodeMem[node][i] += float64(g.memUsed)
			}
		}
	}
	const target = `job="pve",instance="sim"`
	family := func(name string) { fmt.Fprintf(w, "# TYPE %s gauge\n", name) }
	series := func(name, labels string, value func(i int, t time.Time) (float64, bool)) {
		for i, t := range times {
			if v, ok := value(i, t); ok {
				fmt.Fprintf(w, "%s{%s,%s} %g %d\n", name, target, labels, v, t.Unix())
			}
		}
	}
	always := func(v float64) func(int, time.Time) (float64, bool) {
		return func(int, time.Time) (float64, bool) { return v, true }
	}
	on := func(g guestHistory, node string, v float64) func(int, time.Time) (float64, bool) {
		return func(_ int, t time.Time) (float64, bool) { return v, g.nodeAt(t) == node }
	}
	nodeID := func(n nodeHistory) string { return fmt.Sprintf(`id="node/%s"`, n.name) }
	guestID := func(g guestHistory) string { return fmt.Sprintf(`id=%q`, g.id) }

	family("pve_up")
	for _, n := range nodes {
		series("pve_up", nodeID(n), always(1))
	}
	for _, g := range guests {
		series("pve_up", guestID(g), always(1))
	}
	family("pve_cpu_usage_ratio")
	for _, n := range nodes {
		series("pve_cpu_usage_ratio", nodeID(n), func(i int, _ time.Time) (float64, bool) { return nodeCores[n.name][i] / n.cpus, true })
	}
	for _, g := range guests {
		series("pve_cpu_usage_ratio", guestID(g), always(g.ratio))
	}
	family("pve_cpu_usage_limit")
	for _, n := range nodes {
		series("pve_cpu_usage_limit", nodeID(n), always(n.cpus))
	}
	for _, g := range guests {
		series("pve_cpu_usage_limit", guestID(g), always(g.cores))
	}
	family("pve_memory_usage_bytes")
	for _, n := range nodes {
		series("pve_memory_usage_bytes", nodeID(n), func(i int, _ time.Time) (float64, bool) { return nodeMem[n.name][i], true })
	}
	for _, g := range guests {
		series("pve_memory_usage_bytes", guestID(g), always(float64(g.memUsed)))
	}
	family("pve_memory_size_bytes")
	for _, n := range nodes {
		series("pve_memory_size_bytes", nodeID(n), always(float64(n.memTotal)))
	}
	for _, g := range guests {
		series("pve_memory_size_bytes", guestID(g), always(float64(g.memMax)))
	}
	family("pve_node_iowait_ratio")
	for _, n := range nodes {
		series("pve_node_iowait_ratio", nodeID(n), always(0.01))
	}
	family("pve_guest_info")
	for _, g := range guests {
		for _, s := range g.stints {
			series("pve_guest_info", fmt.Sprintf(`id=%q,node=%q,name=%q,type=%q,template="0",tags=""`, g.id, s.node, g.name, g.typ), on(g, s.node, 1))
		}
	}

	for _, win := range []string{"5m", "1h"} {
		name := "node:pve_cpu_usage_ratio:avg" + win
		family(name)
		for _, n := range nodes {
			series(name, nodeID(n)+fmt.Sprintf(",node=%q", n.name), func(i int, _ time.Time) (float64, bool) { return nodeCores[n.name][i] / n.cpus, true })
		}
		name = "node:pve_memory_usage_ratio:avg" + win
		family(name)
		for _, n := range nodes {
			series(name, nodeID(n)+fmt.Sprintf(",node=%q", n.name), func(i int, _ time.Time) (float64, bool) {
				return nodeMem[n.name][i] / float64(n.memTotal), true
			})
		}
		name = "node:pve_node_iowait_ratio:avg" + win
		family(name)
		for _, n := range nodes {
			series(name, nodeID(n)+fmt.Sprintf(",node=%q", n.name), always(0.01))
		}
	}
	family("guest:pve_guest_info:running")
	for _, g := range guests {
		for _, s := range g.stints {
			series("guest:pve_guest_info:running", guestID(g)+fmt.Sprintf(",node=%q", s.node), on(g, s.node, 1))
		}
	}
	for _, win := range []string{"5m", "1h"} {
		name := "guest:pve_cpu_usage_cores:avg" + win
		family(name)
		for _, g := range guests {
			for _, s := range g.stints {
				series(name, guestID(g)+fmt.Sprintf(",node=%q", s.node), on(g, s.node, g.cores*g.ratio))
			}
		}
		name = "guest:pve_memory_usage_bytes:avg" + win
		family(name)
		for _, g := range guests {
			for _, s := range g.stints {
				series(name, guestID(g)+fmt.Sprintf(",node=%q", s.node), on(g, s.node, float64(g.memUsed)))
			}
		}
	}
	fmt.Fprintln(w, "# EOF")
}

// backfilledWorld is the simulator's default cluster with a week of history rendered from its current readings.
type backfilledWorld struct {
	sim    *pvesimtest.Server
	caFile string
	rules  string
	end    time.Time
	nodes  []nodeHistory
	guests []guestHistory
}

// historyStep is the backfill's sample interval and the balancer's history resolution: 15m keeps the week
// (58 guests, 5 nodes) small enough to backfill in seconds.
const historyStep = 15 * time.Minute

// prometheus backfills the world's history and starts Prometheus on it with the recording rules (and no
// scrape: the history is all it knows).
func (w *backfilledWorld) prometheus(t *testing.T) *promtest.Process {
	t.Helper()
	var b strings.Builder
	renderHistory(&b, w.end.Add(-7*24*time.Hour), w.end, historyStep, w.nodes, w.guests)
	data := promtest.Backfill(t, b.String())
	return promtest.StartPrometheus(t, promtest.PrometheusOptions{DataDir: data,
		Config: fmt.Sprintf("global: {evaluation_interval: 1m}\nrule_files: [%q]\n", w.rules)})
}

// balancer runs serve with a fresh store against the simulator and prom; it returns the base URL and the logs.
func (w *backfilledWorld) balancer(t *testing.T, prom *promtest.Process) (string, *promtest.SyncBuffer) {
	t.Helper()
	listen := promtest.FreeAddr(t)
	cfgPath := writeConfig(t, testConfig{
		pveURL: w.sim.BaseURL, promURL: prom.URL(), listen: listen, mode: "manual",
		pveExtra:  fmt.Sprintf("  ca_file: %s\n", w.caFile),
		promExtra: "  selector: {job: pve, instance: sim}\n",
		extra:     fmt.Sprintf("history:\n  resolution: %s\n", historyStep),
	})
	cfg, err := config.LoadFile(cfgPath, config.OSEnv())
	if err != nil {
		t.Fatal(err)
	}
	logs := &promtest.SyncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfgPath, cfg, config.OSEnv(), realExecutor, log.NewLogfmtLogger(logs)) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	base := "http://" + listen
	poll(t, "serve to listen", 30*time.Second, logs.String, func() bool { return getJSON(t, base+"/-/healthy", "", nil) == http.StatusOK })
	return base, logs
}

type backfillPlan struct {
	State   string `json:"state"`
	Trigger string `json:"trigger"`
	Plan    struct {
		ID    string
		Moves []plannedMove
		Notes []struct{ Reason, Message string }
	} `json:"plan"`
}

type backfillVerdicts struct {
	Error string
	Moves []struct {
		Guest, Outcome, Message string
		Reasons                 []string
	}
}

// relieve posts a firing relieve alert for node and waits for its plan.
func relieve(t *testing.T, base string, logs *promtest.SyncBuffer, node, fingerprint string) backfillPlan {
	t.Helper()
	alert := fmt.Sprintf(`{"version":"4","status":"firing","receiver":"balancer","groupKey":"{}:{node=\"%[1]s\"}","truncatedAlerts":0,
"alerts":[{"status":"firing","labels":{"alertname":"PVENodeCPUPressure","node":%[1]q,"severity":"warning","proxbalance_action":"relieve"},
"annotations":{},"startsAt":"2026-11-27T05:00:00Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"","fingerprint":%[2]q}]}`, node, fingerprint)
	if code, body := send(t, http.MethodPost, base+"/api/v1/alerts", "Bearer serve-webhook-token", alert); code != http.StatusAccepted {
		t.Fatalf("webhook: %d %s", code, body)
	}
	var plan backfillPlan
	poll(t, "the relieve plan for "+node, 60*time.Second, logs.String, func() bool {
		var plans []backfillPlan
		getJSON(t, base+"/api/v1/plans", "", &plans)
		for _, p := range plans {
			if p.Trigger == "alert:PVENodeCPUPressure "+node {
				plan = p
				return true
			}
		}
		return false
	})
	return plan
}

func send(t *testing.T, method, url, auth, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", auth)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func approvePlan(t *testing.T, base, id string) (int, backfillVerdicts) {
	t.Helper()
	code, body := send(t, http.MethodPost, base+"/api/v1/plans/"+id+"/approve", "Bearer serve-api-token", `{"by":"oncall"}`)
	var v backfillVerdicts
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("approve: %d %s: %v", code, body, err)
	}
	return code, v
}

func migrateTaskCount(sim *pvesimtest.Server) int {
	n := 0
	for _, task := range sim.Sim.State().Tasks {
		if strings.Contains(task.UPID, "migrate:") {
			n++
		}
	}
	return n
}

// TestServePlansFromBackfilledWeek runs serve against the simulator's default cluster and a real Prometheus
// whose only data is a backfilled week of history (promtool tsdb create-blocks-from openmetrics). A relieve
// alert for pve1 becomes a plan made from that week; approved, its migrations complete in the simulator. Then,
// with a fresh store (the journal lost), Prometheus' placement history alone holds back moves of guests to nodes
// they left within the rollback window.
func TestServePlansFromBackfilledWeek(t *testing.T) {
	if testing.Short() {
		t.Skip("runs promtool and Prometheus")
	}
	began := time.Now()
	sim := pvesimtest.Start(t)
	w := &backfilledWorld{sim: sim, caFile: sim.CAFile(t), end: time.Now().Truncate(historyStep)}
	var err error
	if w.rules, err = filepath.Abs("../../rules/recording.yml"); err != nil {
		t.Fatal(err)
	}
	client, err := pve.New(pve.Config{URL: sim.BaseURL, TokenID: sim.AuditTokenID, TokenSecret: pve.Secret(sim.AuditTokenSecret), CAFile: w.caFile})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	inv, err := client.Inventory(t.Context(), pve.InventoryOptions{Parts: pve.DefaultParts})
	if err != nil {
		t.Fatal(err)
	}
	start := w.end.Add(-7 * 24 * time.Hour)
	for _, n := range inv.Nodes {
		if n.Online {
			w.nodes = append(w.nodes, nodeHistory{name: n.Name, cpus: float64(n.CPUs), memTotal: n.MemTotal,
				baseCores: 0.05 * float64(n.CPUs), baseMem: 2 << 30})
		}
	}
	for _, g := range inv.Guests {
		if g.Template || g.Status != "running" {
			continue
		}
		w.guests = append(w.guests, guestHistory{id: g.ID(), name: g.Name, typ: string(g.Type), cores: g.CPUs, ratio: g.CPU,
			memUsed: g.MemUsed, memMax: g.MemMax, stints: []stint{{node: g.Node, from: start, to: w.end}}})
	}

	// A week in which pve1 runs as hot as the simulator's pve1 runs now.
	base, logs := w.balancer(t, w.prometheus(t))
	t.Logf("%s: backfilled, Prometheus and serve started", time.Since(began))
	plan := relieve(t, base, logs, "pve1", "backfill-1")
	if len(plan.Plan.Moves) == 0 {
		t.Fatalf("the relieve plan moves nothing: %+v", plan.Plan.Notes)
	}
	code, verdicts := approvePlan(t, base, plan.Plan.ID)
	if code != http.StatusAccepted {
		t.Fatalf("approve: %d %+v", code, verdicts)
	}
	started := map[string]bool{}
	for _, v := range verdicts.Moves {
		if v.Outcome == "started" {
			started[v.Guest] = true
		}
	}
	poll(t, "the plan to be executed", 120*time.Second, logs.String, func() bool {
		sim.Clock.Advance(5 * time.Second)
		var p backfillPlan
		getJSON(t, base+"/api/v1/plans/"+plan.Plan.ID, "", &p)
		return p.State == "executed" || p.State == "partially-executed"
	})
	completed := movesLanded(t, sim, plan.Plan.Moves, started)
	if completed == 0 {
		t.Fatalf("no migration completed: %+v", verdicts)
	}
	if n := migrateTaskCount(sim); n != len(started) {
		t.Errorf("the simulator ran %d migrations, want the %d started", n, len(started))
	}
	t.Logf("%s: %d of %d moves completed", time.Since(began), completed, len(plan.Plan.Moves))

	// The journal is lost (a fresh store). In the week Prometheus now holds, each guest whose move did not start
	// ran on its planned target until 3 hours ago and on pve1 since: planning the same relief again moves them
	// back to a node they left within the rollback window, which only pve_guest_info's history can tell.
	returned := w.end.Add(-3 * time.Hour)
	back := map[string]string{}
	for _, m := range plan.Plan.Moves {
		if !started[m.Guest] {
			back[m.Guest] = m.Target
		}
	}
	for i := range w.guests {
		g := &w.guests[i]
		if target, ok := back[g.id]; ok {
			g.stints = []stint{{node: target, from: g.stints[0].from, to: returned}, {node: "pve1", from: returned.Add(historyStep), to: w.end}}
		}
	}
	base, logs = w.balancer(t, w.prometheus(t))
	again := relieve(t, base, logs, "pve1", "backfill-2")
	_, verdicts = approvePlan(t, base, again.Plan.ID)
	held := 0
	for i, v := range verdicts.Moves {
		m := again.Plan.Moves[i]
		if back[m.Guest] != m.Target {
			continue
		}
		if v.Outcome != "held" || !slices.Contains(v.Reasons, "RollbackWindow") {
			t.Errorf("%s back to %s: %s %v, want held for RollbackWindow", m.Guest, m.Target, v.Outcome, v.Reasons)
		}
		held++
	}
	if held == 0 {
		t.Fatalf("the fresh plan moves no guest back to the node it left: %+v", again.Plan.Moves)
	}
	// Moves that are not moves back may run: let them end, so serve stops cleanly.
	poll(t, "the second plan to settle", 120*time.Second, logs.String, func() bool {
		sim.Clock.Advance(5 * time.Second)
		var p backfillPlan
		getJSON(t, base+"/api/v1/plans/"+again.Plan.ID, "", &p)
		return p.State != "approved"
	})
	t.Logf("%s: %d moves back held by the rollback window", time.Since(began), held)
}
