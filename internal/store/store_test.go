package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/proxbalance/proxbalance/internal/placement"
	"github.com/proxbalance/proxbalance/internal/pvesim"
)

var t0 = time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)

func openTemp(t *testing.T) (*Store, *pvesim.ManualClock, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.db")
	clk := pvesim.NewManualClock(t0)
	s, err := Open(path, Options{Now: clk.Now, LockTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, clk, path
}

// plan builds a placement.Plan with n moves of guests qemu/100+i from pve1 to pve2.
func plan(id string, n int, mut ...func(*placement.Plan)) placement.Plan {
	p := placement.Plan{ID: id, Action: placement.ActionRebalance, Trigger: "api", At: t0}
	for i := range n {
		p.Moves = append(p.Moves, placement.Move{
			Guest: "qemu/" + string(rune('0'+i)) + "00", Source: "pve1", Target: "pve2", Improvement: 3.5,
			TargetAfter: placement.Score{Total: 40, Plugins: []placement.PluginScore{{Plugin: "cpu", Value: 0.5, Points: 40}}},
		})
	}
	for _, m := range mut {
		m(&p)
	}
	return p
}

func entry(guest string, mut ...func(*JournalEntry)) JournalEntry {
	e := JournalEntry{Guest: guest, Source: "pve1", Target: "pve2", PlanID: "p1", Trigger: "api", IntentAt: t0}
	for _, m := range mut {
		m(&e)
	}
	return e
}

func TestReopenKeepsEverything(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.CreatePlan(ctx, PlanRecord{Plan: plan("p1", 2), Trigger: "alert:NodeCPUHigh pve1",
		AlertFingerprint: "fp1", ExpiresAt: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Approve(ctx, Approval{PlanID: "p1", By: "alice", Moves: []int{1}}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetMaintenance(ctx, Maintenance{Node: "pve3", By: "bob", Reason: "RAM swap"}); err != nil {
		t.Fatal(err)
	}
	je, err := s.BeginMove(ctx, entry("qemu/100"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.MarkWebhook(ctx, WebhookKey{Fingerprint: "fp1", StartsAt: t0, Status: "firing"}, t0, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(path, Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	rec, err := s.Plan(ctx, "p1")
	if err != nil {
		t.Fatal(err)
	}
	if rec.State != PlanApproved || rec.AlertFingerprint != "fp1" || len(rec.Plan.Moves) != 2 ||
		rec.Plan.Moves[0].TargetAfter.Plugins[0].Plugin != "cpu" {
		t.Errorf("plan after reopen = %+v", rec)
	}
	ap, err := s.Approvals(ctx, "p1")
	if err != nil || len(ap) != 1 || ap[0].By != "alice" || len(ap[0].Moves) != 1 || ap[0].Moves[0] != 1 {
		t.Errorf("approvals after reopen = %+v, %v", ap, err)
	}
	if m, ok, err := s.Maintenance(ctx, "pve3"); err != nil || !ok || m.By != "bob" || m.Reason != "RAM swap" {
		t.Errorf("maintenance after reopen = %+v %v %v", m, ok, err)
	}
	active, err := s.ActiveMoves(ctx)
	if err != nil || len(active) != 1 || active[0].ID != je.ID || active[0].State != MoveIntent {
		t.Errorf("active after reopen = %+v, %v", active, err)
	}
	if first, err := s.MarkWebhook(ctx, WebhookKey{Fingerprint: "fp1", StartsAt: t0, Status: "firing"}, t0, t0.Add(time.Hour)); err != nil || first {
		t.Errorf("webhook after reopen: first = %v, %v; want a duplicate", first, err)
	}
	// IDs keep increasing across reopens.
	je2, err := s.BeginMove(ctx, entry("qemu/200"))
	if err != nil || je2.ID <= je.ID {
		t.Errorf("second entry ID %d after %d, %v", je2.ID, je.ID, err)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name  string
		setup func(t *testing.T) string
		want  error
		text  string
	}{
		{
			name: "garbage file",
			setup: func(t *testing.T) string {
				p := filepath.Join(dir, "garbage.db")
				if err := os.WriteFile(p, []byte(strings.Repeat("this is not a bbolt file\n", 1000)), 0o600); err != nil {
					t.Fatal(err)
				}
				return p
			},
			want: ErrCorrupt,
		},
		{
			name: "truncated store",
			setup: func(t *testing.T) string {
				p := filepath.Join(dir, "truncated.db")
				s, err := Open(p, Options{})
				if err != nil {
					t.Fatal(err)
				}
				_ = s.Close()
				data, _ := os.ReadFile(p)
				if err := os.WriteFile(p, data[:100], 0o600); err != nil {
					t.Fatal(err)
				}
				return p
			},
			want: ErrCorrupt,
		},
		{
			name: "directory",
			setup: func(t *testing.T) string {
				return dir
			},
			text: "is a directory",
		},
		{
			name: "missing parent directory",
			setup: func(t *testing.T) string {
				return filepath.Join(dir, "nope", "state.db")
			},
			text: "no such file or directory",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.setup(t)
			before, _ := os.ReadFile(path)
			s, err := Open(path, Options{LockTimeout: 100 * time.Millisecond})
			if err == nil {
				_ = s.Close()
				t.Fatal("Open succeeded, want an error")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tt.text) {
				t.Errorf("err = %q, want it to name %s and say %q", err, path, tt.text)
			}
			if after, _ := os.ReadFile(path); string(after) != string(before) {
				t.Error("Open changed the file it refused")
			}
		})
	}
}

func TestOpenLockedByAnotherOpener(t *testing.T) {
	_, _, path := openTemp(t)
	start := time.Now()
	s, err := Open(path, Options{LockTimeout: 200 * time.Millisecond})
	if err == nil {
		_ = s.Close()
		t.Fatal("second Open succeeded")
	}
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), path) ||
		!strings.Contains(err.Error(), "store locked by another process") {
		t.Errorf("err = %v, want ErrLocked naming the path", err)
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Errorf("second Open waited %s", waited)
	}
}

func TestOpenNewerSchema(t *testing.T) {
	s, _, path := openTemp(t)
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keySchema, u64(schemaVersion+1)) }); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	_, err := Open(path, Options{})
	if err == nil || !strings.Contains(err.Error(), "newer") || !strings.Contains(err.Error(), path) {
		t.Errorf("err = %v, want a newer-schema error naming the path", err)
	}
}

func TestUndecodableRecordIsCorrupt(t *testing.T) {
	ctx := context.Background()
	s, _, _ := openTemp(t)
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketPlans).Put([]byte("bad"), []byte("{not json")) }); err != nil {
		t.Fatal(err)
	}
	_, err := s.Plan(ctx, "bad")
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), `"bad"`) {
		t.Errorf("Plan err = %v, want ErrCorrupt naming the record", err)
	}
	if _, err := s.Plans(ctx, PlanFilter{}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Plans err = %v, want ErrCorrupt", err)
	}
}
