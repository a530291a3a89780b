package executor

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

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
	// DryRun records every move that passes the checks instead of requesting it (see also SetDryRun and
	// Request.DryRun).
	DryRun bool
	// MaxConcurrent caps migrations running in the cluster (counted from /cluster/tasks, whoever started
	// them); 0 means 1. SetMaxConcurrent changes it for later moves.
	MaxConcurrent int
	// PollInterval is how often a running task is polled; 0 means 2s.
	PollInterval time.Duration
	// RetryBackoff is the first wait before a transient read failure of a check is retried (at most
	// RetryAttempts tries in all, doubling the wait); 0 means 1s.
	RetryBackoff  time.Duration
	RetryAttempts int
	// HAHandoffTimeout bounds the wait for the HA stack to start the real migration after an "hamigrate"
	// request task; 0 means 2 minutes.
	HAHandoffTimeout time.Duration
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
	// DryRun records this move instead of requesting it, whatever the executor's mode: the caller decided
	// the move is a dry run when it vetted it, and a reload to a real mode before the move's turn must not
	// turn it into a migration nobody approved as one.
	DryRun bool
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
	logger  log.Logger
	metrics *metrics
	dryRun  atomic.Bool
	// maxConcurrent is cfg.MaxConcurrent as reloaded; the precheck reads it.
	maxConcurrent atomic.Int64

	// start is precheck → idempotency → execute; finish is follow → verify. startMu serialises starts so
	// that concurrent Executes cannot both pass the max-concurrent check before either task is visible.
	start, finish MultiStage
	startMu       sync.Mutex

	mu sync.Mutex
	// following holds the journal IDs this process follows, so Reconcile leaves them alone.
	following map[uint64]bool
}

// New checks cfg and builds an executor.
func New(cfg Config) (*Executor, error) {
	if cfg.PVE == nil || cfg.Store == nil {
		return nil, errors.New("executor: PVE client and store are required")
	}
	if cfg.MaxConcurrent < 0 {
		return nil, fmt.Errorf("executor: max concurrent migrations %d is negative", cfg.MaxConcurrent)
	}
	if cfg.MaxConcurrent == 0 {
		cfg.MaxConcurrent = 1
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 2 * time.Second
	}
	if cfg.RetryBackoff <= 0 {
		cfg.RetryBackoff = time.Second
	}
	if cfg.RetryAttempts <= 0 {
		cfg.RetryAttempts = 3
	}
	if cfg.HAHandoffTimeout <= 0 {
		cfg.HAHandoffTimeout = 2 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = log.NewNopLogger()
	}
	e := &Executor{cfg: cfg, logger: cfg.Logger, metrics: newMetrics(), following: map[uint64]bool{}}
	e.dryRun.Store(cfg.DryRun)
	e.maxConcurrent.Store(int64(cfg.MaxConcurrent))
	e.start = MultiStage{
		recorded(retrying(&precheckStage{e}, cfg.RetryAttempts, cfg.RetryBackoff)),
		recorded(&idempotencyStage{e}),
		recorded(&executeStage{e: e, real: cfg.PVE, fake: &DryRunMigrator{}}),
	}
	e.finish = MultiStage{recorded(&followStage{e}), recorded(&verifyStage{e})}
	return e, nil
}

// SetDryRun switches between dry runs and real runs for the moves started afterwards (a config reload).
func (e *Executor) SetDryRun(dryRun bool) { e.dryRun.Store(dryRun) }

// DryRun reports whether moves are currently only recorded.
func (e *Executor) DryRun() bool { return e.dryRun.Load() }

// SetMaxConcurrent changes the cap on migrations running in the cluster for the moves checked afterwards (a
// config reload); n below 1 means 1, as in Config.
func (e *Executor) SetMaxConcurrent(n int) { e.maxConcurrent.Store(int64(max(n, 1))) }

// MaxConcurrent is the current cap on migrations running in the cluster.
func (e *Executor) MaxConcurrent() int { return int(e.maxConcurrent.Load()) }

func (e *Executor) now() time.Time { return e.cfg.Now().UTC() }

// Execute runs one move through the pipeline and, when it was requested, follows it to its end. It blocks
// until the task ends or ctx is done (then the outcome is unknown and the journal entry stays open for
// Reconcile). A refused or failed move is not retried.
func (e *Executor) Execute(ctx context.Context, req Request) Result {
	a := &Attempt{Request: req, DryRun: req.DryRun || e.DryRun()}
	res := Result{Request: req, Start: e.now()}

	defer func() {
		if a.tracked {
			e.untrack(a)
		}
	}()
	e.startMu.Lock()
	_, err := e.start.Exec(ctx, a)
	e.startMu.Unlock()
	if err == nil {
		_, err = e.runFinish(ctx, a)
	}

	res.End = e.now()
	res.Err, res.Records, res.JournalID, res.UPID = err, a.Records, a.Journal.ID, a.UPID
	res.Outcome, res.Reason = outcomeOf(a, err)
	kv := []any{"plan", req.PlanID, "move", req.MoveIndex, "guest", req.Move.Guest, "source", req.Move.Source,
		"target", req.Move.Target, "outcome", res.Outcome, "journal_id", res.JournalID}
	if res.UPID != "" {
		kv = append(kv, "upid", res.UPID)
	}
	if err != nil {
		kv = append(kv, "reason", res.Reason, "err", err)
		level.Warn(e.logger).Log(append([]any{"msg", "move did not succeed"}, kv...)...)
	} else {
		level.Info(e.logger).Log(append([]any{"msg", "move done"}, kv...)...)
	}
	return res
}

