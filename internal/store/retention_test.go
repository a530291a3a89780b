package store

import (
	"context"
	"maps"
	"slices"
	"testing"
	"time"
)

const retention = 90 * 24 * time.Hour

// TestSweepRetentionPlans builds one store holding a plan of every case, sweeps once, and checks which plans and
// approvals remain. One store, so removing a plan's approvals is shown not to touch a neighbour's.
func TestSweepRetentionPlans(t *testing.T) {
	now := t0.Add(100 * 24 * time.Hour)
	cutoff := now.Add(-retention)
	cases := []struct {
		id    string
		state PlanState
		// last is the plan's last update; approved plans are approved at it, final ones reach their state at it.
		last     time.Time
		approved bool
		expires  time.Time
		kept     bool
	}{
		{id: "rejected-older", state: PlanRejected, last: cutoff.Add(-time.Second)},
		{id: "executed-older", state: PlanExecuted, last: cutoff.Add(-time.Hour), approved: true},
		{id: "partial-older", state: PlanPartiallyExecuted, last: cutoff.Add(-time.Hour), approved: true},
		{id: "expired-older", state: PlanExpired, last: cutoff.Add(-30 * 24 * time.Hour)},
		{id: "withdrawn-older", state: PlanWithdrawn, last: cutoff.Add(-time.Minute)},
		{id: "rejected-at-cutoff", state: PlanRejected, last: cutoff, kept: true},
		{id: "executed-at-cutoff", state: PlanExecuted, last: cutoff, approved: true, kept: true},
		{id: "executed-newer", state: PlanExecuted, last: cutoff.Add(time.Second), approved: true, kept: true},
		{id: "rejected-newer", state: PlanRejected, last: now, kept: true},
		{id: "pending-older", state: PlanPending, last: cutoff.Add(-50 * 24 * time.Hour), kept: true},
		{id: "approved-older", state: PlanApproved, last: cutoff.Add(-50 * 24 * time.Hour), approved: true, kept: true},
		// Expired by this very sweep: its last update is now, so it stays for the whole retention.
		{id: "pending-expiring", state: PlanPending, last: cutoff.Add(-time.Hour), expires: cutoff, kept: true},
		// Plan IDs that extend a removed one's: its approvals must not be mistaken for theirs.
		{id: "executed-older-2", state: PlanExecuted, last: now.Add(-time.Hour), approved: true, kept: true},
	}
	ctx := context.Background()
	s, _, _ := openTemp(t)
	var clock time.Time
	s.now = func() time.Time { return clock }
	for _, c := range cases {
		clock = c.last
		if _, _, err := s.CreatePlan(ctx, PlanRecord{Plan: plan(c.id, 2), ExpiresAt: c.expires}); err != nil {
			t.Fatal(err)
		}
		if c.approved {
			if _, err := s.Approve(ctx, Approval{PlanID: c.id, By: "alice"}); err != nil {
				t.Fatal(err)
			}
		}
		if c.state != PlanPending && c.state != PlanApproved {
			if _, err := s.TransitionPlan(ctx, c.id, c.state, "test"); err != nil {
				t.Fatal(err)
			}
		}
	}

	clock = now
	res, err := s.Sweep(ctx, now, retention)
	if err != nil {
		t.Fatal(err)
	}
	wantRemoved, wantApprovals := 0, 0
	for _, c := range cases {
		if !c.kept {
			wantRemoved++
			if c.approved {
				wantApprovals++
			}
		}
	}
	if res.PlansRemoved != wantRemoved || res.ApprovalsRemoved != wantApprovals || res.JournalRemoved != 0 ||
		!slices.Equal(res.ExpiredPlans, []string{"pending-expiring"}) {
		t.Errorf("Sweep = %+v, want %d plans and %d approvals removed, pending-expiring expired", res, wantRemoved, wantApprovals)
	}
	for _, c := range cases {
		t.Run(c.id, func(t *testing.T) {
			rec, err := s.Plan(ctx, c.id)
			switch {
			case c.kept && err != nil:
				t.Errorf("removed: %v", err)
			case !c.kept && err == nil:
				t.Errorf("kept in state %s, updated %s; cutoff %s", rec.State, rec.UpdatedAt, cutoff)
			}
			ap, err := s.Approvals(ctx, c.id)
			if err != nil {
				t.Fatal(err)
			}
			if want := c.kept && c.approved; want != (len(ap) == 1) {
				t.Errorf("%d approvals, want them kept: %v", len(ap), want)
			}
		})
	}
	if res, err := s.Sweep(ctx, now, retention); err != nil || res.PlansRemoved != 0 || res.ApprovalsRemoved != 0 {
		t.Errorf("second Sweep = %+v, %v; want nothing removed", res, err)
	}
}

