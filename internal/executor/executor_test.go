package executor

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/proxbalance/proxbalance/internal/pvesim"
	"github.com/proxbalance/proxbalance/internal/store"
)

var allStages = []string{"precheck", "idempotency", "execute", "follow", "verify"}

func TestExecuteMovesGuest(t *testing.T) {
	tests := []struct {
		name      string
		req       Request
		vmid      int
		mode      string
		localDisk bool
	}{
		{name: "running VM migrates live", req: request("qemu/107", "pve1", "pve2"), vmid: 107, mode: "online"},
		{name: "running VM with local disks", req: request("qemu/103", "pve1", "pve2"), vmid: 103, mode: "online", localDisk: true},
		{name: "stopped VM migrates offline", req: request("qemu/302", "pve3", "pve1"), vmid: 302, mode: "offline"},
		{name: "running container by restart", req: request("lxc/207", "pve2", "pve3"), vmid: 207, mode: "restart"},
		{name: "HA-managed VM through the HA stack", req: request("qemu/106", "pve1", "pve3"), vmid: 106, mode: "online"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			res := h.execute(tt.req)
			if res.Err != nil || res.Outcome != OutcomeSucceeded || res.Reason != ReasonNone {
				t.Fatalf("Execute = %s/%s: %v\nrecords: %+v", res.Outcome, res.Reason, res.Err, res.Records)
			}
			if got := h.guestNode(tt.vmid); got != tt.req.Move.Target {
				t.Errorf("guest is on %s, want %s", got, tt.req.Move.Target)
			}
			if !slices.Equal(stageNames(res.Records), allStages) {
				t.Errorf("stages = %v", stageNames(res.Records))
			}
			for _, r := range res.Records {
				if !r.OK {
					t.Errorf("stage %s not OK: %+v", r.Stage, r)
				}
			}
			en, err := h.store.Move(context.Background(), res.JournalID)
			if err != nil {
				t.Fatal(err)
			}
			if en.State != store.MoveSucceeded || en.UPID != res.UPID || en.Mode != tt.mode ||
				en.WithLocalDisks != tt.localDisk || en.Approver != "alice" || en.Trigger != tt.req.Trigger ||
				en.TargetScore != 42 || en.PredictedGain != 7.5 || en.StartedAt.IsZero() || en.Duration <= 0 {
				t.Errorf("journal entry = %+v", en)
			}
			if !strings.Contains(en.UPID, "migrate:") || strings.Contains(en.UPID, ":hamigrate:") {
				t.Errorf("journal UPID %s is not the migration task", en.UPID)
			}
			if n := h.api.migrates.Load(); n != 1 {
				t.Errorf("%d migrate calls, want 1", n)
			}
			if got := testutil.ToFloat64(h.exec.metrics.inFlight); got != 0 {
				t.Errorf("in flight after the end = %v", got)
			}
		})
	}
}

