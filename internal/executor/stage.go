package executor

import (
	"context"
	"fmt"
	"time"

	"github.com/proxbalance/proxbalance/internal/pve"
	"github.com/proxbalance/proxbalance/internal/store"
)

// Attempt is one move going through the pipeline. Stages read what earlier stages found and add to it.
type Attempt struct {
	Request Request
	// Guest is the guest as the precheck found it (Node is the live node).
	Guest pve.GuestRef
	// Options are the migrate options the precheck chose (online, with-local-disks, restart).
	Options pve.MigrateOptions
	// Precondition is PVE's answer to GET …/migrate (nil for containers on PVE before 9.0).
	Precondition *pve.MigratePrecondition
	// Journal is the write-ahead entry once the execute stage wrote it.
	Journal store.JournalEntry
	// UPID is the migration task once requested.
	UPID string
	// Task is the task's final state once followed.
	Task *pve.TaskState
	// Records say what each stage did, in order.
	Records []StageRecord
}

// StageRecord is what one stage did with an attempt.
type StageRecord struct {
	Stage  string        `json:"stage"`
	OK     bool          `json:"ok"`
	Reason Reason        `json:"reason,omitempty"`
	Detail string        `json:"detail,omitempty"`
	Took   time.Duration `json:"took"`
}

// Stage is one step of the pipeline. It returns retry true when its failure is transient (a read that may
// succeed on a second try); stages that write never ask for a retry.
type Stage interface {
	Name() string
	Exec(ctx context.Context, a *Attempt) (retry bool, err error)
}

// StageError is a stage's failure with the reason it gives; it wraps the cause.
type StageError struct {
	Stage  string
	Reason Reason
	Err    error
}

func (e *StageError) Error() string { return fmt.Sprintf("%s: %s: %v", e.Stage, e.Reason, e.Err) }

func (e *StageError) Unwrap() error { return e.Err }

// MultiStage runs stages in order and stops at the first failure.
type MultiStage []Stage

// Name is "pipeline".
func (ms MultiStage) Name() string { return "pipeline" }

// Exec runs each stage; it returns the failing stage's retry flag and error.
func (ms MultiStage) Exec(ctx context.Context, a *Attempt) (bool, error) {
	for _, s := range ms {
		if retry, err := s.Exec(ctx, a); err != nil {
			return retry, err
		}
	}
	return false, nil
}
