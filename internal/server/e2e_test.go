package server

import (
	"cmp"
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"

	"github.com/proxbalance/proxbalance/internal/executor"
	"github.com/proxbalance/proxbalance/internal/history"
	"github.com/proxbalance/proxbalance/internal/placement"
	"github.com/proxbalance/proxbalance/internal/policy"
	"github.com/proxbalance/proxbalance/internal/promtest"
	"github.com/proxbalance/proxbalance/internal/pve"
	"github.com/proxbalance/proxbalance/internal/pvesim"
	"github.com/proxbalance/proxbalance/internal/pvesim/pvesimtest"
	"github.com/proxbalance/proxbalance/internal/store"
)

// threeNodes is a small cluster: pve1 holds a VM with a local disk and a VM on shared storage, to be evacuated.
const threeNodes = `name: e2e
nodes:
  - {name: pve1, cores: 16, memory: 64GiB}
  - {name: pve2, cores: 16, memory: 64GiB}
  - {name: pve3, cores: 16, memory: 64GiB}
storages:
  - {id: ceph, type: rbd, shared: true, content: "images,rootdir", size: 10TiB}
  - {id: local-zfs, type: zfspool, content: "images,rootdir", size: 1TiB}
guests:
  - {vmid: 100, name: web, node: pve1, cores: 2, memory: 4GiB, disks: [{storage: local-zfs, size: 20GiB}]}
  - {vmid: 101, name: api, node: pve1, cores: 2, memory: 4GiB, disks: [{storage: ceph, size: 20GiB}]}
  - {vmid: 200, name: db, node: pve2, cores: 4, memory: 8GiB, disks: [{storage: ceph, size: 50GiB}]}
`

// noHistory is a history source without data: plans that need none (evacuations) still work.
type noHistory struct{}

func (noHistory) Fetch(context.Context, time.Time) (*history.Snapshot, error) { return nil, nil }

type e2e struct {
	h     *harness
	sim   *pvesimtest.Server
	pve   *pve.Client
	store *store.Store
}

// startE2E runs the server with the real planner pipeline and the real executor against the simulator.
func startE2E(t *testing.T, mode policy.Mode) *e2e {
	t.Helper()
	return startE2EWith(t, e2eConfig{scenario: threeNodes, settings: settings(mode)})
}

// e2eConfig varies the end-to-end harness: the zero value of a field keeps the default.
type e2eConfig struct {
	scenario string
	settings Settings
	history  HistorySource // default noHistory
	horizon  time.Duration // the planner's expected history span
	start    time.Time     // the simulated clock's start; zero: the scenario's
	// wrapPVE, when set, wraps the PVE client the executor uses.
	wrapPVE func(executor.PVE) executor.PVE
}