func TestPrecheckRefusals(t *testing.T) {
	tests := []struct {
		name   string
		opts   []harnessOption
		setup  func(h *harness)
		req    Request
		reason Reason
		detail string
	}{
		{name: "guest moved away", req: request("qemu/107", "pve2", "pve3"), reason: ReasonGuestMoved, detail: "is on pve1"},
		{name: "guest not found", req: request("qemu/999", "pve1", "pve2"), reason: ReasonGuestNotFound},
		{name: "malformed guest", req: request("qemu/x", "pve1", "pve2"), reason: ReasonInvalidMove},
		{name: "same source and target", req: request("qemu/107", "pve1", "pve1"), reason: ReasonInvalidMove},
		{
			name: "guest locked",
			opts: []harnessOption{withScenario(func(s *pvesim.Scenario) {
				for i := range s.Guests {
					if s.Guests[i].VMID == 107 {
						s.Guests[i].Lock = "backup"
					}
				}
			})},
			req: request("qemu/107", "pve1", "pve2"), reason: ReasonGuestLocked, detail: "locked (backup)",
		},
		{
			name: "active migration task of the guest",
			setup: func(h *harness) {
				// An HA request does not lock the guest, but its task is running.
				if _, err := h.api.PVE.Migrate(context.Background(), guestRef(t, "qemu/106", "pve1"), "pve2", onlineOpts); err != nil {
					t.Fatal(err)
				}
			},
			req: request("qemu/106", "pve1", "pve3"), reason: ReasonActiveTask, detail: "hamigrate",
		},
		{
			name:  "target offline",
			setup: func(h *harness) { h.setFaults(pvesim.Faults{OfflineNodes: []string{"pve2"}}) },
			req:   request("qemu/107", "pve1", "pve2"), reason: ReasonTargetOffline, detail: "offline",
		},
		{
			name:  "source offline",
			setup: func(h *harness) { h.setFaults(pvesim.Faults{OfflineNodes: []string{"pve1"}}) },
			req:   request("qemu/107", "pve1", "pve2"), reason: ReasonSourceOffline,
		},
		{name: "unknown target node", req: request("qemu/107", "pve1", "pve9"), reason: ReasonTargetOffline, detail: "not a member"},
		{
			name:  "no quorum",
			setup: func(h *harness) { h.setFaults(pvesim.Faults{NoQuorum: true}) },
			req:   request("qemu/107", "pve1", "pve2"), reason: ReasonNoQuorum,
		},
		{
			name: "precondition denies the target (storage missing)",
			req:  request("qemu/107", "pve1", "pve4"), reason: ReasonPreconditionDenied, detail: "ceph-rbd",
		},
		{name: "local resources", req: request("qemu/110", "pve1", "pve2"), reason: ReasonLocalResources, detail: "hostpci0"},
		{
			name: "max concurrent migrations",
			opts: []harnessOption{withConfig(func(c *Config) { c.MaxConcurrent = 1 })},
			setup: func(h *harness) {
				if _, err := h.api.PVE.Migrate(context.Background(), guestRef(t, "qemu/105", "pve1"), "pve3", onlineOpts); err != nil {
					t.Fatal(err)
				}
			},
			req: request("qemu/107", "pve1", "pve2"), reason: ReasonMaxConcurrent, detail: "1 migrations are running",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.opts...)
			if tt.setup != nil {
				tt.setup(h)
			}
			tasksBefore := h.migrationTasks()
			res := h.exec.Execute(context.Background(), tt.req)
			if res.Outcome != OutcomeRefused || res.Reason != tt.reason {
				t.Fatalf("Execute = %s/%s (%v), want refused/%s", res.Outcome, res.Reason, res.Err, tt.reason)
			}
			var se *StageError
			if !errors.As(res.Err, &se) || se.Stage != "precheck" {
				t.Errorf("err = %v, want a precheck StageError", res.Err)
			}
			if !strings.Contains(res.Err.Error(), tt.detail) {
				t.Errorf("err = %q, want it to mention %q", res.Err, tt.detail)
			}
			if len(res.Records) != 1 || res.Records[0].OK || res.Records[0].Reason != tt.reason || res.Records[0].Detail == "" {
				t.Errorf("records = %+v", res.Records)
			}
			if n := h.api.migrates.Load(); n != 0 {
				t.Errorf("%d migrate calls, want none", n)
			}
			if n := h.migrationTasks(); n != tasksBefore {
				t.Errorf("simulator has %d migration tasks, had %d", n, tasksBefore)
			}
			if res.JournalID != 0 {
				t.Errorf("refused move journaled as %d", res.JournalID)
			}
		})
	}
}

