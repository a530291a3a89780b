package executor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/proxbalance/proxbalance/internal/pve"
	"github.com/proxbalance/proxbalance/internal/store"
)

// Attempt is one move going through the pipeline. Stages read what earlier stages found and add to it.
type Attempt struct {
	Request Request
	// DryRun is fixed when the attempt begins: the execute stage records instead of requesting.
	DryRun bool
	// Guest is the guest as the precheck found it (Node is the live node, the planned source).
	Guest pve.GuestRef
	// Running is the guest's live status.
	Running bool
	// Options are the migrate options the precheck chose (online, with-local-disks, restart).
	Options pve.MigrateOptions
	// Precondition is PVE's answer to GET …/migrate (nil when this PVE has none, e.g. containers before 9.0).
	Precondition *pve.MigratePrecondition
	// Journal is the write-ahead entry once the execute stage wrote it, as last written.
	Journal store.JournalEntry
	// UPID is the migration task once requested (for an HA-managed guest, the real migration once the HA
	// stack started it).
	UPID string
	// Task is the task's final state once followed.
	Task *pve.TaskState
	// Records say what each stage did, in order.
	Records []StageRecord

	detail string
	tries  int
	// tracked is set while this process claims the journal entry (see Executor.track).
	tracked bool
}

// note sets the detail of the current stage's record.
func (a *Attempt) note(format string, args ...any) { a.detail = fmt.Sprintf(format, args...) }

// StageRecord is what one stage did with an attempt.
type StageRecord struct {
	Stage  string        `json:"stage"`
	OK     bool          `json:"ok"`
	Reason Reason        `json:"reason,omitempty"`
	Detail string        `json:"detail,omitempty"`
	Took   time.Duration `json:"took"`
	// Tries counts attempts of a retried stage (1 without retries).
	Tries int `json:"tries"`
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

// ReasonOf returns the reason of a *StageError in err's chain, or ReasonAPIError for other errors and
// ReasonNone for nil.
func ReasonOf(err error) Reason {
	var se *StageError
	switch {
	case err == nil:
		return ReasonNone
	case errors.As(err, &se):
		return se.Reason
	default:
		return ReasonAPIError
	}
}

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

// recordStage appends a StageRecord for each run of the stage it wraps.
type recordStage struct{ Stage }

func recorded(s Stage) Stage { return recordStage{s} }

func (r recordStage) Exec(ctx context.Context, a *Attempt) (bool, error) {
	begin := time.Now()
	a.detail, a.tries = "", 1
	retry, err := r.Stage.Exec(ctx, a)
	rec := StageRecord{Stage: r.Name(), OK: err == nil, Detail: a.detail, Took: time.Since(begin), Tries: a.tries}
	if err != nil {
		rec.Reason = ReasonOf(err)
		if rec.Detail == "" {
			rec.Detail = stageCause(err)
		}
	}
	a.Records = append(a.Records, rec)
	return retry, err
}

// stageCause is the error without the stage and reason prefix that the record already has.
func stageCause(err error) string {
	var se *StageError
	if errors.As(err, &se) && se.Err != nil {
		return se.Err.Error()
	}
	return err.Error()
}

// retryStage runs a read-only stage again after a transient failure, with doubling waits bounded by ctx.
type retryStage struct {
	Stage
	attempts int
	backoff  time.Duration
}

func retrying(s Stage, attempts int, backoff time.Duration) *retryStage {
	return &retryStage{Stage: s, attempts: attempts, backoff: backoff}
}

func (r *retryStage) Exec(ctx context.Context, a *Attempt) (bool, error) {
	wait := r.backoff
	for try := 1; ; try++ {
		a.tries = try
		retry, err := r.Stage.Exec(ctx, a)
		if err == nil || !retry || try >= r.attempts {
			return retry, err
		}
		if !sleepCtx(ctx, wait) {
			return false, &StageError{Stage: r.Name(), Reason: ReasonCanceled, Err: errors.Join(ctx.Err(), err)}
		}
		wait *= 2
	}
}
