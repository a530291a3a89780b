package store

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/proxbalance/proxbalance/internal/placement"
)

// PlanState is where a plan is in its life.
type PlanState string

// Plan states. Pending and Approved are open; the others are final.
const (
	PlanPending           PlanState = "pending"
	PlanApproved          PlanState = "approved"
	PlanRejected          PlanState = "rejected"
	PlanExpired           PlanState = "expired"
	PlanWithdrawn         PlanState = "withdrawn"
	PlanExecuted          PlanState = "executed"
	PlanPartiallyExecuted PlanState = "partially-executed"
)

// PlanStates lists every state, for metrics that must show zero counts.
var PlanStates = []PlanState{PlanPending, PlanApproved, PlanRejected, PlanExpired, PlanWithdrawn, PlanExecuted,
	PlanPartiallyExecuted}

// planTransitions are the allowed moves between states.
var planTransitions = map[PlanState][]PlanState{
	PlanPending:  {PlanApproved, PlanRejected, PlanExpired, PlanWithdrawn},
	PlanApproved: {PlanExecuted, PlanPartiallyExecuted, PlanExpired, PlanRejected},
}

// Final reports whether no further transition is possible.
func (s PlanState) Final() bool { return len(planTransitions[s]) == 0 }

// Valid reports whether s is a known state.
func (s PlanState) Valid() bool { return slices.Contains(PlanStates, s) }

// PlanRecord is a plan with its life-cycle state. Its ID is Plan.ID.
type PlanRecord struct {
	Plan  placement.Plan `json:"plan"`
	State PlanState      `json:"state"`
	// StateReason says why the plan reached its state ("alert resolved", "expired after 1h", ...).
	StateReason string `json:"state_reason,omitempty"`
	// Trigger is what caused the plan ("alert:NodeCPUHigh pve1", "api", "schedule").
	Trigger string `json:"trigger"`
	// AlertFingerprint is the Alertmanager fingerprint of the alert that created the plan, if any.
	AlertFingerprint string    `json:"alert_fingerprint,omitempty"`
	CreatedAt        time.Time `json:"created_at"`
	// ExpiresAt is when an open plan expires; zero never.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	UpdatedAt time.Time `json:"updated_at"`
}

// ID is the plan's ID.
func (r PlanRecord) ID() string { return r.Plan.ID }

// Approval records who approved which moves of a plan.
type Approval struct {
	PlanID string    `json:"plan_id"`
	By     string    `json:"by"`
	At     time.Time `json:"at"`
	// Moves are indexes into Plan.Moves, ascending; all moves when the whole plan was approved.
	Moves []int `json:"moves"`
	// Comment is the approver's note, if any.
	Comment string `json:"comment,omitempty"`
}

// TransitionError is a refused plan state change; it wraps ErrInvalidTransition.
type TransitionError struct {
	PlanID   string
	From, To PlanState
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("plan %s: cannot go from %s to %s", e.PlanID, e.From, e.To)
}

func (e *TransitionError) Unwrap() error { return ErrInvalidTransition }

// CreatePlan stores a new plan in state pending unless rec.State says otherwise. Plan IDs are deterministic,
// so a plan with the same ID may already exist: then nothing is written and the stored record is returned with
// created false.
func (s *Store) CreatePlan(ctx context.Context, rec PlanRecord) (stored PlanRecord, created bool, err error) {
	if rec.Plan.ID == "" {
		return PlanRecord{}, false, fmt.Errorf("creating plan: empty plan ID")
	}
	if rec.State == "" {
		rec.State = PlanPending
	}
	if !rec.State.Valid() {
		return PlanRecord{}, false, fmt.Errorf("creating plan %s: unknown state %q", rec.Plan.ID, rec.State)
	}
	now := s.now().UTC()
	if rec.CreatedAt.IsZero() {
		rec.CreatedAt = now
	}
	rec.UpdatedAt = now
	err = s.update(ctx, "creating plan "+rec.Plan.ID, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPlans)
		key := []byte(rec.Plan.ID)
		if b.Get(key) != nil {
			return getJSON(b, key, &stored)
		}
		created, stored = true, rec
		return putJSON(b, key, &rec)
	})
	if err != nil {
		return PlanRecord{}, false, err
	}
	return stored, created, nil
}

