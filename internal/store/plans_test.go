package store

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

func TestCreatePlanIsIdempotent(t *testing.T) {
	ctx := context.Background()
	s, clk, _ := openTemp(t)
	rec, created, err := s.CreatePlan(ctx, PlanRecord{Plan: plan("p1", 1), Trigger: "alert:A", AlertFingerprint: "fp"})
	if err != nil || !created || rec.State != PlanPending || !rec.CreatedAt.Equal(t0) {
		t.Fatalf("first create = %+v, %v, %v", rec, created, err)
	}
	clk.Advance(time.Minute)
	again, created, err := s.CreatePlan(ctx, PlanRecord{Plan: plan("p1", 3), Trigger: "alert:B"})
	if err != nil || created {
		t.Fatalf("second create: created=%v err=%v", created, err)
	}
	if again.Trigger != "alert:A" || len(again.Plan.Moves) != 1 || !again.CreatedAt.Equal(t0) {
		t.Errorf("second create returned %+v, want the stored record", again)
	}
	for _, bad := range []PlanRecord{{}, {Plan: plan("x", 0), State: "bogus"}} {
		if _, _, err := s.CreatePlan(ctx, bad); err == nil {
			t.Errorf("CreatePlan(%+v) succeeded", bad)
		}
	}
}

func TestPlanTransitions(t *testing.T) {
	tests := []struct {
		from, to PlanState
		ok       bool
	}{
		{PlanPending, PlanApproved, true},
		{PlanPending, PlanRejected, true},
		{PlanPending, PlanExpired, true},
		{PlanPending, PlanWithdrawn, true},
		{PlanPending, PlanExecuted, false},
		{PlanApproved, PlanExecuted, true},
		{PlanApproved, PlanPartiallyExecuted, true},
		{PlanApproved, PlanWithdrawn, false},
		{PlanApproved, PlanPending, false},
		{PlanRejected, PlanApproved, false},
		{PlanExecuted, PlanExpired, false},
		{PlanWithdrawn, PlanPending, false},
	}
	for _, tt := range tests {
		t.Run(string(tt.from)+"→"+string(tt.to), func(t *testing.T) {
			ctx := context.Background()
			s, clk, _ := openTemp(t)
			if _, _, err := s.CreatePlan(ctx, PlanRecord{Plan: plan("p", 1), State: tt.from}); err != nil {
				t.Fatal(err)
			}
			clk.Advance(time.Second)
			rec, err := s.TransitionPlan(ctx, "p", tt.to, "because")
			if tt.ok {
				if err != nil || rec.State != tt.to || rec.StateReason != "because" || !rec.UpdatedAt.Equal(t0.Add(time.Second)) {
					t.Errorf("TransitionPlan = %+v, %v", rec, err)
				}
				return
			}
			var te *TransitionError
			if !errors.As(err, &te) || !errors.Is(err, ErrInvalidTransition) || te.From != tt.from || te.To != tt.to {
				t.Errorf("err = %v, want a TransitionError %s→%s", err, tt.from, tt.to)
			}
			if got, _ := s.Plan(ctx, "p"); got.State != tt.from {
				t.Errorf("state changed to %s on a refused transition", got.State)
			}
		})
	}
	ctx := context.Background()
	s, _, _ := openTemp(t)
	if _, err := s.TransitionPlan(ctx, "missing", PlanApproved, ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing plan: err = %v, want ErrNotFound", err)
	}
}