// runFinish follows a requested move and verifies it.
func (e *Executor) runFinish(ctx context.Context, a *Attempt) (bool, error) {
	if a.DryRun {
		return e.finish.Exec(ctx, a)
	}
	if !a.tracked {
		if !e.track(a.Journal.ID) {
			return false, &StageError{Stage: "follow", Reason: ReasonDuplicate,
				Err: fmt.Errorf("journal entry %d is already followed", a.Journal.ID)}
		}
		a.tracked = true
		defer e.untrack(a)
	}
	e.metrics.inFlight.Inc()
	defer e.metrics.inFlight.Dec()
	return e.finish.Exec(ctx, a)
}

// track claims a journal entry for this process, so Reconcile leaves it alone; false when already claimed.
func (e *Executor) track(id uint64) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.following[id] {
		return false
	}
	e.following[id] = true
	return true
}

func (e *Executor) untrack(a *Attempt) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.following, a.Journal.ID)
	a.tracked = false
}

// outcomeOf derives the outcome from what the journal says, so results and the journal cannot disagree.
func outcomeOf(a *Attempt, err error) (Outcome, Reason) {
	reason := ReasonOf(err)
	switch {
	case a.Journal.ID == 0:
		return OutcomeRefused, reason // nothing was journaled, so nothing was requested
	case a.Journal.State == store.MoveDryRun:
		return OutcomeDryRun, reason
	case a.Journal.State == store.MoveSucceeded && err == nil:
		return OutcomeSucceeded, ReasonNone
	case !a.Journal.State.Final():
		return OutcomeUnknown, reason
	default:
		return OutcomeFailed, reason
	}
}

// Run executes moves one after the other. A failed move is not retried; the next move still runs. It stops
// when ctx is done; moves not reached are not in the results.
func (e *Executor) Run(ctx context.Context, reqs []Request) []Result {
	out := make([]Result, 0, len(reqs))
	for _, r := range reqs {
		if ctx.Err() != nil {
			break
		}
		out = append(out, e.Execute(ctx, r))
	}
	return out
}

// ActiveMigration is a running migration and its progress.
type ActiveMigration struct {
	Entry    store.JournalEntry
	Progress Progress
}

// maxLogLines bounds how much of a task log is read; a live migration logs about one line per second per
// phase, and PVE caps the lines it returns per call anyway.
const maxLogLines = 50000

// Active returns the journal's unfinished migrations with their progress read from the task logs, oldest
// first. A log that cannot be read leaves that migration's progress empty rather than failing the list.
func (e *Executor) Active(ctx context.Context) ([]ActiveMigration, error) {
	entries, err := e.cfg.Store.ActiveMoves(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]ActiveMigration, 0, len(entries))
	for _, en := range entries {
		am := ActiveMigration{Entry: en, Progress: Progress{Phase: PhaseStarting}}
		if en.UPID != "" {
			if lines, err := e.logLines(ctx, en.UPID); err == nil {
				am.Progress = ParseProgress(lines)
			} else {
				level.Debug(e.logger).Log("msg", "reading task log for progress", "upid", en.UPID, "err", err)
			}
		}
		if !en.StartedAt.IsZero() {
			am.Progress.Elapsed = max(e.now().Sub(en.StartedAt), 0)
		}
		out = append(out, am)
	}
	return out, nil
}

// TaskLog returns the PVE task log of journal entry id (empty when the move never started).
func (e *Executor) TaskLog(ctx context.Context, id uint64) ([]pve.TaskLogLine, error) {
	en, err := e.cfg.Store.Move(ctx, id)
	if err != nil {
		return nil, err
	}
	if en.UPID == "" {
		return nil, nil
	}
	lines, err := e.cfg.PVE.TaskLog(ctx, en.UPID, 0, maxLogLines)
	if err != nil {
		return nil, fmt.Errorf("reading log of journal entry %d: %w", id, err)
	}
	return lines, nil
}

func (e *Executor) logLines(ctx context.Context, upid string) ([]string, error) {
	lines, err := e.cfg.PVE.TaskLog(ctx, upid, 0, maxLogLines)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l.Text
	}
	return out, nil
}

// lastErrorLine is the last "ERROR:" line of a task log without its time stamp; "TASK ERROR" is left out
// because it repeats the exit status.
func lastErrorLine(lines []string) string {
	for i := len(lines) - 1; i >= 0; i-- {
		_, text := cutTimestamp(lines[i])
		if strings.HasPrefix(text, "TASK ERROR") {
			continue
		}
		if strings.Contains(text, "ERROR:") {
			return text
		}
	}
	return ""
}

// parseGuest turns "qemu/105" into its type and vmid.
func parseGuest(id string) (pve.GuestType, int, error) {
	t, n, ok := strings.Cut(id, "/")
	if !ok {
		return "", 0, fmt.Errorf("guest %q: want type/vmid", id)
	}
	gt := pve.GuestType(t)
	if gt != pve.TypeQEMU && gt != pve.TypeLXC {
		return "", 0, fmt.Errorf("guest %q: unknown type %q (want qemu or lxc)", id, t)
	}
	vmid, err := strconv.Atoi(n)
	if err != nil || vmid <= 0 {
		return "", 0, fmt.Errorf("guest %q: bad vmid %q", id, n)
	}
	return gt, vmid, nil
}

// isMigrationTask reports task types that move a guest. An HA request ("hamigrate") counts: it is followed by
// the real migration a few seconds later.
func isMigrationTask(typ string) bool {
	return typ == "qmigrate" || typ == "vzmigrate" || typ == "hamigrate"
}
