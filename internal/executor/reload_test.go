package executor

import (
	"context"
	"testing"
	"time"

	"github.com/proxbalance/proxbalance/internal/store"
)

// A move vetted as a dry run stays one even when the executor runs real moves by then (a reload from dry-run
// to manual between the approval and the move's turn).
func TestRequestDryRunWinsOverRealMode(t *testing.T) {
	h := newHarness(t)
	h.exec.SetDryRun(false)
	tasksBefore := h.migrationTasks()
	// The clock stands still: a dry run returns at once, a real migration would wait for its task until ctx ends.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res := h.exec.Execute(ctx, request("qemu/107", "pve1", "pve2", func(r *Request) { r.DryRun = true }))
	if res.Outcome != OutcomeDryRun {
		t.Fatalf("Execute = %s/%s (%v), want dry_run", res.Outcome, res.Reason, res.Err)
	}
	if n := h.api.migrates.Load(); n != 0 {
		t.Errorf("%d migrate calls, want none", n)
	}
	if n := h.migrationTasks(); n != tasksBefore {
		t.Errorf("simulator has %d migration tasks, had %d", n, tasksBefore)
	}
	if node := h.guestNode(107); node != "pve1" {
		t.Errorf("guest moved to %s in a dry run", node)
	}
	en, err := h.store.Move(context.Background(), res.JournalID)
	if err != nil || en.State != store.MoveDryRun {
		t.Errorf("journal entry = %+v, %v; want a dry-run record", en, err)
	}
}

// SetMaxConcurrent (a config reload) applies to the next precheck: raising the cap lets a second migration start
// beside a running one, lowering it holds one back again.
func TestSetMaxConcurrent(t *testing.T) {
	tests := []struct {
		name      string
		start, to int
		want      Outcome
	}{
		{name: "raised from 1 to 2", start: 1, to: 2, want: OutcomeSucceeded},
		{name: "lowered from 2 to 1", start: 2, to: 1, want: OutcomeRefused},
		{name: "below 1 means 1", start: 2, to: 0, want: OutcomeRefused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, withConfig(func(c *Config) { c.MaxConcurrent = tt.start }))
			if _, err := h.api.PVE.Migrate(context.Background(), guestRef(t, "qemu/105", "pve1"), "pve3", onlineOpts); err != nil {
				t.Fatal(err)
			}
			h.exec.SetMaxConcurrent(tt.to)
			if got := h.exec.MaxConcurrent(); got != max(tt.to, 1) {
				t.Errorf("MaxConcurrent() = %d after SetMaxConcurrent(%d)", got, tt.to)
			}
			req := request("qemu/107", "pve1", "pve2")
			var res Result
			if tt.want == OutcomeSucceeded {
				res = h.execute(req) // the clock runs so the migration ends
			} else {
				res = h.exec.Execute(context.Background(), req) // the clock stands: qemu/105 keeps running
			}
			if res.Outcome != tt.want {
				t.Fatalf("Execute = %s/%s (%v), want %s", res.Outcome, res.Reason, res.Err, tt.want)
			}
			if tt.want == OutcomeRefused && res.Reason != ReasonMaxConcurrent {
				t.Errorf("refused for %s, want %s", res.Reason, ReasonMaxConcurrent)
			}
		})
	}
}
