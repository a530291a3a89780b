package server

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"

	"github.com/proxbalance/proxbalance/internal/executor"
	"github.com/proxbalance/proxbalance/internal/history"
	"github.com/proxbalance/proxbalance/internal/policy"
	"github.com/proxbalance/proxbalance/internal/pve"
	"github.com/proxbalance/proxbalance/internal/pvesim"
	"github.com/proxbalance/proxbalance/internal/pvesim/pvesimtest"
	"github.com/proxbalance/proxbalance/internal/store"
)

// threeNodes is a small cluster: pve1 holds two guests on shared storage, to be evacuated.
const threeNodes = `name: e2e
nodes:
  - {name: pve1, cores: 16, memory: 64GiB}
  - {name: pve2, cores: 16, memory: 64GiB}
  - {name: pve3, cores: 16, memory: 64GiB}
storages:
  - {id: ceph, type: rbd, shared: true, content: "images,rootdir", size: 10TiB}
guests:
  - {vmid: 100, name: web, node: pve1, cores: 2, memory: 4GiB, disks: [{storage: ceph, size: 20GiB}]}
  - {vmid: 101, name: api, node: pve1, cores: 2, memory: 4GiB, disks: [{storage: ceph, size: 20GiB}]}
  - {vmid: 200, name: db, node: pve2, cores: 4, memory: 8GiB, disks: [{storage: ceph, size: 50GiB}]}
`

// noHistory is a history source without data: plans that need none (evacuations) still work.
type noHistory struct{}

func (noHistory) Fetch(context.Context, time.Time) (*history.Snapshot, error) { return nil, nil }

// simExecutor runs moves against the simulator the way the executor does (journal intent → migrate → started
// → follow the task → final state), advancing the simulator's manual clock while it waits.
type simExecutor struct {
	pve   *pve.Client
	store *store.Store
	clock *pvesim.ManualClock
}

func (e *simExecutor) Execute(ctx context.Context, req executor.Request) executor.Result {
	res := executor.Result{Request: req, Outcome: executor.OutcomeFailed}
	m := req.Move
	typ, id, _ := strings.Cut(m.Guest, "/")
	var vmid int
	fmt.Sscan(id, &vmid)
	entry, err := e.store.BeginMove(ctx, store.JournalEntry{PlanID: req.PlanID, MoveIndex: req.MoveIndex, Guest: m.Guest,
		Source: m.Source, Target: m.Target, Mode: "online", Trigger: req.Trigger, Approver: req.Approver,
		TargetScore: m.TargetAfter.Total, PredictedGain: m.Improvement, IntentAt: e.clock.Now()})
	if err != nil {
		res.Err = err
		return res
	}
	finish := func(state store.MoveState, msg string) {
		_, err := e.store.UpdateMove(ctx, entry.ID, func(j *store.JournalEntry) error {
			j.State, j.Error, j.EndedAt = state, msg, e.clock.Now()
			return nil
		})
		if err != nil && res.Err == nil {
			res.Err = err
		}
	}
	upid, err := e.pve.Migrate(ctx, pve.GuestRef{Type: pve.GuestType(typ), VMID: vmid, Node: m.Source}, m.Target, pve.MigrateOptions{Online: m.Online, Restart: typ == "lxc"})
	if err != nil {
		finish(store.MoveNotStarted, err.Error())
		res.Err = err
		return res
	}
	res.UPID = upid
	if _, err := e.store.UpdateMove(ctx, entry.ID, func(j *store.JournalEntry) error {
		j.State, j.UPID, j.StartedAt = store.MoveStarted, upid, e.clock.Now()
		return nil
	}); err != nil {
		res.Err = err
		return res
	}
	for range 10000 {
		st, err := e.pve.TaskStatus(ctx, upid)
		if err != nil {
			res.Err = err
			return res
		}
		if st.Done() {
			if st.Succeeded() {
				finish(store.MoveSucceeded, "")
				res.Outcome = executor.OutcomeSucceeded
			} else {
				finish(store.MoveFailed, st.ExitStatus)
			}
			return res
		}
		e.clock.Advance(5 * time.Second)
	}
	res.Err = fmt.Errorf("task %s did not end", upid)
	return res
}

func (e *simExecutor) Active(context.Context) ([]executor.ActiveMigration, error) { return nil, nil }

func (e *simExecutor) TaskLog(ctx context.Context, id uint64) ([]pve.TaskLogLine, error) {
	j, err := e.store.Move(ctx, id)
	if err != nil {
		return nil, err
	}
	return e.pve.TaskLog(ctx, j.UPID, 0, 1000)
}