func TestIdempotencyRefusals(t *testing.T) {
	ctx := context.Background()
	t.Run("unfinished journal entry of the guest", func(t *testing.T) {
		h := newHarness(t)
		if _, err := h.store.BeginMove(ctx, store.JournalEntry{Guest: "qemu/107", Source: "pve1", Target: "pve3"}); err != nil {
			t.Fatal(err)
		}
		res := h.exec.Execute(ctx, request("qemu/107", "pve1", "pve2"))
		if res.Outcome != OutcomeRefused || res.Reason != ReasonDuplicate || h.api.migrates.Load() != 0 {
			t.Errorf("Execute = %s/%s (%v), %d migrate calls", res.Outcome, res.Reason, res.Err, h.api.migrates.Load())
		}
		if !slices.Equal(stageNames(res.Records), []string{"precheck", "idempotency"}) {
			t.Errorf("stages = %v", stageNames(res.Records))
		}
	})
	t.Run("same plan move executed twice", func(t *testing.T) {
		h := newHarness(t)
		req := request("qemu/107", "pve1", "pve2")
		if res := h.execute(req); res.Outcome != OutcomeSucceeded {
			t.Fatalf("first run: %s %v", res.Outcome, res.Err)
		}
		// Pretend the guest came back, so only the journal stands between us and a second migration.
		back := request("qemu/107", "pve2", "pve1", planMove("other-plan", 0))
		if res := h.execute(back); res.Outcome != OutcomeSucceeded {
			t.Fatalf("move back: %s %v", res.Outcome, res.Err)
		}
		res := h.execute(req)
		if res.Outcome != OutcomeRefused || res.Reason != ReasonDuplicate || !strings.Contains(res.Err.Error(), "already attempted") {
			t.Errorf("second run = %s/%s (%v)", res.Outcome, res.Reason, res.Err)
		}
		if n := h.migrationTasks(); n != 2 {
			t.Errorf("simulator ran %d migrations, want 2", n)
		}
	})
}

func TestFailedMigrationIsRecordedAndNotRetried(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	h.setFaults(pvesim.Faults{FailMigrations: []pvesim.MigrationFault{{VMID: 107}}})
	req := request("qemu/107", "pve1", "pve2")
	res := h.execute(req)
	if res.Outcome != OutcomeFailed || res.Reason != ReasonTaskFailed {
		t.Fatalf("Execute = %s/%s (%v)", res.Outcome, res.Reason, res.Err)
	}
	if h.guestNode(107) != "pve1" {
		t.Errorf("guest left pve1 after a failed migration")
	}
	en, err := h.store.Move(ctx, res.JournalID)
	if err != nil {
		t.Fatal(err)
	}
	if en.State != store.MoveFailed || en.Reason != string(ReasonTaskFailed) ||
		!strings.Contains(en.Error, "migration aborted") || !strings.Contains(en.Error, "online migrate failure") {
		t.Errorf("journal entry = %+v, want the exit status and the log's ERROR line", en)
	}
	// The cooldown gate reads the last attempt.
	last, ok, err := h.store.LastAttempt(ctx, "qemu/107")
	if err != nil || !ok || last.ID != res.JournalID || last.EndedAt.IsZero() {
		t.Errorf("LastAttempt = %+v %v %v", last, ok, err)
	}
	// No retry storm: the same run again is refused, the simulator saw one migration.
	results := drive(h, func() []Result { return h.exec.Run(ctx, []Request{req, req}) })
	for _, r := range results {
		if r.Outcome != OutcomeRefused || r.Reason != ReasonDuplicate {
			t.Errorf("rerun = %s/%s (%v)", r.Outcome, r.Reason, r.Err)
		}
	}
	if n := h.migrationTasks(); n != 1 {
		t.Errorf("simulator ran %d migrations, want 1", n)
	}
}

func TestWarningsAreSuccess(t *testing.T) {
	h := newHarness(t, withWrap(func(p PVE) PVE { return &warningsPVE{PVE: p} }))
	res := h.execute(request("qemu/107", "pve1", "pve2"))
	if res.Outcome != OutcomeSucceeded {
		t.Fatalf("Execute = %s/%s (%v)", res.Outcome, res.Reason, res.Err)
	}
	follow := res.Records[3]
	if follow.Stage != "follow" || !strings.Contains(follow.Detail, "WARNINGS: 2") {
		t.Errorf("follow record = %+v", follow)
	}
}