// Plan returns the plan with that ID.
func (s *Store) Plan(ctx context.Context, id string) (PlanRecord, error) {
	var rec PlanRecord
	err := s.view(ctx, "reading plan "+id, func(tx *bolt.Tx) error {
		return getJSON(tx.Bucket(bucketPlans), []byte(id), &rec)
	})
	return rec, err
}

// PlanFilter selects plans; zero fields select everything.
type PlanFilter struct {
	States           []PlanState
	AlertFingerprint string
	// Limit caps the number returned (newest first); 0 means no cap.
	Limit int
}

// Plans returns matching plans, newest first (by CreatedAt, then ID).
func (s *Store) Plans(ctx context.Context, f PlanFilter) ([]PlanRecord, error) {
	var out []PlanRecord
	err := s.view(ctx, "listing plans", func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPlans)
		return b.ForEach(func(k, v []byte) error {
			var rec PlanRecord
			if err := decode(b, k, v, &rec); err != nil {
				return err
			}
			if len(f.States) > 0 && !slices.Contains(f.States, rec.State) {
				return nil
			}
			if f.AlertFingerprint != "" && rec.AlertFingerprint != f.AlertFingerprint {
				return nil
			}
			out = append(out, rec)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b PlanRecord) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return bytes.Compare([]byte(a.Plan.ID), []byte(b.Plan.ID))
	})
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out, nil
}

// TransitionPlan moves a plan to state to, recording why. Only the transitions of the plan life cycle are
// allowed (pending → approved/rejected/expired/withdrawn; approved → executed/partially-executed/expired/
// rejected); others fail with a *TransitionError.
func (s *Store) TransitionPlan(ctx context.Context, id string, to PlanState, reason string) (PlanRecord, error) {
	var rec PlanRecord
	err := s.update(ctx, "changing plan "+id, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPlans)
		if err := getJSON(b, []byte(id), &rec); err != nil {
			return err
		}
		if err := checkTransition(id, rec.State, to); err != nil {
			return err
		}
		rec.State, rec.StateReason, rec.UpdatedAt = to, reason, s.now().UTC()
		return putJSON(b, []byte(id), &rec)
	})
	return rec, err
}

func checkTransition(id string, from, to PlanState) error {
	if !slices.Contains(planTransitions[from], to) {
		return &TransitionError{PlanID: id, From: from, To: to}
	}
	return nil
}

// Approve records an approval and moves the plan from pending to approved in one transaction. Move indexes
// must be valid for the plan; an empty list approves every move.
func (s *Store) Approve(ctx context.Context, a Approval) (PlanRecord, error) {
	var rec PlanRecord
	err := s.update(ctx, "approving plan "+a.PlanID, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPlans)
		if err := getJSON(b, []byte(a.PlanID), &rec); err != nil {
			return err
		}
		if err := checkTransition(a.PlanID, rec.State, PlanApproved); err != nil {
			return err
		}
		moves, err := approvedMoves(a.Moves, len(rec.Plan.Moves))
		if err != nil {
			return err
		}
		a.Moves = moves
		if a.At.IsZero() {
			a.At = s.now().UTC()
		}
		rec.State, rec.StateReason, rec.UpdatedAt = PlanApproved, "approved by "+a.By, s.now().UTC()
		if err := putJSON(b, []byte(a.PlanID), &rec); err != nil {
			return err
		}
		ab := tx.Bucket(bucketApprovals)
		seq, err := ab.NextSequence()
		if err != nil {
			return err
		}
		return putJSON(ab, approvalKey(a.PlanID, seq), &a)
	})
	return rec, err
}