func startE2EWith(t *testing.T, c e2eConfig) *e2e {
	t.Helper()
	scn, err := pvesim.ParseScenario([]byte(c.scenario), "e2e.yml")
	if err != nil {
		t.Fatal(err)
	}
	opts := []pvesimtest.Option{pvesimtest.WithScenario(scn), pvesimtest.WithPlainHTTP()}
	if !c.start.IsZero() {
		opts = append(opts, pvesimtest.WithStart(c.start))
	}
	sim := pvesimtest.Start(t, opts...)
	client, err := pve.New(pve.Config{URL: sim.URL, TokenID: sim.TokenID, TokenSecret: pve.Secret(sim.TokenSecret)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	db, err := store.Open(filepath.Join(t.TempDir(), "state.db"), store.Options{Now: sim.Clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	var exPVE executor.PVE = client
	if c.wrapPVE != nil {
		exPVE = c.wrapPVE(client)
	}
	ex, err := executor.New(executor.Config{PVE: exPVE, Store: db, MaxConcurrent: 2, PollInterval: time.Millisecond,
		RetryBackoff: time.Millisecond, Now: sim.Clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	hist := c.history
	if hist == nil {
		hist = noHistory{}
	}
	h := &harness{store: db, logs: &promtest.SyncBuffer{}}
	srv, err := New(Options{
		Planner:  &LivePlanner{PVE: client, History: hist, Now: sim.Clock.Now, Horizon: c.horizon},
		Executor: ex, Store: db, Settings: c.settings, Now: sim.Clock.Now, Logger: log.NewLogfmtLogger(h.logs),
		MeasureAfter: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	h.srv = srv
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return &e2e{h: h, sim: sim, pve: client, store: db}
}

func (e *e2e) guestNode(t *testing.T, vmid int) string {
	t.Helper()
	node, _, ok := e.sim.Sim.GuestNode(vmid)
	if !ok {
		t.Fatalf("guest %d is not in the simulator", vmid)
	}
	return node
}

// driveUntil advances the simulated clock (so migration tasks progress) until cond holds.
func (e *e2e) driveUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out driving the simulated clock until %s\n%s", what, e.h.logs.String())
		}
		e.sim.Clock.Advance(2 * time.Second)
		time.Sleep(time.Millisecond)
	}
}

const evacuateAlert = `{"version":"4","status":"firing","receiver":"balancer","groupKey":"{}:{node=\"pve1\"}","truncatedAlerts":0,
"alerts":[{"status":"firing","labels":{"alertname":"PVENodeMaintenanceEvacuation","node":"pve1","proxbalance_action":"evacuate"},
"annotations":{},"startsAt":"2026-01-05T09:55:00Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"","fingerprint":"0123abcd"}]}`

func TestWebhookPlanApproveMigrateInSimulator(t *testing.T) {
	e := startE2E(t, policy.ModeManual)
	h := e.h
	if code, body := h.do(t, http.MethodPost, "/api/v1/alerts", webhookToken, evacuateAlert); code != http.StatusAccepted {
		t.Fatalf("webhook: %d %s", code, body)
	}
	waitFor(t, "the evacuation plan", func() bool { return len(h.plans(t)) == 1 })
	rec := h.plans(t)[0]
	if len(rec.Plan.Moves) != 2 || rec.Plan.Action != "evacuate" {
		t.Fatalf("plan: %s %d moves %+v", rec.Plan.Action, len(rec.Plan.Moves), rec.Plan.Notes)
	}
	if e.guestNode(t, 100) != "pve1" || e.guestNode(t, 101) != "pve1" {
		t.Fatal("a guest moved before approval")
	}
	code, body := h.do(t, http.MethodPost, "/api/v1/plans/"+rec.ID()+"/approve", apiToken, `{"by":"alice"}`)
	if code != http.StatusAccepted {
		t.Fatalf("approve: %d %s", code, body)
	}
	var resp approveResponse
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(outcomes(resp.Moves), " "); got != "started: started:" {
		t.Fatalf("verdicts: %s", got)
	}
	// The simulated clock stands still: the first migration runs and shows up as active.
	waitFor(t, "an active migration", func() bool {
		_, body := h.do(t, http.MethodGet, "/api/v1/migrations/active", "", "")
		return strings.Contains(body, `"percent"`)
	})
	e.driveUntil(t, "the plan is executed", func() bool {
		p, err := e.store.Plan(context.Background(), rec.ID())
		return err == nil && p.State.Final()
	})
	h.srv.running.Wait()
	final, _ := e.store.Plan(context.Background(), rec.ID())
	if final.State != store.PlanExecuted {
		t.Errorf("plan state %s (%s), want executed", final.State, final.StateReason)
	}
	for _, vmid := range []int{100, 101} {
		if node := e.guestNode(t, vmid); node == "pve1" {
			t.Errorf("guest %d is still on pve1", vmid)
		}
	}
	code, csv := h.do(t, http.MethodGet, "/api/v1/migrations?format=csv", "", "")
	if code != http.StatusOK || strings.Count(csv, ",succeeded,") != 2 || !strings.Contains(csv, ",alice,") || !strings.Contains(csv, "UPID:pve1:") {
		t.Errorf("migration history: %d\n%s", code, csv)
	}
	code, logBody := h.do(t, http.MethodGet, "/api/v1/migrations/1/log", "", "")
	if code != http.StatusOK || !strings.Contains(logBody, "migration finished successfully") {
		t.Errorf("migration log: %d %s", code, logBody)
	}
	if code, _ := h.do(t, http.MethodGet, "/api/v1/migrations/99/log", "", ""); code != http.StatusNotFound {
		t.Errorf("log of an unknown migration: %d", code)
	}
	// Approving again changes nothing: the plan is final.
	if code, _ := h.do(t, http.MethodPost, "/api/v1/plans/"+rec.ID()+"/approve", apiToken, ""); code != http.StatusConflict {
		t.Errorf("second approval: %d, want 409", code)
	}
}

func TestDryRunMovesNothingInSimulator(t *testing.T) {
	e := startE2E(t, policy.ModeDryRun)
	h := e.h
	if code, body := h.do(t, http.MethodPost, "/api/v1/nodes/pve1/evacuation", apiToken, ""); code != http.StatusOK {
		t.Fatalf("evacuation: %d %s", code, body)
	}
	rec := h.plans(t)[0]
	code, resp := approve(t, h, rec.ID(), "")
	if code != http.StatusAccepted || strings.Join(outcomes(resp.Moves), " ") != "dry-run:DryRun dry-run:DryRun" {
		t.Fatalf("approve: %d %v", code, outcomes(resp.Moves))
	}
	e.sim.Clock.Advance(time.Hour)
	if e.guestNode(t, 100) != "pve1" || e.guestNode(t, 101) != "pve1" {
		t.Error("dry-run moved a guest")
	}
	entries, err := e.store.Journal(context.Background(), store.JournalQuery{IncludeDryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Fatalf("journal has %d entries, want the 2 dry runs", len(entries))
	}
	for _, en := range entries {
		if en.State != store.MoveDryRun || en.UPID != "" {
			t.Errorf("journal entry %d: state %s, UPID %q; want a dry run without a task", en.ID, en.State, en.UPID)
		}
	}
	if _, body := h.do(t, http.MethodGet, "/api/v1/migrations", "", ""); strings.TrimSpace(body) != "[]" {
		t.Errorf("history lists dry runs by default: %s", body)
	}
	if _, body := h.do(t, http.MethodGet, "/api/v1/migrations?dry_run=true&guest=qemu/101", "", ""); strings.Count(body, `"outcome": "dry-run"`) != 1 {
		t.Errorf("history with dry runs of qemu/101: %s", body)
	}
}

// hotNode is a cluster whose pve1 runs hot (see hotHistory): relieving it moves guests to pve2 and pve3. The
// tags of the guests on pve1 are filled in per test.
const hotNode = `name: gates
nodes:
  - {name: pve1, cores: 16, memory: 64GiB}
  - {name: pve2, cores: 16, memory: 64GiB}
  - {name: pve3, cores: 16, memory: 64GiB}
storages:
  - {id: ceph, type: rbd, shared: true, content: "images,rootdir", size: 10TiB}
guests:
  - {vmid: 100, name: web, node: pve1, cores: 6, memory: 4GiB, disks: [{storage: ceph, size: 20GiB}], tags: [TAGS]}
  - {vmid: 101, name: api, node: pve1, cores: 6, memory: 4GiB, disks: [{storage: ceph, size: 20GiB}], tags: [TAGS]}
  - {vmid: 102, name: job, node: pve1, cores: 6, memory: 4GiB, disks: [{storage: ceph, size: 20GiB}], tags: [TAGS]}
  - {vmid: 200, name: db, node: pve2, cores: 2, memory: 4GiB, disks: [{storage: ceph, size: 50GiB}]}
`

// hotHistory is a week of flat history at 5m in which pve1 uses 15.5 of its 16 cores (its three guests 5
// each) and the other nodes are nearly idle: relieving pve1 takes two moves.
type hotHistory struct{}

func (hotHistory) Fetch(_ context.Context, at time.Time) (*history.Snapshot, error) {
	const step, count = 5 * time.Minute, 7 * 24 * 12
	g := history.Grid{Start: at.Truncate(step).Add(-(count - 1) * step), Step: step, Count: count}
	flat := func(v float32) history.Series {
		vals := make([]float32, count)
		for i := range vals {
			vals[i] = v
		}
		return history.Series{Values: vals, Present: count}
	}
	entity := func(cpu, mem float32, iowait bool) *history.Entity {
		e := &history.Entity{}
		e.Series[history.CPU], e.Series[history.Memory] = flat(cpu), flat(mem)
		if iowait {
			e.Series[history.IOWait] = flat(0)
		}
		return e
	}
	const gib = 1 << 30
	return &history.Snapshot{Grid: g,
		Nodes: map[string]*history.Entity{
			"pve1": entity(15.5, 16*gib, true), "pve2": entity(1, 6*gib, true), "pve3": entity(0.5, 2*gib, true),
		},
		Guests: map[string]*history.Entity{
			"qemu/100": entity(5, 4*gib, false), "qemu/101": entity(5, 4*gib, false), "qemu/102": entity(5, 4*gib, false),
			"qemu/200": entity(1, 4*gib, false),
		},
	}, nil
}

// deniedTarget wraps the executor's PVE client: PVE's precondition check refuses every target, as it does when
// its view (a storage's node list, a mapped device) differs from what the planner read.
type deniedTarget struct{ executor.PVE }

func (d deniedTarget) MigratePrecondition(ctx context.Context, g pve.GuestRef, target string) (*pve.MigratePrecondition, error) {
	pc, err := d.PVE.MigratePrecondition(ctx, g, target)
	if err != nil {
		return nil, err
	}
	pc.AllowedNodes = slices.DeleteFunc(pc.AllowedNodes, func(n string) bool { return n == target })
	if pc.NotAllowed == nil {
		pc.NotAllowed = map[string]pve.MigrateBlockers{}
	}
	pc.NotAllowed[target] = pve.MigrateBlockers{UnavailableStorages: []string{"ceph"}}
	return pc, nil
}

// gatesStart is a Wednesday noon: the windows of the gate tests are placed around it.
var gatesStart = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

const relieveAlert = `{"alertname":"PVENodeCPUHigh","node":"pve1","proxbalance_action":"relieve"}`

// migrateTasks counts the migration tasks the simulator ever started.
func (e *e2e) migrateTasks() int {
	n := 0
	for _, task := range e.sim.Sim.State().Tasks {
		if strings.Contains(task.UPID, ":qmigrate:") {
			n++
		}
	}
	return n
}

// TestGatesHoldMovesInSimulator shows every gate holding a move back through the service: a relieve plan made
// by the real planner from live simulator state, re-validated on approval (or on automatic execution), and the
// real executor, which never asks the simulator to migrate.
func TestGatesHoldMovesInSimulator(t *testing.T) {
	hour := func(d time.Duration) int {
		return int(gatesStart.Add(d).Sub(gatesStart.Truncate(24*time.Hour)) / time.Minute)
	}
	// startMigration starts a migration the balancer did not ask for (another operator's) and leaves it running.
	startMigration := func(t *testing.T, e *e2e, vmid int, target string) {
		t.Helper()
		node := e.guestNode(t, vmid)
		if _, err := e.pve.Migrate(context.Background(), pve.GuestRef{Type: pve.TypeQEMU, VMID: vmid, Node: node}, target,
			pve.MigrateOptions{Online: true}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name  string
		tags  string
		mode  policy.Mode
		gates func(*policy.Gates)
		wrap  func(executor.PVE) executor.PVE
		// before runs after the plan is made and before it is approved.
		before func(t *testing.T, e *e2e, plan store.PlanRecord)
		// moves are the plan's move indexes to approve (nil: all).
		moves string
		// want is "outcome:reason" of the first verdict; for automatic execution the logged verdict.
		want string
		// wantMessage is part of that verdict's message.
		wantMessage string
		// wantExecutor is the executor's reason for a move that passed the gates but that PVE refused.
		wantExecutor string
	}{
		{name: "outside the migration window", gates: func(g *policy.Gates) {
			g.Windows = []policy.Window{{Start: hour(2 * time.Hour), End: hour(4 * time.Hour)}}
		}, want: "held:OutsideMigrationWindow", wantMessage: "outside every migration window"},
		{name: "window over midnight on other days", gates: func(g *policy.Gates) {
			g.Windows = []policy.Window{{Days: []time.Weekday{time.Saturday, time.Sunday}, Start: 22 * 60, End: 13 * 60}}
		}, want: "held:OutsideMigrationWindow"},
		{name: "blackout wins over an open window", gates: func(g *policy.Gates) {
			g.Windows = []policy.Window{{}}
			g.Blackouts = []policy.Window{{Days: []time.Weekday{time.Wednesday}, Start: hour(-time.Hour), End: hour(time.Hour)}}
		}, want: "held:Blackout", wantMessage: "inside blackout"},
		{name: "cooldown after a recent move", before: func(t *testing.T, e *e2e, plan store.PlanRecord) {
			ctx := context.Background()
			for _, m := range plan.Plan.Moves {
				en, err := e.store.BeginMove(ctx, store.JournalEntry{Guest: m.Guest, Source: "pve4", Target: "pve1", IntentAt: e.sim.Clock.Now().Add(-20 * time.Minute)})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := e.store.UpdateMove(ctx, en.ID, func(j *store.JournalEntry) error {
					j.State, j.UPID, j.StartedAt, j.EndedAt = store.MoveSucceeded, "UPID:pve4:1:2:3:qmigrate:100:root@pam:", e.sim.Clock.Now().Add(-20*time.Minute), e.sim.Clock.Now().Add(-10*time.Minute)
					return nil
				}); err != nil {
					t.Fatal(err)
				}
			}
		}, want: "held:Cooldown", wantMessage: "cooling down until"},
		{name: "minimum confidence", gates: func(g *policy.Gates) { g.MinConfidence = 100 }, want: "held:LowConfidence"},
		{name: "minimum improvement", gates: func(g *policy.Gates) { g.MinImprovement = 20 }, moves: "[1]",
			want: "held:LowImprovement", wantMessage: "is below 20.0"},
		{name: "max migrations per run (dry run counts like a real run)", mode: policy.ModeDryRun,
			gates: func(g *policy.Gates) { g.MaxPerRun = 1 }, want: "dry-run:DryRun held:MaxMigrationsPerRun"},
		{name: "max concurrent with a migration running in the cluster", gates: func(g *policy.Gates) { g.MaxConcurrent = 1 },
			before: func(t *testing.T, e *e2e, _ store.PlanRecord) { startMigration(t, e, 200, "pve3") },
			want:   "held:MaxConcurrentMigrations", wantMessage: "1 migrations running (max 1)"},
		{name: "guest locked by a migration started since planning", moves: "[0]",
			before: func(t *testing.T, e *e2e, plan store.PlanRecord) {
				m := plan.Plan.Moves[0]
				vmid, _ := strconv.Atoi(strings.TrimPrefix(m.Guest, "qemu/"))
				other := "pve2"
				if m.Target == other {
					other = "pve3"
				}
				startMigration(t, e, vmid, other)
			},
			want: "refused:NoLongerProposed", wantMessage: "Locked"},
		{name: "target offline", moves: "[0]",
			before: func(t *testing.T, e *e2e, plan store.PlanRecord) {
				if err := e.sim.Sim.SetFaults(pvesim.Faults{OfflineNodes: []string{plan.Plan.Moves[0].Target}}); err != nil {
					t.Fatal(err)
				}
			},
			want: "refused:TargetNoLongerValid"},
		{name: "PVE's precondition check denies the target", moves: "[0]",
			wrap: func(p executor.PVE) executor.PVE { return deniedTarget{p} },
			want: "started:", wantExecutor: string(executor.ReasonPreconditionDenied)},
		{name: "tag no-auto-migrate holds automatic execution", tags: policy.TagNoAutoMigrate, mode: policy.ModeAuto,
			want: "held:TagNoAutoMigrate"},
		{name: "whitelist mode without auto-migrate-ok", mode: policy.ModeAuto,
			gates: func(g *policy.Gates) { g.Whitelist = true }, want: "held:NotWhitelisted"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mode := cmp.Or(tc.mode, policy.ModeManual)
			st := settings(mode)
			if tc.gates != nil {
				tc.gates(&st.Gates)
			}
			e := startE2EWith(t, e2eConfig{scenario: strings.ReplaceAll(hotNode, "TAGS", tc.tags), settings: st,
				history: hotHistory{}, start: gatesStart, wrapPVE: tc.wrap})
			h := e.h
			if code, body := h.do(t, http.MethodPost, "/api/v1/alerts", webhookToken, alertJSON("firing", 1, 0, relieveAlert)); code != http.StatusAccepted {
				t.Fatalf("webhook: %d %s", code, body)
			}
			waitFor(t, "the relieve plan", func() bool { return len(h.plans(t)) == 1 })
			rec := h.plans(t)[0]
			if rec.Plan.Action != placement.ActionRelieve || len(rec.Plan.Moves) < 2 {
				t.Fatalf("plan: %s with %d moves, want a relieve plan of 2 or more: %+v", rec.Plan.Action, len(rec.Plan.Moves), rec.Plan.Notes)
			}
			if tc.before != nil {
				tc.before(t, e, rec)
			}
			tasks := e.migrateTasks()

			var got []string
			var message string
			if mode == policy.ModeAuto {
				// Automatic execution logs its verdicts and leaves a plan it could not start pending.
				waitFor(t, "the automatic verdicts", func() bool { return strings.Contains(h.logs.String(), `msg="move verdict"`) })
				for line := range strings.Lines(h.logs.String()) {
					if strings.Contains(line, `msg="move verdict"`) && strings.Contains(line, "index=0 ") {
						got = append(got, logValue(line, "outcome")+":"+logValue(line, "reasons"))
					}
				}
				if p, _ := e.store.Plan(context.Background(), rec.ID()); p.State != store.PlanPending {
					t.Errorf("plan state %s, want pending", p.State)
				}
			} else {
				body := `{"by":"alice"}`
				if tc.moves != "" {
					body = `{"by":"alice","moves":` + tc.moves + `}`
				}
				code, raw := h.do(t, http.MethodPost, "/api/v1/plans/"+rec.ID()+"/approve", apiToken, body)
				var resp approveResponse
				if err := json.Unmarshal([]byte(raw), &resp); err != nil {
					t.Fatalf("approve: %d %s: %v", code, raw, err)
				}
				got = outcomes(resp.Moves)
				if len(resp.Moves) > 0 {
					message = resp.Moves[0].Message
				}
				wantCode := http.StatusConflict
				if strings.HasPrefix(tc.want, "started") || strings.HasPrefix(tc.want, "dry-run") {
					wantCode = http.StatusAccepted
				}
				if code != wantCode {
					t.Errorf("approve: %d, want %d: %s", code, wantCode, raw)
				}
			}
			if n := len(strings.Fields(tc.want)); len(got) > n {
				got = got[:n]
			}
			if strings.Join(got, " ") != tc.want {
				t.Errorf("verdicts %v, want %s\n%s", got, tc.want, h.logs.String())
			}
			if !strings.Contains(message, tc.wantMessage) {
				t.Errorf("message %q does not say %q", message, tc.wantMessage)
			}
			if tc.wantExecutor != "" {
				h.srv.running.Wait()
				// The executor refuses at its pre-checks, before the journal entry (which only a migrate call needs).
				var ended []string
				for line := range strings.Lines(h.logs.String()) {
					if strings.Contains(line, `msg="move ended"`) {
						ended = append(ended, logValue(line, "outcome")+":"+logValue(line, "reason"))
					}
				}
				if want := "refused:" + tc.wantExecutor; !slices.Equal(ended, []string{want}) {
					t.Errorf("moves ended %v, want [%s]\n%s", ended, want, h.logs.String())
				}
				if entries, err := e.store.Journal(context.Background(), store.JournalQuery{}); err != nil || len(entries) != 0 {
					t.Errorf("journal %+v (%v), want no entry for a move PVE refused before any migrate call", entries, err)
				}
			}
			e.sim.Clock.Advance(time.Minute)
			h.srv.running.Wait()
			if n := e.migrateTasks(); n != tasks {
				t.Errorf("the simulator got %d new migration tasks, want none", n-tasks)
			}
		})
	}
}

// logValue reads key's value from a logfmt line.
func logValue(line, key string) string {
	_, rest, ok := strings.Cut(line, " "+key+"=")
	if !ok {
		return ""
	}
	if strings.HasPrefix(rest, `"`) {
		v, _, _ := strings.Cut(rest[1:], `"`)
		return v
	}
	v, _, _ := strings.Cut(rest, " ")
	return strings.TrimSpace(v)
}

// TestIgnoredGuestsAreNeverPlanned shows the ignore tag through the service: the planner filters tagged guests,
// so no plan offers them (the policy's TagIgnore gate is the second line should a plan ever carry one).
func TestIgnoredGuestsAreNeverPlanned(t *testing.T) {
	e := startE2EWith(t, e2eConfig{scenario: strings.ReplaceAll(hotNode, "TAGS", policy.TagIgnore), settings: settings(policy.ModeAuto),
		history: hotHistory{}, start: gatesStart})
	h := e.h
	if code, body := h.do(t, http.MethodPost, "/api/v1/alerts", webhookToken, alertJSON("firing", 1, 0, relieveAlert)); code != http.StatusAccepted {
		t.Fatalf("webhook: %d %s", code, body)
	}
	var rep decisionsReport
	waitFor(t, "the relieve decisions", func() bool {
		_, body := h.do(t, http.MethodGet, "/api/v1/decisions", "", "")
		return json.Unmarshal([]byte(body), &rep) == nil && rep.Action == placement.ActionRelieve
	})
	ignored := map[string]bool{}
	for _, d := range rep.Decisions {
		if d.Outcome == placement.OutcomeFiltered && slices.Contains(d.Reasons, placement.ReasonIgnored) {
			ignored[d.Guest] = true
		}
	}
	for _, g := range []string{"qemu/100", "qemu/101", "qemu/102"} {
		if !ignored[g] {
			t.Errorf("%s is not filtered as %s: %+v", g, placement.ReasonIgnored, rep.Decisions)
		}
	}
	if plans := h.plans(t); len(plans) != 0 {
		t.Errorf("%d plans stored, want none: %+v", len(plans), plans[0].Plan.Moves)
	}
	e.sim.Clock.Advance(time.Minute)
	if n := e.migrateTasks(); n != 0 {
		t.Errorf("the simulator got %d migration tasks, want none", n)
	}
}
