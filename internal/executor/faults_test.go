package executor

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/proxbalance/proxbalance/internal/pve"
	"github.com/proxbalance/proxbalance/internal/store"
)

func TestTransientPrecheckFailureIsRetried(t *testing.T) {
	h := newHarness(t, withWrap(func(p PVE) PVE { return &faultyPVE{PVE: p, statusFailures: 2} }))
	res := h.execute(request("qemu/107", "pve1", "pve2"))
	if res.Outcome != OutcomeSucceeded {
		t.Fatalf("Execute = %s/%s (%v)", res.Outcome, res.Reason, res.Err)
	}
	if res.Records[0].Tries != 3 {
		t.Errorf("precheck tries = %d, want 3", res.Records[0].Tries)
	}
}

func TestPersistentPrecheckFailureGivesUp(t *testing.T) {
	h := newHarness(t, withWrap(func(p PVE) PVE { return &faultyPVE{PVE: p, statusFailures: 100} }))
	res := h.exec.Execute(context.Background(), request("qemu/107", "pve1", "pve2"))
	if res.Outcome != OutcomeRefused || res.Reason != ReasonAPIError || res.Records[0].Tries != 3 {
		t.Errorf("Execute = %s/%s after %d tries (%v)", res.Outcome, res.Reason, res.Records[0].Tries, res.Err)
	}
	if h.api.migrates.Load() != 0 {
		t.Error("migrated without a precheck")
	}
}

func TestMigrateAnswerProblems(t *testing.T) {
	tests := []struct {
		name    string
		migrate func(real func() (string, error)) (string, error)
		outcome Outcome
		reason  Reason
		state   store.MoveState
		node    string
	}{
		{
			name: "answer lost after the task started: the task is adopted",
			migrate: func(real func() (string, error)) (string, error) {
				if _, err := real(); err != nil {
					return "", err
				}
				return "", errConnReset
			},
			outcome: OutcomeSucceeded, state: store.MoveSucceeded, node: "pve2",
		},
		{
			name:    "no answer and no task: not started",
			migrate: func(func() (string, error)) (string, error) { return "", errConnReset },
			outcome: OutcomeFailed, reason: ReasonMigrateRefused, state: store.MoveNotStarted, node: "pve1",
		},
		{
			name: "PVE refuses the request",
			migrate: func(func() (string, error)) (string, error) {
				return "", &pve.APIError{Method: "POST", Path: "/nodes/pve1/qemu/107/migrate", StatusCode: 500,
					Message: "VM is locked (backup)"}
			},
			outcome: OutcomeFailed, reason: ReasonMigrateRefused, state: store.MoveNotStarted, node: "pve1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, withWrap(func(p PVE) PVE { return &faultyPVE{PVE: p, migrate: tt.migrate} }))
			res := h.execute(request("qemu/107", "pve1", "pve2"))
			if res.Outcome != tt.outcome || res.Reason != tt.reason {
				t.Fatalf("Execute = %s/%s (%v), want %s/%s", res.Outcome, res.Reason, res.Err, tt.outcome, tt.reason)
			}
			en, err := h.store.Move(context.Background(), res.JournalID)
			if err != nil || en.State != tt.state {
				t.Errorf("journal entry = %+v, %v", en, err)
			}
			if tt.reason != ReasonNone && en.Error == "" {
				t.Error("journal entry has no error text")
			}
			if got := h.guestNode(107); got != tt.node {
				t.Errorf("guest on %s, want %s", got, tt.node)
			}
		})
	}
}

func TestConcurrentExecutesRespectMaxConcurrent(t *testing.T) {
	h := newHarness(t, withConfig(func(c *Config) { c.MaxConcurrent = 1 }))
	reqs := []Request{request("qemu/107", "pve1", "pve2"), request("qemu/105", "pve1", "pve3", planMove("plan-2", 0))}
	results := make([]Result, len(reqs))
	drive(h, func() bool {
		var wg sync.WaitGroup
		for i, r := range reqs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i] = h.exec.Execute(context.Background(), r)
			}()
		}
		wg.Wait()
		return true
	})
	var ok, refused int
	for _, r := range results {
		switch {
		case r.Outcome == OutcomeSucceeded:
			ok++
		case r.Outcome == OutcomeRefused && r.Reason == ReasonMaxConcurrent:
			refused++
		}
	}
	// Either both ran one after the other (the first ended before the second's precheck), or one was held back;
	// never two at once.
	if ok+refused != 2 || ok == 0 {
		t.Errorf("results = %+v", results)
	}
	if n := h.migrationTasks(); n != ok {
		t.Errorf("%d migrations in the simulator, %d succeeded", n, ok)
	}
}

func TestTaskLog(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	res := h.execute(request("qemu/107", "pve1", "pve2"))
	lines, err := h.exec.TaskLog(ctx, res.JournalID)
	if err != nil || len(lines) == 0 || lines[len(lines)-1].Text != "TASK OK" {
		t.Fatalf("TaskLog = %d lines, %v", len(lines), err)
	}
	if !strings.Contains(lines[0].Text, "starting migration of VM 107") {
		t.Errorf("first line = %q", lines[0].Text)
	}
	refused := h.exec.Execute(ctx, request("qemu/110", "pve1", "pve2"))
	if refused.JournalID != 0 {
		t.Fatal("refused move was journaled")
	}
	en, err := h.store.BeginMove(ctx, store.JournalEntry{Guest: "qemu/300", Source: "pve3", Target: "pve1"})
	if err != nil {
		t.Fatal(err)
	}
	if lines, err := h.exec.TaskLog(ctx, en.ID); err != nil || lines != nil {
		t.Errorf("TaskLog of an intent = %v, %v; want nothing", lines, err)
	}
	if _, err := h.exec.TaskLog(ctx, 9999); err == nil {
		t.Error("TaskLog of a missing entry succeeded")
	}
}

func TestNewValidates(t *testing.T) {
	h := newHarness(t)
	for _, cfg := range []Config{{}, {PVE: h.api}, {Store: h.store}, {PVE: h.api, Store: h.store, MaxConcurrent: -1}} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}