func approvedMoves(moves []int, n int) ([]int, error) {
	if len(moves) == 0 {
		all := make([]int, n)
		for i := range all {
			all[i] = i
		}
		return all, nil
	}
	out := slices.Clone(moves)
	slices.Sort(out)
	out = slices.Compact(out)
	for _, i := range out {
		if i < 0 || i >= n {
			return nil, fmt.Errorf("move index %d out of range: the plan has %d moves", i, n)
		}
	}
	return out, nil
}

func approvalKey(planID string, seq uint64) []byte {
	return append(append([]byte(planID), 0), strconv.AppendUint(nil, seq+1e12, 10)...)
}

// Approvals returns a plan's approvals, oldest first.
func (s *Store) Approvals(ctx context.Context, planID string) ([]Approval, error) {
	var out []Approval
	prefix := append([]byte(planID), 0)
	err := s.view(ctx, "reading approvals of plan "+planID, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketApprovals)
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var a Approval
			if err := decode(b, k, v, &a); err != nil {
				return err
			}
			out = append(out, a)
		}
		return nil
	})
	return out, err
}

// SweepResult is what Sweep removed or closed.
type SweepResult struct {
	// ExpiredPlans are the IDs of open plans whose ExpiresAt passed, now in state expired.
	ExpiredPlans []string
	// DedupeRemoved counts webhook dedupe keys past their expiry.
	DedupeRemoved int
	// PlansRemoved counts final plans older than the retention, deleted with their ApprovalsRemoved approvals.
	PlansRemoved, ApprovalsRemoved int
	// JournalRemoved counts final journal entries older than the retention.
	JournalRemoved int
}

// Sweep expires open plans whose ExpiresAt is at or before now, drops expired webhook dedupe keys, and applies
// the retention: final plans last updated before now-retention are deleted with their approvals, and final
// journal entries that ended before it. A record exactly at the cutoff is kept. Open plans and unfinished
// journal entries are never deleted, whatever their age; retention ≤ 0 keeps every record. It is one
// transaction: a crash leaves either everything or nothing of a sweep done.
func (s *Store) Sweep(ctx context.Context, now time.Time, retention time.Duration) (SweepResult, error) {
	var res SweepResult
	err := s.update(ctx, "sweeping expired records", func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPlans)
		cutoff := now.Add(-retention)
		// One pass over the plans: open ones past their TTL expire (and so stay a full retention from now);
		// final ones last updated before the retention's cutoff go.
		var expired []PlanRecord
		var stale [][]byte
		err := b.ForEach(func(k, v []byte) error {
			var rec PlanRecord
			if err := decode(b, k, v, &rec); err != nil {
				return err
			}
			switch {
			case !rec.State.Final():
				if !rec.ExpiresAt.IsZero() && !rec.ExpiresAt.After(now) {
					expired = append(expired, rec)
				}
			case retention > 0 && lastUpdate(rec).Before(cutoff):
				stale = append(stale, append([]byte(nil), k...))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, rec := range expired {
			rec.StateReason = fmt.Sprintf("expired at %s while %s", rec.ExpiresAt.UTC().Format(time.RFC3339), rec.State)
			rec.State, rec.UpdatedAt = PlanExpired, s.now().UTC()
			if err := putJSON(b, []byte(rec.Plan.ID), &rec); err != nil {
				return err
			}
			res.ExpiredPlans = append(res.ExpiredPlans, rec.Plan.ID)
		}
		if res.DedupeRemoved, err = sweepDedupe(tx.Bucket(bucketDedupe), now); err != nil {
			return err
		}
		if retention <= 0 {
			return nil
		}
		res.PlansRemoved = len(stale)
		if res.ApprovalsRemoved, err = removePlans(tx, stale); err != nil {
			return err
		}
		res.JournalRemoved, err = removeFinalMoves(tx, cutoff)
		return err
	})
	slices.Sort(res.ExpiredPlans)
	return res, err
}
