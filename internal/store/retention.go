package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// lastUpdate is when a plan record last changed (records written before UpdatedAt existed: when created).
func lastUpdate(rec PlanRecord) time.Time {
	if rec.UpdatedAt.IsZero() {
		return rec.CreatedAt
	}
	return rec.UpdatedAt
}

// removePlans deletes the plans with these IDs and their approvals, which mean nothing without the plan. It
// returns how many approvals it deleted.
func removePlans(tx *bolt.Tx, ids [][]byte) (approvals int, err error) {
	pb, ab := tx.Bucket(bucketPlans), tx.Bucket(bucketApprovals)
	for _, id := range ids {
		n, err := deleteApprovals(ab, id)
		if err != nil {
			return 0, fmt.Errorf("deleting approvals of plan %s: %w", id, err)
		}
		approvals += n
		if err := pb.Delete(id); err != nil {
			return 0, fmt.Errorf("deleting plan %s: %w", id, err)
		}
	}
	return approvals, nil
}

// deleteApprovals deletes every approval of plan id. Keys are collected first: deleting under a bbolt cursor
// makes it skip the next key.
func deleteApprovals(ab *bolt.Bucket, id []byte) (int, error) {
	prefix := append(append([]byte(nil), id...), 0)
	var keys [][]byte
	c := ab.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		keys = append(keys, append([]byte(nil), k...))
	}
	for _, k := range keys {
		if err := ab.Delete(k); err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}

// moveTimes is the part of a JournalEntry retention reads; decoding only it keeps the scan of a long journal
// cheap.
type moveTimes struct {
	State    MoveState `json:"state"`
	IntentAt time.Time `json:"intent_at"`
	EndedAt  time.Time `json:"ended_at"`
}

// removeFinalMoves deletes final journal entries that ended (or, without an end, were written) before cutoff,
// and returns how many. Unfinished entries stay whatever their age: reconciliation must still settle them. The
// journal's ID sequence is the bucket's, so deleting entries never lets an ID be reused.
func removeFinalMoves(tx *bolt.Tx, cutoff time.Time) (int, error) {
	jb, active := tx.Bucket(bucketJournal), tx.Bucket(bucketJournalActive)
	var stale [][]byte
	err := jb.ForEach(func(k, v []byte) error {
		var e moveTimes
		if err := decode(jb, k, v, &e); err != nil {
			return err
		}
		end := e.EndedAt
		if end.IsZero() {
			end = e.IntentAt
		}
		if e.State.Final() && end.Before(cutoff) {
			stale = append(stale, append([]byte(nil), k...))
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, k := range stale {
		id := binary.BigEndian.Uint64(k)
		if err := jb.Delete(k); err != nil {
			return 0, fmt.Errorf("deleting journal entry %d: %w", id, err)
		}
		// A final entry is never in the active index; deleting it there too keeps the index from naming an
		// entry that no longer exists should the two ever disagree.
		if err := active.Delete(k); err != nil {
			return 0, fmt.Errorf("deleting journal entry %d from the active index: %w", id, err)
		}
	}
	return len(stale), nil
}
