package server

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"

	"github.com/proxbalance/proxbalance/internal/executor"
	"github.com/proxbalance/proxbalance/internal/history"
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
	ex, err := executor.New(executor.Config{PVE: client, Store: db, MaxConcurrent: 2, PollInterval: time.Millisecond,
		RetryBackoff: time.Millisecond, Now: sim.Clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{store: db, logs: &promtest.SyncBuffer{}}
	srv, err := New(Options{
		Planner:  &LivePlanner{PVE: client, History: noHistory{}, Now: sim.Clock.Now},
		Executor: ex, Store: db, Settings: settings(mode), Now: sim.Clock.Now, Logger: log.NewLogfmtLogger(h.logs),
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
