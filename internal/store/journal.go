package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
)

// MoveState is where a journaled migration is. The write-ahead order is intent (written before the migrate
// call) → started (the UPID is known) → one of the final states.
type MoveState string

// Journal states.
const (
	MoveIntent  MoveState = "intent"
	MoveStarted MoveState = "started"
	// Final states.
	MoveSucceeded MoveState = "succeeded"
	MoveFailed    MoveState = "failed"
	// MoveUnknown: the task could not be found or read after a restart; the outcome is not known.
	MoveUnknown MoveState = "unknown"
	// MoveNotStarted: the intent was written but the migration never started (the balancer stopped between
	// the journal write and the migrate call, or the call was refused). It is never re-issued automatically.
	MoveNotStarted MoveState = "not-started"
	// MoveDryRun: a dry run recorded what it would have done; nothing was requested.
	MoveDryRun MoveState = "dry-run"
)

// MoveStates lists every state, for metrics that must show zero counts.
var MoveStates = []MoveState{MoveIntent, MoveStarted, MoveSucceeded, MoveFailed, MoveUnknown, MoveNotStarted, MoveDryRun}

// Final reports whether the entry can no longer change.
func (s MoveState) Final() bool { return s != MoveIntent && s != MoveStarted }

// JournalEntry is one migration attempt.
type JournalEntry struct {
	// ID is assigned by BeginMove, increasing.
	ID        uint64 `json:"id"`
	PlanID    string `json:"plan_id,omitempty"`
	MoveIndex int    `json:"move_index"`
	// Guest is PVE's id ("qemu/105"); GuestName its name.
	Guest     string `json:"guest"`
	GuestName string `json:"guest_name,omitempty"`
	Source    string `json:"source"`
	Target    string `json:"target"`
	// Mode is how the guest travels: "online" (live), "offline", or "restart" (containers).
	Mode string `json:"mode,omitempty"`
	// WithLocalDisks is set when local disks were copied along.
	WithLocalDisks bool      `json:"with_local_disks,omitempty"`
	UPID           string    `json:"upid,omitempty"`
	State          MoveState `json:"state"`
	Trigger        string    `json:"trigger,omitempty"`
	Approver       string    `json:"approver,omitempty"`
	// TargetScore is the planner's score of the target after the move; PredictedGain its improvement, both in
	// points.
	TargetScore   float64 `json:"target_score"`
	PredictedGain float64 `json:"predicted_gain"`
	// IntentAt is when the entry was written; StartedAt when the task started; EndedAt when it ended.
	IntentAt  time.Time     `json:"intent_at"`
	StartedAt time.Time     `json:"started_at,omitzero"`
	EndedAt   time.Time     `json:"ended_at,omitzero"`
	Duration  time.Duration `json:"duration,omitempty"`
	// Reason is the executor's reason code for a failed or not-started move; Error the details (the task's
	// exit status and the log's last ERROR line).
	Reason string `json:"reason,omitempty"`
	Error  string `json:"error,omitempty"`
}

// DryRun reports whether the entry only records what a dry run would have done.
func (e JournalEntry) DryRun() bool { return e.State == MoveDryRun }

// BusyError is BeginMove's refusal: the guest has an unfinished entry. It wraps ErrGuestBusy.
type BusyError struct {
	Guest  string
	Active JournalEntry
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("guest %s: journal entry %d (%s → %s) is still %s", e.Guest, e.Active.ID, e.Active.Source,
		e.Active.Target, e.Active.State)
}

func (e *BusyError) Unwrap() error { return ErrGuestBusy }

