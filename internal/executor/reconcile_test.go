package executor

import (
	"context"
	"testing"
	"time"

	"github.com/proxbalance/proxbalance/internal/pvesim"
	"github.com/proxbalance/proxbalance/internal/store"
)

// intent writes the journal entry a balancer writes before its migrate call, as if it died right after.
func intent(t *testing.T, h *harness, req Request) store.JournalEntry {
	t.Helper()
	en, err := h.store.BeginMove(context.Background(), store.JournalEntry{
		PlanID: req.PlanID, MoveIndex: req.MoveIndex, Guest: req.Move.Guest, Source: req.Move.Source,
		Target: req.Move.Target, Mode: "online", IntentAt: h.srv.Clock.Now(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return en
}

func (h *harness) reconcile() ReconcileReport {
	h.t.Helper()
	type out struct {
		rep ReconcileReport
		err error
	}
	o := drive(h, func() out {
		rep, err := h.exec.Reconcile(context.Background())
		return out{rep, err}
	})
	if o.err != nil {
		h.t.Fatalf("Reconcile: %v", o.err)
	}
	return o.rep
}

func TestReconcileAdoptsTaskStartedAfterIntent(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	req := request("qemu/107", "pve1", "pve2")
	en := intent(t, h, req)
	h.srv.Clock.Advance(time.Second)
	// The migrate call went out, then the balancer died before journaling the UPID.
	upid, err := h.api.PVE.Migrate(ctx, guestRef(t, "qemu/107", "pve1"), "pve2", onlineOpts)
	if err != nil {
		t.Fatal(err)
	}
	h.restart()
	rep := h.reconcile()
	if len(rep.Adopted) != 1 || rep.Adopted[0].ID != en.ID || rep.Adopted[0].UPID != upid || rep.Adopted[0].State != store.MoveSucceeded {
		t.Fatalf("report = %+v", rep)
	}
	if h.guestNode(107) != "pve2" {
		t.Error("guest not on the target")
	}
	assertOneMigrationAndNoRepeat(t, h, req)
}

func TestReconcileIntentWithoutTaskIsNotStarted(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	req := request("qemu/107", "pve1", "pve2")
	en := intent(t, h, req)
	// An older migration of the same guest must not be mistaken for ours.
	h.restart()
	rep := h.reconcile()
	if len(rep.NotStarted) != 1 || rep.NotStarted[0].ID != en.ID {
		t.Fatalf("report = %+v", rep)
	}
	got, err := h.store.Move(ctx, en.ID)
	if err != nil || got.State != store.MoveNotStarted || got.Reason != string(ReasonInterrupted) || got.Error == "" {
		t.Errorf("entry = %+v, %v", got, err)
	}
	if n := h.api.migrates.Load(); n != 0 {
		t.Errorf("reconcile made %d migrate calls", n)
	}
	if h.guestNode(107) != "pve1" || h.migrationTasks() != 0 {
		t.Error("reconcile moved the guest")
	}
	// Never re-issued: the same plan move is refused.
	res := h.exec.Execute(ctx, req)
	if res.Outcome != OutcomeRefused || res.Reason != ReasonDuplicate || h.api.migrates.Load() != 0 {
		t.Errorf("re-run after not-started = %s/%s", res.Outcome, res.Reason)
	}
}

func TestReconcileIgnoresOlderTaskOfTheGuest(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	// A migration that ended before our intent was written.
	if _, err := h.api.PVE.Migrate(ctx, guestRef(t, "qemu/107", "pve1"), "pve2", onlineOpts); err != nil {
		t.Fatal(err)
	}
	h.srv.Clock.Advance(5 * time.Minute)
	en := intent(t, h, request("qemu/107", "pve2", "pve3"))
	h.restart()
	rep := h.reconcile()
	if len(rep.NotStarted) != 1 || rep.NotStarted[0].ID != en.ID {
		t.Errorf("report = %+v, want the intent closed as not started", rep)
	}
}

func TestReconcileClosesTaskThatEndedWhileDown(t *testing.T) {
	tests := []struct {
		name  string
		fail  bool
		state store.MoveState
		node  string
	}{
		{name: "succeeded", state: store.MoveSucceeded, node: "pve2"},
		{name: "failed", fail: true, state: store.MoveFailed, node: "pve1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			h := newHarness(t)
			if tt.fail {
				h.setFaults(pvesim.Faults{FailMigrations: []pvesim.MigrationFault{{VMID: 107}}})
			}
			req := request("qemu/107", "pve1", "pve2")
			en := intent(t, h, req)
			upid, err := h.api.PVE.Migrate(ctx, guestRef(t, "qemu/107", "pve1"), "pve2", onlineOpts)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := h.store.UpdateMove(ctx, en.ID, func(j *store.JournalEntry) error {
				j.State, j.UPID, j.StartedAt = store.MoveStarted, upid, h.srv.Clock.Now()
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			h.srv.Clock.Advance(10 * time.Minute) // the balancer is down while the task ends
			h.restart()
			rep := h.reconcile()
			if len(rep.Closed) != 1 || rep.Closed[0].ID != en.ID || rep.Closed[0].State != tt.state {
				t.Fatalf("report = %+v", rep)
			}
			if tt.fail && rep.Closed[0].Error == "" {
				t.Error("failed entry has no error text")
			}
			if got := h.guestNode(107); got != tt.node {
				t.Errorf("guest on %s, want %s", got, tt.node)
			}
			assertOneMigrationAndNoRepeat(t, h, req)
		})
	}
}

func TestKilledDuringMigrationThenRestart(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	req := request("qemu/103", "pve1", "pve2") // 64 GiB of local disk: a long migration
	runCtx, kill := context.WithCancel(ctx)
	done := make(chan Result, 1)
	go func() { done <- h.exec.Execute(runCtx, req) }()
	waitFor(t, "the migration to start", func() bool {
		active, _ := h.store.ActiveMoves(ctx)
		return len(active) == 1 && active[0].UPID != ""
	})
	h.srv.Clock.Advance(10 * time.Second)

	// While it runs, the progress is visible.
	act, err := h.exec.Active(ctx)
	if err != nil || len(act) != 1 {
		t.Fatalf("Active = %+v, %v", act, err)
	}
	if p := act[0].Progress; p.Percent <= 0 || p.Percent >= 100 || p.Phase != PhaseDisks || p.Elapsed < 10*time.Second ||
		len(p.Disks) != 1 || p.TotalBytes == 0 {
		t.Errorf("progress = %+v", p)
	}

	kill()
	res := <-done
	if res.Outcome != OutcomeUnknown || res.Reason != ReasonCanceled {
		t.Fatalf("killed Execute = %s/%s (%v)", res.Outcome, res.Reason, res.Err)
	}
	h.restart()
	rep := h.reconcile()
	if len(rep.Followed) != 1 || rep.Followed[0].State != store.MoveSucceeded {
		t.Fatalf("report = %+v", rep)
	}
	// A second reconcile finds nothing to do.
	if rep := h.reconcile(); len(rep.Followed)+len(rep.Closed)+len(rep.Adopted)+len(rep.NotStarted)+len(rep.Unknown) != 0 {
		t.Errorf("second reconcile = %+v", rep)
	}
	assertOneMigrationAndNoRepeat(t, h, req)
}

func TestReconcileSkipsEntriesFollowedByThisProcess(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	done := make(chan Result, 1)
	go func() { done <- h.exec.Execute(ctx, request("qemu/103", "pve1", "pve2")) }()
	waitFor(t, "the migration to start", func() bool {
		active, _ := h.store.ActiveMoves(ctx)
		return len(active) == 1 && active[0].UPID != ""
	})
	rep, err := h.exec.Reconcile(ctx)
	if err != nil || len(rep.Skipped) != 1 || len(rep.Followed) != 0 {
		t.Errorf("Reconcile during Execute = %+v, %v", rep, err)
	}
	if res := drive(h, func() Result { return <-done }); res.Outcome != OutcomeSucceeded {
		t.Errorf("Execute = %s (%v)", res.Outcome, res.Err)
	}
}

func TestReconcileUnknownTask(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	en := intent(t, h, request("qemu/107", "pve1", "pve2"))
	bogus := "UPID:pve1:00001234:00005678:695B8BBE:qmigrate:107:root@pam:"
	if _, err := h.store.UpdateMove(ctx, en.ID, func(j *store.JournalEntry) error {
		j.State, j.UPID = store.MoveStarted, bogus
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	rep := h.reconcile()
	if len(rep.Unknown) != 1 || rep.Unknown[0].State != store.MoveUnknown || rep.Unknown[0].Reason != string(ReasonLost) {
		t.Errorf("report = %+v", rep)
	}
}

// assertOneMigrationAndNoRepeat checks that the simulator ran exactly one migration and that running the same
// request again neither migrates nor leaves anything open.
func assertOneMigrationAndNoRepeat(t *testing.T, h *harness, req Request) {
	t.Helper()
	ctx := context.Background()
	if n := h.migrationTasks(); n != 1 {
		t.Errorf("simulator ran %d migrations, want 1", n)
	}
	before := h.api.migrates.Load()
	res := h.execute(req)
	if res.Outcome != OutcomeRefused {
		t.Errorf("running the move again = %s/%s (%v), want refused", res.Outcome, res.Reason, res.Err)
	}
	if h.api.migrates.Load() != before || h.migrationTasks() != 1 {
		t.Error("the move was repeated")
	}
	if active, _ := h.store.ActiveMoves(ctx); len(active) != 0 {
		t.Errorf("journal still has open entries: %+v", active)
	}
}