func TestApprove(t *testing.T) {
	tests := []struct {
		name    string
		moves   []int
		want    []int
		wantErr bool
	}{
		{name: "all moves", moves: nil, want: []int{0, 1, 2}},
		{name: "subset, sorted and deduplicated", moves: []int{2, 0, 2}, want: []int{0, 2}},
		{name: "index out of range", moves: []int{3}, wantErr: true},
		{name: "negative index", moves: []int{-1}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			s, _, _ := openTemp(t)
			if _, _, err := s.CreatePlan(ctx, PlanRecord{Plan: plan("p", 3)}); err != nil {
				t.Fatal(err)
			}
			rec, err := s.Approve(ctx, Approval{PlanID: "p", By: "alice", Moves: tt.moves})
			ap, _ := s.Approvals(ctx, "p")
			if tt.wantErr {
				if err == nil {
					t.Fatal("Approve succeeded")
				}
				if got, _ := s.Plan(ctx, "p"); got.State != PlanPending || len(ap) != 0 {
					t.Errorf("refused approval left state %s and %d approvals", got.State, len(ap))
				}
				return
			}
			if err != nil || rec.State != PlanApproved {
				t.Fatalf("Approve = %+v, %v", rec, err)
			}
			if len(ap) != 1 || !slices.Equal(ap[0].Moves, tt.want) || ap[0].By != "alice" || !ap[0].At.Equal(t0) {
				t.Errorf("approvals = %+v, want moves %v", ap, tt.want)
			}
			if _, err := s.Approve(ctx, Approval{PlanID: "p", By: "bob"}); !errors.Is(err, ErrInvalidTransition) {
				t.Errorf("second approval err = %v, want ErrInvalidTransition", err)
			}
		})
	}
}