// BeginMove writes a new entry (state intent unless e.State is set) and returns it with its ID. It is the
// write-ahead step: the transaction is fsync'd before BeginMove returns. Checking for an unfinished entry of
// the same guest and writing happen in one transaction, so two callers cannot both begin moving one guest: the
// second gets a *BusyError.
func (s *Store) BeginMove(ctx context.Context, e JournalEntry) (JournalEntry, error) {
	if e.Guest == "" {
		return JournalEntry{}, fmt.Errorf("journaling move: empty guest")
	}
	if e.State == "" {
		e.State = MoveIntent
	}
	if e.IntentAt.IsZero() {
		e.IntentAt = s.now().UTC()
	}
	err := s.update(ctx, "journaling move of "+e.Guest, func(tx *bolt.Tx) error {
		jb, ab := tx.Bucket(bucketJournal), tx.Bucket(bucketJournalActive)
		if !e.State.Final() {
			if active, ok, err := activeOf(jb, ab, e.Guest); err != nil {
				return err
			} else if ok {
				return &BusyError{Guest: e.Guest, Active: active}
			}
		}
		id, err := jb.NextSequence()
		if err != nil {
			return err
		}
		e.ID = id
		if err := putJSON(jb, u64(id), &e); err != nil {
			return err
		}
		if !e.State.Final() {
			return ab.Put(u64(id), []byte(e.Guest))
		}
		return nil
	})
	if err != nil {
		return JournalEntry{}, err
	}
	return e, nil
}

func activeOf(jb, ab *bolt.Bucket, guest string) (JournalEntry, bool, error) {
	c := ab.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if string(v) != guest {
			continue
		}
		var e JournalEntry
		if err := getJSON(jb, k, &e); err != nil {
			return JournalEntry{}, false, fmt.Errorf("active journal entry %d: %w", binary.BigEndian.Uint64(k), err)
		}
		return e, true, nil
	}
	return JournalEntry{}, false, nil
}

// UpdateMove changes entry id with fn in one transaction and returns the result. A final entry cannot change
// (ErrFinal); fn cannot change ID or Guest. When the entry reaches a final state without an EndedAt, EndedAt is
// set to now, and Duration is derived from StartedAt and EndedAt.
func (s *Store) UpdateMove(ctx context.Context, id uint64, fn func(*JournalEntry) error) (JournalEntry, error) {
	var e JournalEntry
	err := s.update(ctx, "updating journal entry "+strconv.FormatUint(id, 10), func(tx *bolt.Tx) error {
		jb, ab := tx.Bucket(bucketJournal), tx.Bucket(bucketJournalActive)
		if err := getJSON(jb, u64(id), &e); err != nil {
			return err
		}
		if e.State.Final() {
			return fmt.Errorf("%w: state %s", ErrFinal, e.State)
		}
		before := e
		if err := fn(&e); err != nil {
			return err
		}
		if e.ID != before.ID || e.Guest != before.Guest {
			return fmt.Errorf("journal entry %d: ID and guest cannot change", id)
		}
		if e.State.Final() {
			if e.EndedAt.IsZero() {
				e.EndedAt = s.now().UTC()
			}
			if !e.StartedAt.IsZero() && e.Duration == 0 {
				e.Duration = max(e.EndedAt.Sub(e.StartedAt), 0)
			}
			if err := ab.Delete(u64(id)); err != nil {
				return err
			}
		}
		return putJSON(jb, u64(id), &e)
	})
	if err != nil {
		return JournalEntry{}, err
	}
	return e, nil
}

// Move returns journal entry id.
func (s *Store) Move(ctx context.Context, id uint64) (JournalEntry, error) {
	var e JournalEntry
	err := s.view(ctx, "reading journal entry "+strconv.FormatUint(id, 10), func(tx *bolt.Tx) error {
		return getJSON(tx.Bucket(bucketJournal), u64(id), &e)
	})
	return e, err
}

// ActiveMoves returns the entries that have not ended (intent or started), oldest first.
func (s *Store) ActiveMoves(ctx context.Context) ([]JournalEntry, error) {
	var out []JournalEntry
	err := s.view(ctx, "listing active journal entries", func(tx *bolt.Tx) error {
		jb, ab := tx.Bucket(bucketJournal), tx.Bucket(bucketJournalActive)
		return ab.ForEach(func(k, _ []byte) error {
			var e JournalEntry
			if err := getJSON(jb, k, &e); err != nil {
				return fmt.Errorf("active journal entry %d: %w", binary.BigEndian.Uint64(k), err)
			}
			out = append(out, e)
			return nil
		})
	})
	return out, err
}

