package executor

// Reason is why a move did not run or did not succeed. Reasons are metric label values: stable, lower-case,
// few.
type Reason string

// Reasons. The empty reason means the move succeeded (or, in a dry run, would have been requested).
const (
	ReasonNone Reason = ""

	// Precheck refusals: the move is not attempted and nothing is POSTed.
	ReasonNoQuorum           Reason = "no_quorum"
	ReasonSourceOffline      Reason = "source_offline"
	ReasonTargetOffline      Reason = "target_offline"
	ReasonGuestNotFound      Reason = "guest_not_found"
	ReasonGuestMoved         Reason = "guest_moved"
	ReasonGuestLocked        Reason = "guest_locked"
	ReasonActiveTask         Reason = "active_task"
	ReasonMaxConcurrent      Reason = "max_concurrent"
	ReasonPreconditionDenied Reason = "precondition_denied"
	ReasonLocalResources     Reason = "local_resources"
	ReasonInvalidMove        Reason = "invalid_move"

	// Idempotency: the journal already has an unfinished migration of the guest.
	ReasonDuplicate Reason = "duplicate"

	// Execution and follow-up failures.
	ReasonMigrateRefused Reason = "migrate_refused" // PVE answered the POST with an error
	ReasonTaskFailed     Reason = "task_failed"     // the task ended with an error exit status
	ReasonVerifyFailed   Reason = "verify_failed"   // the task succeeded but the guest is not on the target
	ReasonAPIError       Reason = "api_error"       // PVE could not be asked (after bounded retries)
	ReasonJournalError   Reason = "journal_error"   // the store could not be written: nothing is attempted
	ReasonCanceled       Reason = "canceled"        // the context ended (shutdown) before the outcome was known
	// ReasonInterrupted: the balancer stopped between journaling the intent and requesting the migration,
	// and no task was found after the restart. The move is closed as not started and never re-issued.
	ReasonInterrupted Reason = "interrupted"
	// ReasonLost: the task can no longer be found or read after a restart.
	ReasonLost Reason = "lost"
)

// Reasons lists every non-empty reason, for metrics that must show zero counts.
var Reasons = []Reason{
	ReasonNoQuorum, ReasonSourceOffline, ReasonTargetOffline, ReasonGuestNotFound, ReasonGuestMoved,
	ReasonGuestLocked, ReasonActiveTask, ReasonMaxConcurrent, ReasonPreconditionDenied, ReasonLocalResources,
	ReasonInvalidMove, ReasonDuplicate, ReasonMigrateRefused, ReasonTaskFailed, ReasonVerifyFailed,
	ReasonAPIError, ReasonJournalError, ReasonCanceled, ReasonInterrupted, ReasonLost,
}

// Outcome is how a move ended.
type Outcome string

// Outcomes.
const (
	// OutcomeSucceeded: the task ended OK (or with warnings) and the guest is on the target.
	OutcomeSucceeded Outcome = "succeeded"
	// OutcomeFailed: the migration was requested and did not succeed; the guest cools down.
	OutcomeFailed Outcome = "failed"
	// OutcomeRefused: a check held the move back before anything was requested.
	OutcomeRefused Outcome = "refused"
	// OutcomeDryRun: every check passed and the move was recorded, not requested.
	OutcomeDryRun Outcome = "dry_run"
	// OutcomeUnknown: the migration was requested but its end could not be observed (shutdown); reconcile
	// finishes the record on the next start.
	OutcomeUnknown Outcome = "unknown"
)

// Outcomes lists every outcome.
var Outcomes = []Outcome{OutcomeSucceeded, OutcomeFailed, OutcomeRefused, OutcomeDryRun, OutcomeUnknown}
