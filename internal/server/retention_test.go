package server

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/proxbalance/proxbalance/internal/placement"
	"github.com/proxbalance/proxbalance/internal/policy"
	"github.com/proxbalance/proxbalance/internal/store"
)

const day = 24 * time.Hour

// seedOldRecords stores, stamped at testNow by the harness' store clock, a rejected plan, a pending one, a
// migration that ended an hour later and one that never did.
func seedOldRecords(t *testing.T, h *harness) {
	t.Helper()
	ctx := context.Background()
	for _, r := range []store.PlanRecord{
		{Plan: placement.Plan{ID: "old-rejected"}, State: store.PlanRejected, Trigger: "api"},
		{Plan: placement.Plan{ID: "old-pending"}, Trigger: "api"},
	} {
		if _, _, err := h.store.CreatePlan(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	e, err := h.store.BeginMove(ctx, store.JournalEntry{Guest: "qemu/100", Source: "pve1", Target: "pve2", IntentAt: testNow})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.store.UpdateMove(ctx, e.ID, func(e *store.JournalEntry) error {
		e.State, e.EndedAt = store.MoveSucceeded, testNow.Add(time.Hour)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.store.BeginMove(ctx, store.JournalEntry{Guest: "qemu/101", Source: "pve1", Target: "pve3", IntentAt: testNow}); err != nil {
		t.Fatal(err)
	}
}

// TestSweepAppliesRetention: the server sweeps with the configured retention (the default when unset), counts
// what it removed, logs it, and drops removed plans from the plans gauge. Open plans and unfinished moves stay.
func TestSweepAppliesRetention(t *testing.T) {
	cases := []struct {
		name      string
		retention time.Duration
		after     time.Duration // how long after the records the sweep runs
		plans     int           // removed
		journal   int
	}{
		{"default keeps 90 days", 0, 89 * day, 0, 0},
		{"default removes after 90 days", 0, 91 * day, 1, 1},
		{"a week keeps what is exactly a week old", 7 * day, 7 * day, 0, 0},
		{"a week removes older", 7 * day, 7*day + 2*time.Hour, 1, 1},
		{"between the plan's and the move's end", 7 * day, 7*day + 30*time.Minute, 1, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := settings(policy.ModeManual)
			st.Retention = c.retention
			now := testNow.Add(c.after)
			h := newHarness(t, st, func(o *Options) { o.Now = func() time.Time { return now } })
			seedOldRecords(t, h)
			if err := h.srv.refreshGauges(context.Background()); err != nil {
				t.Fatal(err)
			}

			h.srv.sweep(context.Background())

			ctx := context.Background()
			if _, err := h.store.Plan(ctx, "old-rejected"); (err == nil) != (c.plans == 0) {
				t.Errorf("rejected plan: err = %v, want removed: %v", err, c.plans > 0)
			}
			if _, err := h.store.Plan(ctx, "old-pending"); err != nil {
				t.Errorf("pending plan: %v", err)
			}
			history, err := h.store.Journal(ctx, store.JournalQuery{})
			if err != nil {
				t.Fatal(err)
			}
			if want := 2 - c.journal; len(history) != want {
				t.Errorf("journal holds %d entries, want %d", len(history), want)
			}
			if active, err := h.store.ActiveMoves(ctx); err != nil || len(active) != 1 {
				t.Errorf("active moves = %d, %v; want the unfinished one", len(active), err)
			}
			_, metrics := h.do(t, http.MethodGet, "/metrics", "", "")
			for _, want := range []string{
				`proxbalance_store_records_removed_total{kind="plan"} ` + strconv.Itoa(c.plans),
				`proxbalance_store_records_removed_total{kind="journal"} ` + strconv.Itoa(c.journal),
			} {
				if !strings.Contains(metrics, want+"\n") {
					t.Errorf("metrics lack %s:\n%s", want, grepLines(metrics, "removed"))
				}
			}
			if rejected := strings.Contains(metrics, `proxbalance_plans{state="rejected"`); rejected != (c.plans == 0) {
				t.Errorf("plans gauge shows the rejected plan: %v, want %v:\n%s", rejected, c.plans == 0, grepLines(metrics, "proxbalance_plans{"))
			}
			logged := strings.Contains(h.logs.String(), "removed records past the retention")
			if want := c.plans+c.journal > 0; logged != want {
				t.Errorf("removal logged: %v, want %v:\n%s", logged, want, h.logs.String())
			}
		})
	}
}

// TestReloadAppliesRetention: a reload that shortens the retention takes effect on the next sweep.
func TestReloadAppliesRetention(t *testing.T) {
	next := settings(policy.ModeManual)
	next.Retention = 7 * day
	now := testNow.Add(30 * day)
	h := newHarness(t, settings(policy.ModeManual), func(o *Options) {
		o.Now = func() time.Time { return now }
		o.Reload = func(context.Context) (Settings, error) { return next, nil }
	})
	seedOldRecords(t, h)
	h.srv.sweep(context.Background())
	if _, err := h.store.Plan(context.Background(), "old-rejected"); err != nil {
		t.Fatalf("the default retention removed a 30-day-old plan: %v", err)
	}
	if err := h.srv.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.srv.sweep(context.Background())
	if _, err := h.store.Plan(context.Background(), "old-rejected"); err == nil {
		t.Error("a 7-day retention loaded by reload kept a 30-day-old plan")
	}
	if _, metrics := h.do(t, http.MethodGet, "/metrics", "", ""); !strings.Contains(metrics, `proxbalance_store_records_removed_total{kind="journal"} 1`) {
		t.Errorf("metrics after the reload's sweep:\n%s", grepLines(metrics, "removed"))
	}
}

// TestRollbackGateAfterRetentionSweep: with the shortest retention the config allows and the longest rollback
// window, a sweep forgets only departures outside the window: the gate still holds a move back to a node the
// guest left six days ago, and lets one go to a node left a month ago.
func TestRollbackGateAfterRetentionSweep(t *testing.T) {
	st := settings(policy.ModeManual)
	st.Gates.RollbackWindow = policy.MaxRollbackWindow
	st.Retention = 7 * day
	h := newHarness(t, st)
	ctx := context.Background()
	for _, m := range []struct {
		guest, src, dst string
		ended           time.Time
	}{
		{"qemu/100", "pve2", "pve1", testNow.Add(-6 * day)},
		{"qemu/101", "pve3", "pve1", testNow.Add(-30 * day)},
	} {
		e, err := h.store.BeginMove(ctx, store.JournalEntry{Guest: m.guest, Source: m.src, Target: m.dst, IntentAt: m.ended.Add(-time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.store.UpdateMove(ctx, e.ID, func(e *store.JournalEntry) error {
			e.State, e.EndedAt = store.MoveSucceeded, m.ended
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	h.srv.sweep(ctx)
	if history, err := h.store.Journal(ctx, store.JournalQuery{}); err != nil || len(history) != 1 || history[0].Guest != "qemu/100" {
		t.Fatalf("journal after the sweep = %+v, %v; want only the move inside the window", history, err)
	}

	h.planner.setMoves(placement.ActionRebalance, mv("qemu/100", "pve1", "pve2"), mv("qemu/101", "pve1", "pve3"))
	rec, err := h.srv.makePlan(ctx, placement.Request{Action: placement.ActionRebalance, Trigger: "api"}, "")
	if err != nil {
		t.Fatal(err)
	}
	code, resp := approve(t, h, rec.ID(), "")
	if got := strings.Join(outcomes(resp.Moves), " "); code != http.StatusAccepted || got != "held:RollbackWindow started:" {
		t.Errorf("approve = %d %s, want qemu/100 held by the rollback window and qemu/101 started", code, got)
	}
}

// A GET of the plans expires what is due but removes nothing: the retention is the periodic sweep's, which
// scans the whole journal.
func TestPlanReadsDoNotPrune(t *testing.T) {
	now := testNow.Add(91 * day)
	h := newHarness(t, settings(policy.ModeManual), func(o *Options) { o.Now = func() time.Time { return now } })
	seedOldRecords(t, h)
	ctx := context.Background()
	if code, body := h.do(t, http.MethodGet, "/api/v1/plans", "", ""); code != http.StatusOK {
		t.Fatalf("GET /api/v1/plans: %d %s", code, body)
	}
	if _, err := h.store.Plan(ctx, "old-rejected"); err != nil {
		t.Errorf("a GET removed the old rejected plan: %v", err)
	}
	if moves, err := h.store.Journal(ctx, store.JournalQuery{}); err != nil || len(moves) != 2 {
		t.Errorf("journal after a GET: %d entries, %v; want 2", len(moves), err)
	}
	h.srv.sweep(ctx)
	if _, err := h.store.Plan(ctx, "old-rejected"); err == nil {
		t.Error("the periodic sweep kept the old rejected plan")
	}
}