// JournalQuery selects journal entries; zero fields select everything.
type JournalQuery struct {
	// From and To bound IntentAt: From ≤ IntentAt < To. Zero means unbounded.
	From, To time.Time
	Guest    string
	// Node matches entries whose source or target is the node.
	Node   string
	PlanID string
	States []MoveState
	// Active selects only entries that have not ended.
	Active bool
	// IncludeDryRun adds dry-run records, which are left out by default.
	IncludeDryRun bool
	// Limit caps the number returned (newest first); 0 means no cap.
	Limit int
}

func (q *JournalQuery) match(e *JournalEntry) bool {
	switch {
	case !q.From.IsZero() && e.IntentAt.Before(q.From),
		!q.To.IsZero() && !e.IntentAt.Before(q.To),
		q.Guest != "" && e.Guest != q.Guest,
		q.Node != "" && e.Source != q.Node && e.Target != q.Node,
		q.PlanID != "" && e.PlanID != q.PlanID,
		len(q.States) > 0 && !slices.Contains(q.States, e.State),
		q.Active && e.State.Final(),
		!q.IncludeDryRun && e.DryRun() && !slices.Contains(q.States, MoveDryRun):
		return false
	}
	return true
}

// Journal returns matching entries, newest first.
func (s *Store) Journal(ctx context.Context, q JournalQuery) ([]JournalEntry, error) {
	var out []JournalEntry
	err := s.scanNewest(ctx, "querying journal", func(e *JournalEntry) bool {
		if q.match(e) {
			out = append(out, *e)
		}
		return q.Limit <= 0 || len(out) < q.Limit
	})
	return out, err
}

// scanNewest calls fn for each entry from the newest until fn returns false.
func (s *Store) scanNewest(ctx context.Context, what string, fn func(*JournalEntry) bool) error {
	return s.view(ctx, what, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketJournal)
		c := b.Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			var e JournalEntry
			if err := decode(b, k, v, &e); err != nil {
				return err
			}
			if !fn(&e) {
				return nil
			}
		}
		return nil
	})
}

// last returns the newest entry matching q.
func (s *Store) last(ctx context.Context, q JournalQuery) (JournalEntry, bool, error) {
	q.Limit = 1
	out, err := s.Journal(ctx, q)
	if err != nil || len(out) == 0 {
		return JournalEntry{}, false, err
	}
	return out[0], true, nil
}

// LastMove returns the guest's most recent successful migration: where it went, and when ("guest X left node N
// at T"). ok is false when the journal has none.
func (s *Store) LastMove(ctx context.Context, guest string) (JournalEntry, bool, error) {
	return s.last(ctx, JournalQuery{Guest: guest, States: []MoveState{MoveSucceeded}})
}

// LastAttempt returns the guest's most recent ended migration attempt whatever its outcome (succeeded, failed,
// unknown, not-started): the cooldown gate counts from its EndedAt. Dry-run records are not attempts.
func (s *Store) LastAttempt(ctx context.Context, guest string) (JournalEntry, bool, error) {
	return s.last(ctx, JournalQuery{Guest: guest,
		States: []MoveState{MoveSucceeded, MoveFailed, MoveUnknown, MoveNotStarted}})
}

// LeftNode returns when the guest last left node by a successful migration, for the rollback window ("never
// move a guest back to a node it left within the window"). ok is false when the journal has no such move.
func (s *Store) LeftNode(ctx context.Context, guest, node string) (at time.Time, ok bool, err error) {
	err = s.scanNewest(ctx, "reading departures of "+guest, func(e *JournalEntry) bool {
		if e.Guest == guest && e.Source == node && e.State == MoveSucceeded {
			at, ok = e.EndedAt, true
			return false
		}
		return true
	})
	return at, ok, err
}