func TestApprovalsDoNotLeakAcrossPlanIDPrefixes(t *testing.T) {
	ctx := context.Background()
	s, _, _ := openTemp(t)
	for _, id := range []string{"p", "p1"} {
		if _, _, err := s.CreatePlan(ctx, PlanRecord{Plan: plan(id, 1)}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Approve(ctx, Approval{PlanID: id, By: "by-" + id}); err != nil {
			t.Fatal(err)
		}
	}
	ap, err := s.Approvals(ctx, "p")
	if err != nil || len(ap) != 1 || ap[0].By != "by-p" {
		t.Errorf("Approvals(p) = %+v, %v", ap, err)
	}
}

func TestPlansFilter(t *testing.T) {
	ctx := context.Background()
	s, clk, _ := openTemp(t)
	for i, r := range []PlanRecord{
		{Plan: plan("a", 1), AlertFingerprint: "fp1"},
		{Plan: plan("b", 1), AlertFingerprint: "fp2"},
		{Plan: plan("c", 1), AlertFingerprint: "fp1", State: PlanApproved},
		{Plan: plan("d", 1), State: PlanRejected},
	} {
		r.CreatedAt = t0.Add(time.Duration(i) * time.Minute)
		if _, _, err := s.CreatePlan(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(time.Hour)
	tests := []struct {
		name string
		f    PlanFilter
		want []string
	}{
		{"all, newest first", PlanFilter{}, []string{"d", "c", "b", "a"}},
		{"pending", PlanFilter{States: []PlanState{PlanPending}}, []string{"b", "a"}},
		{"open", PlanFilter{States: []PlanState{PlanPending, PlanApproved}}, []string{"c", "b", "a"}},
		{"by alert", PlanFilter{AlertFingerprint: "fp1"}, []string{"c", "a"}},
		{"pending by alert", PlanFilter{AlertFingerprint: "fp1", States: []PlanState{PlanPending}}, []string{"a"}},
		{"limit", PlanFilter{Limit: 2}, []string{"d", "c"}},
		{"none", PlanFilter{States: []PlanState{PlanExecuted}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Plans(ctx, tt.f)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, r := range got {
				ids = append(ids, r.ID())
			}
			if !slices.Equal(ids, tt.want) {
				t.Errorf("Plans = %v, want %v", ids, tt.want)
			}
		})
	}
}

func TestSweep(t *testing.T) {
	ctx := context.Background()
	s, _, _ := openTemp(t)
	for _, r := range []PlanRecord{
		{Plan: plan("due", 1), ExpiresAt: t0.Add(time.Hour)},
		{Plan: plan("due-approved", 1), ExpiresAt: t0.Add(30 * time.Minute), State: PlanApproved},
		{Plan: plan("later", 1), ExpiresAt: t0.Add(2 * time.Hour)},
		{Plan: plan("never", 1)},
		{Plan: plan("final", 1), ExpiresAt: t0, State: PlanRejected},
	} {
		if _, _, err := s.CreatePlan(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	for i, until := range []time.Time{t0.Add(time.Minute), t0.Add(3 * time.Hour)} {
		key := WebhookKey{Fingerprint: "fp", StartsAt: t0, Status: []string{"firing", "resolved"}[i]}
		if _, err := s.MarkWebhook(ctx, key, t0, until); err != nil {
			t.Fatal(err)
		}
	}
	res, err := s.Sweep(ctx, t0.Add(time.Hour), retention)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.ExpiredPlans, []string{"due", "due-approved"}) || res.DedupeRemoved != 1 {
		t.Errorf("Sweep = %+v", res)
	}
	if r, _ := s.Plan(ctx, "due"); r.State != PlanExpired || r.StateReason == "" {
		t.Errorf("due plan = %s %q", r.State, r.StateReason)
	}
	if r, _ := s.Plan(ctx, "final"); r.State != PlanRejected {
		t.Errorf("final plan changed to %s", r.State)
	}
	res, err = s.Sweep(ctx, t0.Add(time.Hour), retention)
	if err != nil || len(res.ExpiredPlans) != 0 || res.DedupeRemoved != 0 {
		t.Errorf("second Sweep = %+v, %v; want nothing", res, err)
	}
}

func TestMaintenance(t *testing.T) {
	ctx := context.Background()
	s, _, _ := openTemp(t)
	if _, ok, err := s.Maintenance(ctx, "pve1"); ok || err != nil {
		t.Errorf("unflagged node: ok=%v err=%v", ok, err)
	}
	for _, m := range []Maintenance{{Node: "pve2", By: "a"}, {Node: "pve1", By: "b", Reason: "firmware"}, {Node: "pve2", By: "c"}} {
		if err := s.SetMaintenance(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetMaintenance(ctx, Maintenance{}); err == nil {
		t.Error("empty node accepted")
	}
	all, err := s.MaintenanceNodes(ctx)
	if err != nil || len(all) != 2 || all[0].Node != "pve1" || all[1].By != "c" || !all[0].Since.Equal(t0) {
		t.Errorf("MaintenanceNodes = %+v, %v", all, err)
	}
	m, ok, err := s.ClearMaintenance(ctx, "pve1")
	if err != nil || !ok || m.Reason != "firmware" {
		t.Errorf("ClearMaintenance = %+v %v %v", m, ok, err)
	}
	if _, ok, err := s.ClearMaintenance(ctx, "pve1"); ok || err != nil {
		t.Errorf("second clear: ok=%v err=%v", ok, err)
	}
}

func TestMarkWebhook(t *testing.T) {
	ctx := context.Background()
	s, _, _ := openTemp(t)
	firing := WebhookKey{Fingerprint: "abc", StartsAt: t0, Status: "firing"}
	steps := []struct {
		name      string
		key       WebhookKey
		now       time.Time
		wantFirst bool
	}{
		{"new", firing, t0, true},
		{"HA peer duplicate", firing, t0.Add(time.Second), false},
		{"same alert resolved", WebhookKey{Fingerprint: "abc", StartsAt: t0, Status: "resolved"}, t0, true},
		{"same fingerprint, new firing", WebhookKey{Fingerprint: "abc", StartsAt: t0.Add(time.Hour), Status: "firing"}, t0, true},
		{"start time in another zone is the same instant", WebhookKey{Fingerprint: "abc", StartsAt: t0.In(time.FixedZone("x", 3600)), Status: "firing"}, t0, false},
		{"after expiry it is new again", firing, t0.Add(2 * time.Hour), true},
	}
	for _, st := range steps {
		first, err := s.MarkWebhook(ctx, st.key, st.now, st.now.Add(time.Hour))
		if err != nil || first != st.wantFirst {
			t.Errorf("%s: first=%v err=%v, want %v", st.name, first, err, st.wantFirst)
		}
	}
	if _, err := s.MarkWebhook(ctx, WebhookKey{}, t0, t0); err == nil {
		t.Error("empty fingerprint accepted")
	}
}

func TestCanceledContext(t *testing.T) {
	s, _, _ := openTemp(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := s.CreatePlan(ctx, PlanRecord{Plan: plan("p", 1)}); !errors.Is(err, context.Canceled) {
		t.Errorf("CreatePlan err = %v", err)
	}
	if _, err := s.Plans(ctx, PlanFilter{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Plans err = %v", err)
	}
}
