package executor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-kit/log"

	"github.com/proxbalance/proxbalance/internal/placement"
	"github.com/proxbalance/proxbalance/internal/pve"
	"github.com/proxbalance/proxbalance/internal/store"
)

// PVE is the part of the PVE API the executor uses; *pve.Client implements it.
type PVE interface {
	ClusterStatus(ctx context.Context) (*pve.ClusterStatus, error)
	ClusterResources(ctx context.Context) (*pve.Resources, error)
	Tasks(ctx context.Context) ([]pve.Task, error)
	MigratePrecondition(ctx context.Context, g pve.GuestRef, target string) (*pve.MigratePrecondition, error)
	Migrate(ctx context.Context, g pve.GuestRef, target string, o pve.MigrateOptions) (string, error)
	TaskStatus(ctx context.Context, upid string) (*pve.TaskState, error)
	TaskLog(ctx context.Context, upid string, start, limit int) ([]pve.TaskLogLine, error)
	WaitTask(ctx context.Context, upid string, poll time.Duration) (*pve.TaskState, error)
}

var _ PVE = (*pve.Client)(nil)

// Migrator requests a migration and returns its task's UPID. The execute stage calls it; a dry run swaps in
// one that records instead.
type Migrator interface {
	Migrate(ctx context.Context, g pve.GuestRef, target string, o pve.MigrateOptions) (upid string, err error)
}

// Config is what an Executor needs.
type Config struct {
	PVE   PVE
	Store *store.Store
	// DryRun records every move that passes the checks instead of requesting it.
	DryRun bool
	// MaxConcurrent caps migrations running in the cluster (counted from /cluster/tasks, whoever started
	// them); 0 means 1.
	MaxConcurrent int
	// PollInterval is how often a running task is polled; 0 means 2s.
	PollInterval time.Duration
	// Now is the clock (journal stamps, elapsed times); nil means time.Now.
	Now    func() time.Time
	Logger log.Logger
}

// Request is one approved move to run.
type Request struct {
	PlanID    string
	MoveIndex int
	Move      placement.Move
	Trigger   string
	Approver  string
}

// Result is how one move went.
type Result struct {
	Request Request
	Outcome Outcome
	Reason  Reason
	// Err is the failure (a *StageError) or nil.
	Err error
	// JournalID is the journal entry (0 when the move was refused before one was written).
	JournalID uint64
	UPID      string
	Records   []StageRecord
	Start     time.Time
	End       time.Time
}

// Executor runs moves. Its methods are safe for concurrent use.
type Executor struct {
	cfg     Config
	metrics *metrics
}

var errNotImplemented = errors.New("executor: not implemented yet")

// New checks cfg and builds an executor.
func New(cfg Config) (*Executor, error) {
	if cfg.PVE == nil || cfg.Store == nil {
		return nil, fmt.Errorf("executor: PVE client and store are required")
	}
	return &Executor{cfg: cfg, metrics: newMetrics()}, errNotImplemented
}

// Execute runs one move through the pipeline and, when it was requested, follows it to its end. It blocks
// until the task ends or ctx is done (then the outcome is unknown and the journal entry stays open for
// Reconcile).
func (e *Executor) Execute(ctx context.Context, req Request) Result {
	return Result{Request: req, Outcome: OutcomeFailed, Err: errNotImplemented}
}

// Run executes moves one after the other. A failed move is not retried; the next move still runs. It stops
// when ctx is done.
func (e *Executor) Run(ctx context.Context, reqs []Request) []Result {
	return nil
}

// ReconcileReport says what Reconcile did with each unfinished journal entry.
type ReconcileReport struct {
	// Adopted: intent entries whose migration task was found started after the intent; now followed.
	Adopted []store.JournalEntry
	// NotStarted: intent entries without a task while the guest is still on its source; closed, not re-issued.
	NotStarted []store.JournalEntry
	// Closed: entries whose task had ended while the balancer was down, closed with the task's outcome.
	Closed []store.JournalEntry
	// Followed: entries whose task was still running; followed to its end and closed.
	Followed []store.JournalEntry
	// Unknown: entries whose task can no longer be found and whose outcome cannot be told from the guest.
	Unknown []store.JournalEntry
}

// Reconcile closes the journal's unfinished entries against /cluster/tasks after a restart: no migration is
// repeated and none is forgotten. It follows still-running tasks to their end, so it blocks until they end
// or ctx is done; entries it could not settle stay open and the error says why.
func (e *Executor) Reconcile(ctx context.Context) (ReconcileReport, error) {
	return ReconcileReport{}, errNotImplemented
}

// ActiveMigration is a running migration and its progress.
type ActiveMigration struct {
	Entry    store.JournalEntry
	Progress Progress
}

// Active returns the journal's running migrations with their progress read from the task logs.
func (e *Executor) Active(ctx context.Context) ([]ActiveMigration, error) {
	return nil, errNotImplemented
}

// TaskLog returns the PVE task log of journal entry id (empty when the move never started).
func (e *Executor) TaskLog(ctx context.Context, id uint64) ([]pve.TaskLogLine, error) {
	return nil, errNotImplemented
}
