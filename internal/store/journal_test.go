package store

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestBeginMoveRefusesBusyGuest(t *testing.T) {
	ctx := context.Background()
	s, _, _ := openTemp(t)
	first, err := s.BeginMove(ctx, entry("qemu/100"))
	if err != nil || first.ID == 0 || first.State != MoveIntent {
		t.Fatalf("BeginMove = %+v, %v", first, err)
	}
	_, err = s.BeginMove(ctx, entry("qemu/100", func(e *JournalEntry) { e.Target = "pve3" }))
	var be *BusyError
	if !errors.As(err, &be) || !errors.Is(err, ErrGuestBusy) || be.Active.ID != first.ID {
		t.Fatalf("second BeginMove err = %v, want BusyError on entry %d", err, first.ID)
	}
	if _, err := s.BeginMove(ctx, entry("qemu/101")); err != nil {
		t.Errorf("another guest: %v", err)
	}
	// Dry-run records are final at once and never block.
	if _, err := s.BeginMove(ctx, entry("qemu/100", func(e *JournalEntry) { e.State = MoveDryRun })); err != nil {
		t.Errorf("dry-run record: %v", err)
	}
	if _, err := s.UpdateMove(ctx, first.ID, func(e *JournalEntry) error { e.State = MoveFailed; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.BeginMove(ctx, entry("qemu/100")); err != nil {
		t.Errorf("after the first ended: %v", err)
	}
	if _, err := s.BeginMove(ctx, JournalEntry{}); err == nil {
		t.Error("empty guest accepted")
	}
}

func TestBeginMoveConcurrentOnlyOneWins(t *testing.T) {
	ctx := context.Background()
	s, _, _ := openTemp(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.BeginMove(ctx, entry("qemu/100")); err == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			} else if !errors.Is(err, ErrGuestBusy) {
				t.Errorf("BeginMove: %v", err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Errorf("%d BeginMove calls won, want 1", wins)
	}
}

func TestUpdateMoveLifecycle(t *testing.T) {
	ctx := context.Background()
	s, clk, _ := openTemp(t)
	e, err := s.BeginMove(ctx, entry("qemu/100"))
	if err != nil {
		t.Fatal(err)
	}
	started := t0.Add(2 * time.Second)
	e, err = s.UpdateMove(ctx, e.ID, func(j *JournalEntry) error {
		j.State, j.UPID, j.StartedAt = MoveStarted, "UPID:pve1:00000001:00000001:00000001:qmigrate:100:root@pam:", started
		return nil
	})
	if err != nil || e.State != MoveStarted {
		t.Fatalf("start: %+v, %v", e, err)
	}
	if active, _ := s.ActiveMoves(ctx); len(active) != 1 {
		t.Errorf("active = %d entries, want 1", len(active))
	}
	clk.Advance(90 * time.Second)
	e, err = s.UpdateMove(ctx, e.ID, func(j *JournalEntry) error { j.State = MoveSucceeded; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if !e.EndedAt.Equal(t0.Add(90*time.Second)) || e.Duration != 88*time.Second {
		t.Errorf("ended %s after %s, want EndedAt from the clock and Duration from StartedAt", e.EndedAt, e.Duration)
	}
	if active, _ := s.ActiveMoves(ctx); len(active) != 0 {
		t.Errorf("active after end = %+v", active)
	}
	if _, err := s.UpdateMove(ctx, e.ID, func(j *JournalEntry) error { j.State = MoveFailed; return nil }); !errors.Is(err, ErrFinal) {
		t.Errorf("update of a final entry: err = %v, want ErrFinal", err)
	}
	got, err := s.Move(ctx, e.ID)
	if err != nil || got.State != MoveSucceeded {
		t.Errorf("Move = %+v, %v", got, err)
	}
	if _, err := s.Move(ctx, 999); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing entry: %v", err)
	}
	if _, err := s.UpdateMove(ctx, 999, func(*JournalEntry) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Errorf("update of missing entry: %v", err)
	}
}

func TestUpdateMoveGuards(t *testing.T) {
	ctx := context.Background()
	s, _, _ := openTemp(t)
	e, _ := s.BeginMove(ctx, entry("qemu/100"))
	boom := errors.New("boom")
	if _, err := s.UpdateMove(ctx, e.ID, func(j *JournalEntry) error { j.State = MoveFailed; return boom }); !errors.Is(err, boom) {
		t.Errorf("fn error not returned: %v", err)
	}
	if _, err := s.UpdateMove(ctx, e.ID, func(j *JournalEntry) error { j.Guest = "qemu/999"; return nil }); err == nil {
		t.Error("guest change accepted")
	}
	if got, _ := s.Move(ctx, e.ID); got.State != MoveIntent || got.Guest != "qemu/100" {
		t.Errorf("a refused update changed the entry: %+v", got)
	}
}

// journalFixture writes a history: guest, source, target, state, intent offset in minutes.
func journalFixture(t *testing.T, s *Store) []JournalEntry {
	t.Helper()
	ctx := context.Background()
	rows := []struct {
		guest, src, dst, plan string
		state                 MoveState
		min                   int
	}{
		{"qemu/100", "pve1", "pve2", "p1", MoveSucceeded, 0},
		{"qemu/101", "pve1", "pve3", "p1", MoveFailed, 10},
		{"qemu/100", "pve2", "pve3", "p2", MoveSucceeded, 20},
		{"lxc/200", "pve3", "pve1", "p2", MoveDryRun, 30},
		{"qemu/101", "pve1", "pve2", "p3", MoveNotStarted, 40},
		{"qemu/102", "pve2", "pve1", "p3", MoveStarted, 50},
	}
	var out []JournalEntry
	for _, r := range rows {
		at := t0.Add(time.Duration(r.min) * time.Minute)
		state := MoveIntent
		if r.state == MoveDryRun {
			state = MoveDryRun
		}
		e, err := s.BeginMove(ctx, JournalEntry{Guest: r.guest, Source: r.src, Target: r.dst, PlanID: r.plan, IntentAt: at, State: state})
		if err != nil {
			t.Fatal(err)
		}
		if !r.state.Final() || r.state == MoveDryRun {
			if r.state == MoveStarted {
				e, _ = s.UpdateMove(ctx, e.ID, func(j *JournalEntry) error { j.State = MoveStarted; j.StartedAt = at; return nil })
			}
			out = append(out, e)
			continue
		}
		e, err = s.UpdateMove(ctx, e.ID, func(j *JournalEntry) error {
			j.State, j.StartedAt, j.EndedAt = r.state, at, at.Add(5*time.Minute)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func TestJournalQueries(t *testing.T) {
	ctx := context.Background()
	s, _, _ := openTemp(t)
	all := journalFixture(t, s)
	id := func(i int) uint64 { return all[i].ID }
	tests := []struct {
		name string
		q    JournalQuery
		want []uint64
	}{
		{"everything but dry runs, newest first", JournalQuery{}, []uint64{id(5), id(4), id(2), id(1), id(0)}},
		{"with dry runs", JournalQuery{IncludeDryRun: true}, []uint64{id(5), id(4), id(3), id(2), id(1), id(0)}},
		{"dry runs by state", JournalQuery{States: []MoveState{MoveDryRun}}, []uint64{id(3)}},
		{"time range is half open", JournalQuery{From: t0.Add(10 * time.Minute), To: t0.Add(40 * time.Minute)}, []uint64{id(2), id(1)}},
		{"guest", JournalQuery{Guest: "qemu/101"}, []uint64{id(4), id(1)}},
		{"node as source or target", JournalQuery{Node: "pve3"}, []uint64{id(2), id(1)}},
		{"plan", JournalQuery{PlanID: "p3"}, []uint64{id(5), id(4)}},
		{"active", JournalQuery{Active: true}, []uint64{id(5)}},
		{"states", JournalQuery{States: []MoveState{MoveFailed, MoveNotStarted}}, []uint64{id(4), id(1)}},
		{"limit", JournalQuery{Limit: 2}, []uint64{id(5), id(4)}},
		{"nothing", JournalQuery{Guest: "qemu/999"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Journal(ctx, tt.q)
			if err != nil {
				t.Fatal(err)
			}
			var ids []uint64
			for _, e := range got {
				ids = append(ids, e.ID)
			}
			if !slices.Equal(ids, tt.want) {
				t.Errorf("Journal = %v, want %v", ids, tt.want)
			}
		})
	}
	active, err := s.ActiveMoves(ctx)
	if err != nil || len(active) != 1 || active[0].ID != id(5) {
		t.Errorf("ActiveMoves = %+v, %v", active, err)
	}
}

func TestLastMoveAttemptAndDeparture(t *testing.T) {
	ctx := context.Background()
	s, _, _ := openTemp(t)
	all := journalFixture(t, s)
	tests := []struct {
		name   string
		fn     func() (JournalEntry, bool, error)
		wantID uint64
		wantOK bool
	}{
		{"last move of a twice-moved guest", func() (JournalEntry, bool, error) { return s.LastMove(ctx, "qemu/100") }, all[2].ID, true},
		{"no successful move", func() (JournalEntry, bool, error) { return s.LastMove(ctx, "qemu/101") }, 0, false},
		{"a dry run is no move", func() (JournalEntry, bool, error) { return s.LastMove(ctx, "lxc/200") }, 0, false},
		{"last attempt includes not-started", func() (JournalEntry, bool, error) { return s.LastAttempt(ctx, "qemu/101") }, all[4].ID, true},
		{"a running move is no ended attempt", func() (JournalEntry, bool, error) { return s.LastAttempt(ctx, "qemu/102") }, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, ok, err := tt.fn()
			if err != nil || ok != tt.wantOK || e.ID != tt.wantID {
				t.Errorf("got entry %d ok=%v err=%v, want %d ok=%v", e.ID, ok, err, tt.wantID, tt.wantOK)
			}
		})
	}
	departures := []struct {
		guest, node string
		want        time.Time
		ok          bool
	}{
		{"qemu/100", "pve1", t0.Add(5 * time.Minute), true},
		{"qemu/100", "pve2", t0.Add(25 * time.Minute), true},
		{"qemu/100", "pve3", time.Time{}, false},
		{"qemu/101", "pve1", time.Time{}, false}, // failed and not-started moves left nothing
	}
	for _, d := range departures {
		at, ok, err := s.LeftNode(ctx, d.guest, d.node)
		if err != nil || ok != d.ok || !at.Equal(d.want) {
			t.Errorf("LeftNode(%s, %s) = %s %v %v, want %s %v", d.guest, d.node, at, ok, err, d.want, d.ok)
		}
	}
}