type e2e struct {
	h     *harness
	sim   *pvesimtest.Server
	pve   *pve.Client
	exec  *simExecutor
	store *store.Store
}

func startE2E(t *testing.T, mode policy.Mode) *e2e {
	t.Helper()
	scn, err := pvesim.ParseScenario([]byte(threeNodes), "e2e.yml")
	if err != nil {
		t.Fatal(err)
	}
	sim := pvesimtest.Start(t, pvesimtest.WithScenario(scn), pvesimtest.WithPlainHTTP())
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
	ex := &simExecutor{pve: client, store: db, clock: sim.Clock}
	h := &harness{exec: nil, store: db, logs: &syncBuffer{}}
	srv, err := New(Options{
		Planner:  &LivePlanner{PVE: client, History: noHistory{}, Now: sim.Clock.Now},
		Executor: ex, Store: db, Settings: settings(mode), Now: sim.Clock.Now, Logger: log.NewLogfmtLogger(h.logs),
	})
	if err != nil {
		t.Fatal(err)
	}
	h.srv = srv
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return &e2e{h: h, sim: sim, pve: client, exec: ex, store: db}
}

func (e *e2e) guestNodes(t *testing.T) map[string]string {
	t.Helper()
	inv, err := e.pve.Inventory(context.Background(), pve.InventoryOptions{Parts: pve.PartClusterStatus})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, g := range inv.Guests {
		out[g.ID()] = g.Node
	}
	return out
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
	if before := e.guestNodes(t); before["qemu/100"] != "pve1" || before["qemu/101"] != "pve1" {
		t.Fatalf("a guest moved before approval: %v", before)
	}
	code, resp := approve(t, h, rec.ID(), `{"by":"alice"}`)
	if code != http.StatusAccepted || strings.Join(outcomes(resp.Moves), " ") != "started: started:" {
		t.Fatalf("approve: %d %v", code, outcomes(resp.Moves))
	}
	after := e.guestNodes(t)
	for _, g := range []string{"qemu/100", "qemu/101"} {
		if after[g] == "pve1" || after[g] == "" {
			t.Errorf("%s is on %q after the evacuation", g, after[g])
		}
	}
	final, err := e.store.Plan(context.Background(), rec.ID())
	if err != nil || final.State != store.PlanExecuted {
		t.Errorf("plan state %s (%s) %v, want executed", final.State, final.StateReason, err)
	}
	code, csv := h.do(t, http.MethodGet, "/api/v1/migrations?format=csv", "", "")
	if code != http.StatusOK || strings.Count(csv, ",succeeded,") != 2 || !strings.Contains(csv, ",alice,") || !strings.Contains(csv, "UPID:pve1:") {
		t.Errorf("migration history: %d\n%s", code, csv)
	}
	code, logBody := h.do(t, http.MethodGet, "/api/v1/migrations/1/log", "", "")
	if code != http.StatusOK || !strings.Contains(logBody, "migration finished successfully") {
		t.Errorf("migration log: %d %s", code, logBody)
	}
	// Approving again changes nothing: the plan is final.
	if code, _ := h.do(t, http.MethodPost, "/api/v1/plans/"+rec.ID()+"/approve", apiToken, ""); code != http.StatusConflict {
		t.Errorf("second approval: %d, want 409", code)
	}
}

func TestDryRunMovesNothingInSimulator(t *testing.T) {
	e := startE2E(t, policy.ModeDryRun)
	h := e.h
	if code, body := h.do(t, http.MethodGet, "/api/v1/nodes/pve1/evacuation", "", ""); code != http.StatusOK {
		t.Fatalf("evacuation: %d %s", code, body)
	}
	rec := h.plans(t)[0]
	code, resp := approve(t, h, rec.ID(), "")
	if code != http.StatusAccepted || strings.Join(outcomes(resp.Moves), " ") != "dry-run:DryRun dry-run:DryRun" {
		t.Fatalf("approve: %d %v", code, outcomes(resp.Moves))
	}
	if nodes := e.guestNodes(t); nodes["qemu/100"] != "pve1" || nodes["qemu/101"] != "pve1" {
		t.Errorf("dry-run moved a guest: %v", nodes)
	}
	if entries, err := e.store.Journal(context.Background(), store.JournalQuery{}); err != nil || len(entries) != 0 {
		t.Errorf("dry-run journaled %d migrations (%v)", len(entries), err)
	}
}