// TestSweepRetentionJournal checks which journal entries a sweep removes, that the active index and the ID
// sequence stay right, and that the file passes bbolt's consistency check afterwards.
func TestSweepRetentionJournal(t *testing.T) {
	now := t0.Add(100 * 24 * time.Hour)
	cutoff := now.Add(-retention)
	cases := []struct {
		guest string
		state MoveState
		// intent is when the entry was written; ended when it reached state (zero: never, or a dry-run record,
		// which is final when written and has no end).
		intent, ended time.Time
		kept          bool
	}{
		{guest: "qemu/101", state: MoveSucceeded, intent: cutoff.Add(-time.Hour), ended: cutoff.Add(-time.Second)},
		{guest: "qemu/102", state: MoveFailed, intent: t0, ended: t0.Add(time.Minute)},
		{guest: "qemu/103", state: MoveUnknown, intent: t0, ended: t0.Add(time.Hour)},
		{guest: "qemu/104", state: MoveNotStarted, intent: cutoff.Add(-time.Minute), ended: cutoff.Add(-time.Minute)},
		{guest: "qemu/105", state: MoveDryRun, intent: cutoff.Add(-time.Second)},
		{guest: "qemu/106", state: MoveDryRun, intent: cutoff, kept: true},
		{guest: "qemu/107", state: MoveSucceeded, intent: cutoff.Add(-time.Hour), ended: cutoff, kept: true},
		// Written before the cutoff, ended after it: the end counts.
		{guest: "qemu/108", state: MoveSucceeded, intent: cutoff.Add(-time.Hour), ended: cutoff.Add(time.Second), kept: true},
		{guest: "qemu/109", state: MoveFailed, intent: now.Add(-time.Hour), ended: now, kept: true},
		// Unfinished entries stay whatever their age: reconciliation must settle them.
		{guest: "qemu/110", state: MoveIntent, intent: t0, kept: true},
		{guest: "qemu/111", state: MoveStarted, intent: t0, kept: true},
	}
	ctx := context.Background()
	s, _, path := openTemp(t)
	ids := map[string]uint64{}
	for _, c := range cases {
		e := entry(c.guest, func(e *JournalEntry) { e.IntentAt = c.intent })
		if c.state == MoveDryRun {
			e.State = MoveDryRun
		}
		e, err := s.BeginMove(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		ids[c.guest] = e.ID
		if c.state == MoveIntent || c.state == MoveDryRun {
			continue
		}
		_, err = s.UpdateMove(ctx, e.ID, func(e *JournalEntry) error {
			e.State, e.StartedAt, e.EndedAt = c.state, c.intent, c.ended
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}

	if res, err := s.Sweep(ctx, now, 0); err != nil || res.JournalRemoved != 0 {
		t.Errorf("Sweep without retention = %+v, %v; want nothing removed", res, err)
	}
	res, err := s.Sweep(ctx, now, retention)
	if err != nil {
		t.Fatal(err)
	}
	var wantKept []uint64
	for _, c := range cases {
		if c.kept {
			wantKept = append(wantKept, ids[c.guest])
		}
	}
	if want := len(cases) - len(wantKept); res.JournalRemoved != want || res.PlansRemoved != 0 {
		t.Errorf("Sweep = %+v, want %d journal entries removed", res, want)
	}
	all, err := s.Journal(ctx, JournalQuery{IncludeDryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	var got []uint64
	for _, e := range all {
		got = append(got, e.ID)
	}
	slices.Sort(got)
	if !slices.Equal(got, wantKept) {
		t.Errorf("journal keeps entries %v, want %v (IDs by guest: %v)", got, wantKept, ids)
	}
	active, err := s.ActiveMoves(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(active) != 2 || active[0].ID != ids["qemu/110"] || active[1].ID != ids["qemu/111"] {
		t.Errorf("active moves = %+v, want the intent and started entries", active)
	}
	// IDs come from the bucket's sequence: a removed entry's ID is never handed out again.
	next, err := s.BeginMove(ctx, entry("qemu/101"))
	if err != nil || next.ID <= slices.Max(slices.Collect(maps.Values(ids))) {
		t.Errorf("BeginMove after the sweep = ID %d, %v; want a new ID", next.ID, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	reopened, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("reopening after the sweep (Open checks consistency): %v", err)
	}
	if err := reopened.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestRetentionKeepsWhatTheGatesRead: with the shortest retention the config allows and the longest rollback
// window, a sweep keeps every move the rollback and cooldown gates read, and forgets only older ones.
func TestRetentionKeepsWhatTheGatesRead(t *testing.T) {
	const week = 7 * 24 * time.Hour
	now := t0.Add(30 * 24 * time.Hour)
	ctx := context.Background()
	s, _, _ := openTemp(t)
	moves := []struct {
		src, dst   string
		state      MoveState
		ended      time.Time
		wantRemain bool
	}{
		{"pve3", "pve1", MoveSucceeded, now.Add(-week - time.Hour), false}, // left pve3 before the window
		{"pve2", "pve1", MoveSucceeded, now.Add(-week + time.Hour), true},  // left pve2 inside the window
		{"pve1", "pve3", MoveFailed, now.Add(-2 * time.Hour), true},        // the last attempt, for the cooldown
	}
	for _, m := range moves {
		e, err := s.BeginMove(ctx, JournalEntry{Guest: "qemu/100", Source: m.src, Target: m.dst, IntentAt: m.ended.Add(-time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.UpdateMove(ctx, e.ID, func(e *JournalEntry) error { e.State, e.EndedAt = m.state, m.ended; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	res, err := s.Sweep(ctx, now, week)
	if err != nil || res.JournalRemoved != 1 {
		t.Fatalf("Sweep = %+v, %v; want the move older than a week removed", res, err)
	}
	checks := []struct {
		node   string
		wantOK bool
		wantAt time.Time
	}{
		{"pve2", true, moves[1].ended},
		{"pve3", false, time.Time{}},
	}
	for _, c := range checks {
		at, ok, err := s.LeftNode(ctx, "qemu/100", c.node)
		if err != nil || ok != c.wantOK || !at.Equal(c.wantAt) {
			t.Errorf("LeftNode(%s) = %s, %v, %v; want %s, %v", c.node, at, ok, err, c.wantAt, c.wantOK)
		}
	}
	if last, ok, err := s.LastMove(ctx, "qemu/100"); err != nil || !ok || last.Source != "pve2" {
		t.Errorf("LastMove = %+v, %v, %v; want the move off pve2", last, ok, err)
	}
	if last, ok, err := s.LastAttempt(ctx, "qemu/100"); err != nil || !ok || last.State != MoveFailed {
		t.Errorf("LastAttempt = %+v, %v, %v; want the failed attempt", last, ok, err)
	}
}