func TestDryRunUsesTheSamePipelineAndPostsNothing(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, withConfig(func(c *Config) { c.DryRun = true }))
	req := request("qemu/103", "pve1", "pve2")
	dry := h.execute(req)
	if dry.Outcome != OutcomeDryRun || dry.Err != nil || dry.UPID != "" {
		t.Fatalf("dry run = %s/%s (%v)", dry.Outcome, dry.Reason, dry.Err)
	}
	if n := h.api.migrates.Load(); n != 0 {
		t.Errorf("dry run made %d migrate calls", n)
	}
	if n := h.migrationTasks(); n != 0 {
		t.Errorf("simulator has %d migration tasks after a dry run", n)
	}
	if h.guestNode(103) != "pve1" {
		t.Error("guest moved in a dry run")
	}
	en, err := h.store.Move(ctx, dry.JournalID)
	if err != nil || en.State != store.MoveDryRun || en.Mode != "online" || !en.WithLocalDisks {
		t.Errorf("dry-run journal record = %+v, %v", en, err)
	}
	if !strings.Contains(dry.Records[2].Detail, "with-local-disks=1") {
		t.Errorf("execute record = %+v, want the request that would have been sent", dry.Records[2])
	}
	// Dry-run records neither block nor count as attempts.
	if _, ok, _ := h.store.LastAttempt(ctx, "qemu/103"); ok {
		t.Error("dry run counted as an attempt")
	}

	h.exec.SetDryRun(false)
	real := h.execute(req)
	if real.Outcome != OutcomeSucceeded {
		t.Fatalf("real run = %s/%s (%v)", real.Outcome, real.Reason, real.Err)
	}
	if !slices.Equal(stageNames(dry.Records), stageNames(real.Records)) {
		t.Errorf("dry-run stages %v, real stages %v", stageNames(dry.Records), stageNames(real.Records))
	}
	for i := range 3 { // precheck, idempotency, execute decide the same way
		if dry.Records[i].OK != real.Records[i].OK {
			t.Errorf("stage %s: dry %+v, real %+v", dry.Records[i].Stage, dry.Records[i], real.Records[i])
		}
	}
	if dry.Records[0].Detail != real.Records[0].Detail {
		t.Errorf("precheck saw different things: dry %q, real %q", dry.Records[0].Detail, real.Records[0].Detail)
	}

	// A dry run refuses exactly what a real run refuses.
	h.exec.SetDryRun(true)
	refused := h.exec.Execute(ctx, request("qemu/110", "pve1", "pve2"))
	if refused.Outcome != OutcomeRefused || refused.Reason != ReasonLocalResources {
		t.Errorf("dry run of a blocked move = %s/%s", refused.Outcome, refused.Reason)
	}
}

func TestMetricsRegister(t *testing.T) {
	h := newHarness(t)
	reg := prometheus.NewPedanticRegistry()
	if err := h.exec.Register(reg); err != nil {
		t.Fatal(err)
	}
	h.exec.Execute(context.Background(), request("qemu/999", "pve1", "pve2"))
	h.execute(request("qemu/107", "pve1", "pve2"))
	// Moves by outcome are the server's proxbalance_moves_total: the executor must not count them a second time.
	n, err := testutil.GatherAndCount(reg)
	if err != nil || n != 2 {
		t.Errorf("gathered %d series (%v), want in_flight + 1 histogram", n, err)
	}
	n, err = testutil.GatherAndCount(reg, "proxbalance_migrations_in_flight", "proxbalance_migration_duration_seconds")
	if err != nil || n != 2 {
		t.Errorf("gathered %d series of in_flight and duration (%v), want 2", n, err)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) != 0 {
		t.Errorf("metric lint: %+v, %v", problems, err)
	}
	if err := h.exec.Register(reg); err == nil {
		t.Error("registering twice succeeded")
	}
}
