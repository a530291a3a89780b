package executor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/proxbalance/proxbalance/internal/pve"
	"github.com/proxbalance/proxbalance/internal/store"
)

// refuse is a stage failure that is final: retrying cannot change it.
func refuse(stage string, reason Reason, format string, args ...any) (bool, error) {
	return false, &StageError{Stage: stage, Reason: reason, Err: fmt.Errorf(format, args...)}
}

// apiFailure is a failed PVE read: transient answers (node briefly unreachable, 5xx gateway statuses, no
// answer at all) ask for a retry, others do not. A canceled context is never retried.
func apiFailure(ctx context.Context, stage, what string, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, &StageError{Stage: stage, Reason: ReasonCanceled, Err: fmt.Errorf("%s: %w", what, err)}
	}
	var ae *pve.APIError
	transient := !errors.As(err, &ae) || pve.IsUnavailable(err)
	return transient, &StageError{Stage: stage, Reason: ReasonAPIError, Err: fmt.Errorf("%s: %w", what, err)}
}

// precheckStage re-validates the move against the live PVE API right before it runs.
type precheckStage struct{ e *Executor }

func (*precheckStage) Name() string { return "precheck" }

func (s *precheckStage) Exec(ctx context.Context, a *Attempt) (bool, error) {
	const stage = "precheck"
	m := a.Request.Move
	gt, vmid, err := parseGuest(m.Guest)
	if err != nil {
		return refuse(stage, ReasonInvalidMove, "%v", err)
	}
	if m.Source == "" || m.Target == "" || m.Source == m.Target {
		return refuse(stage, ReasonInvalidMove, "move of %s from %q to %q: need two different nodes", m.Guest, m.Source, m.Target)
	}
	api := s.e.cfg.PVE

	cs, err := api.ClusterStatus(ctx)
	if err != nil {
		return apiFailure(ctx, stage, "reading cluster status", err)
	}
	if !cs.Cluster.Quorate {
		return refuse(stage, ReasonNoQuorum, "cluster %s is not quorate", cs.Cluster.Name)
	}
	if why := memberOffline(cs, m.Source); why != "" {
		return refuse(stage, ReasonSourceOffline, "source node %s %s", m.Source, why)
	}
	if why := memberOffline(cs, m.Target); why != "" {
		return refuse(stage, ReasonTargetOffline, "target node %s %s", m.Target, why)
	}

	res, err := api.ClusterResources(ctx)
	if err != nil {
		return apiFailure(ctx, stage, "reading cluster resources", err)
	}
	g, ok := findGuest(res, gt, vmid)
	switch {
	case !ok:
		return refuse(stage, ReasonGuestNotFound, "guest %s is not in the cluster", m.Guest)
	case g.Node != m.Source:
		return refuse(stage, ReasonGuestMoved, "guest %s is on %s, not on the planned source %s", m.Guest, g.Node, m.Source)
	case g.Lock != "":
		return refuse(stage, ReasonGuestLocked, "guest %s is locked (%s)", m.Guest, g.Lock)
	}
	a.Guest = pve.GuestRef{Type: gt, VMID: vmid, Node: g.Node}
	a.Running = g.Status == "running"

	tasks, err := api.Tasks(ctx)
	if err != nil {
		return apiFailure(ctx, stage, "reading cluster tasks", err)
	}
	running := 0
	id := strconv.Itoa(vmid)
	for _, t := range tasks {
		if !t.Running() || !isMigrationTask(t.Type) {
			continue
		}
		if t.ID == id {
			return refuse(stage, ReasonActiveTask, "guest %s already has a running %s task %s", m.Guest, t.Type, t.UPID)
		}
		if t.Type != "hamigrate" { // the HA request is followed by a qmigrate/vzmigrate that counts itself
			running++
		}
	}
	if limit := s.e.MaxConcurrent(); running >= limit {
		return refuse(stage, ReasonMaxConcurrent, "%d migrations are running in the cluster (at most %d)", running, limit)
	}

	pc, err := api.MigratePrecondition(ctx, a.Guest, m.Target)
	switch {
	case err != nil && gt == pve.TypeLXC && (pve.IsNotImplemented(err) || pve.IsNotFound(err)):
		pc = nil // PVE before 9.0 has no container precondition; the migrate call itself checks
	case err != nil:
		return apiFailure(ctx, stage, "reading migrate precondition", err)
	}
	a.Precondition = pc
	if pc != nil {
		if retry, err := checkPrecondition(pc, m.Guest, m.Target); err != nil {
			return retry, err
		}
	}

	a.Options = migrateOptions(gt, a.Running, pc)
	a.note("guest %s on %s (%s), %d migrations running, options %s", m.Guest, g.Node, g.Status, running,
		optionsText(a.Options))
	return false, nil
}

// memberOffline says why a node cannot take part: not a cluster member, or offline.
func memberOffline(cs *pve.ClusterStatus, node string) string {
	for _, mb := range cs.Members {
		if mb.Name == node {
			if !mb.Online {
				return "is offline in /cluster/status"
			}
			return ""
		}
	}
	return "is not a member of the cluster"
}

func findGuest(res *pve.Resources, gt pve.GuestType, vmid int) (pve.Guest, bool) {
	for _, g := range res.Guests {
		if g.Type == gt && g.VMID == vmid {
			return g, true
		}
	}
	return pve.Guest{}, false
}

// checkPrecondition applies PVE's own verdict on the target.
func checkPrecondition(pc *pve.MigratePrecondition, guest, target string) (bool, error) {
	const stage = "precheck"
	if len(pc.LocalResources) > 0 {
		return refuse(stage, ReasonLocalResources, "guest %s uses local resources %s", guest,
			strings.Join(pc.LocalResources, ", "))
	}
	if bl, ok := pc.NotAllowed[target]; ok {
		var why []string
		if len(bl.UnavailableStorages) > 0 {
			why = append(why, "storages "+strings.Join(bl.UnavailableStorages, ", ")+" unavailable")
		}
		if len(bl.UnavailableResources) > 0 {
			why = append(why, "resources "+strings.Join(bl.UnavailableResources, ", ")+" unavailable")
		}
		if len(bl.BlockingHAResources) > 0 {
			why = append(why, "blocked by HA resources "+strings.Join(bl.BlockingHAResources, ", "))
		}
		return refuse(stage, ReasonPreconditionDenied, "PVE refuses %s as target of %s: %s", target, guest,
			strings.Join(why, "; "))
	}
	if !slices.Contains(pc.AllowedNodes, target) {
		return refuse(stage, ReasonPreconditionDenied, "PVE does not list %s among the allowed targets of %s (%s)",
			target, guest, strings.Join(pc.AllowedNodes, ", "))
	}
	return false, nil
}

// migrateOptions: running VMs migrate live, copying local disks along when they have any; running containers
// cannot migrate live and use restart migration; stopped guests migrate offline.
func migrateOptions(gt pve.GuestType, running bool, pc *pve.MigratePrecondition) pve.MigrateOptions {
	var o pve.MigrateOptions
	if gt == pve.TypeLXC {
		o.Restart = running
		return o
	}
	o.Online = running
	if running && pc != nil {
		for _, d := range pc.LocalDisks {
			if !d.Shared && !d.CDROM {
				o.WithLocalDisks = true
			}
		}
	}
	return o
}

func optionsText(o pve.MigrateOptions) string {
	if o.WithLocalDisks {
		return modeOf(o) + " with local disks"
	}
	return modeOf(o)
}

func modeOf(o pve.MigrateOptions) string {
	switch {
	case o.Online:
		return "online"
	case o.Restart:
		return "restart"
	default:
		return "offline"
	}
}

// idempotencyStage refuses a move whose guest has an unfinished journal entry (also one left by an earlier
// process) and a move of a plan that was already attempted: nothing moves twice, and a failed move is not
// retried automatically.
type idempotencyStage struct{ e *Executor }

func (*idempotencyStage) Name() string { return "idempotency" }

func (s *idempotencyStage) Exec(ctx context.Context, a *Attempt) (bool, error) {
	const stage = "idempotency"
	st := s.e.cfg.Store
	active, err := st.Journal(ctx, store.JournalQuery{Guest: a.Request.Move.Guest, Active: true, Limit: 1})
	if err != nil {
		return refuse(stage, ReasonJournalError, "reading journal: %v", err)
	}
	if len(active) > 0 {
		return refuse(stage, ReasonDuplicate, "guest %s has unfinished journal entry %d (%s)", a.Request.Move.Guest,
			active[0].ID, active[0].State)
	}
	if a.Request.PlanID != "" {
		prev, err := st.Journal(ctx, store.JournalQuery{PlanID: a.Request.PlanID, Guest: a.Request.Move.Guest})
		if err != nil {
			return refuse(stage, ReasonJournalError, "reading journal: %v", err)
		}
		for _, p := range prev {
			if p.MoveIndex == a.Request.MoveIndex {
				return refuse(stage, ReasonDuplicate, "move %d of plan %s was already attempted: journal entry %d (%s)",
					p.MoveIndex, p.PlanID, p.ID, p.State)
			}
		}
	}
	return false, nil
}

// executeStage journals the intent, requests the migration, and journals its UPID. It never retries: a
// POST whose answer got lost may have started a task.
type executeStage struct {
	e    *Executor
	real Migrator
	fake *DryRunMigrator
}

func (*executeStage) Name() string { return "execute" }

func (s *executeStage) Exec(ctx context.Context, a *Attempt) (bool, error) {
	const stage = "execute"
	st := s.e.cfg.Store
	m := a.Request.Move
	entry := store.JournalEntry{
		PlanID: a.Request.PlanID, MoveIndex: a.Request.MoveIndex, Guest: m.Guest, GuestName: m.GuestName,
		Source: m.Source, Target: m.Target, Mode: modeOf(a.Options), WithLocalDisks: a.Options.WithLocalDisks,
		Trigger: a.Request.Trigger, Approver: a.Request.Approver, TargetScore: m.TargetAfter.Total,
		PredictedGain: m.Improvement, IntentAt: s.e.now(),
	}
	var migrator Migrator = s.real
	if a.DryRun {
		entry.State = store.MoveDryRun
		migrator = s.fake
	}
	entry, err := st.BeginMove(ctx, entry)
	if errors.Is(err, store.ErrGuestBusy) {
		return refuse(stage, ReasonDuplicate, "%v", err)
	}
	if err != nil {
		return refuse(stage, ReasonJournalError, "writing intent: %v", err)
	}
	a.Journal = entry
	if !a.DryRun {
		a.tracked = s.e.track(entry.ID) // a fresh ID: nobody else can hold it
	}

	upid, err := migrator.Migrate(ctx, a.Guest, m.Target, a.Options)
	if a.DryRun {
		a.note("dry run: would %s", MigrateCall{Guest: a.Guest, Target: m.Target, Options: a.Options})
		return false, nil
	}
	if err != nil {
		var ae *pve.APIError
		if errors.As(err, &ae) {
			// PVE answered with an error: it started nothing.
			s.e.closeEntry(ctx, a, store.MoveNotStarted, ReasonMigrateRefused, err.Error())
			return false, &StageError{Stage: stage, Reason: ReasonMigrateRefused, Err: err}
		}
		// No answer: the task may have started. Look for it rather than guess.
		t, found, lerr := s.e.findMigrationTask(ctx, entry, true)
		switch {
		case lerr != nil:
			return false, &StageError{Stage: stage, Reason: ReasonAPIError,
				Err: fmt.Errorf("%w; looking for its task: %v (journal entry %d left for reconcile)", err, lerr, entry.ID)}
		case !found:
			s.e.closeEntry(ctx, a, store.MoveNotStarted, ReasonMigrateRefused, err.Error())
			return false, &StageError{Stage: stage, Reason: ReasonMigrateRefused, Err: err}
		}
		upid = t.UPID
	}
	// Start and end both come from the balancer's clock, so a journal's durations never mix two clocks (PVE's
	// UPID start time is only used for tasks adopted after a restart, when nothing else is known).
	started := s.e.now()
	entry, err = st.UpdateMove(ctx, entry.ID, func(j *store.JournalEntry) error {
		j.State, j.UPID, j.StartedAt = store.MoveStarted, upid, started
		return nil
	})
	a.UPID = upid
	if err != nil {
		// The migration runs but its UPID is not journaled; reconcile adopts it from the intent.
		return false, &StageError{Stage: stage, Reason: ReasonJournalError,
			Err: fmt.Errorf("journaling UPID %s: %w", upid, err)}
	}
	a.Journal = entry
	a.note("requested %s: %s", optionsText(a.Options), upid)
	return false, nil
}

// clockSkew is how far the node's clock (which stamps UPIDs, in whole seconds) may be behind the balancer's
// (which stamps intents) for a task to still count as started after an intent.
const clockSkew = 5 * time.Second

// findMigrationTask looks in /cluster/tasks for the first migration task of the entry's guest on its source
// that started at or after the intent (less clockSkew). withHARequests admits "hamigrate" request tasks;
// without it only the real qmigrate/vzmigrate tasks count.
func (e *Executor) findMigrationTask(ctx context.Context, en store.JournalEntry, withHARequests bool) (pve.Task, bool, error) {
	_, vmid, err := parseGuest(en.Guest)
	if err != nil {
		return pve.Task{}, false, err
	}
	tasks, err := e.cfg.PVE.Tasks(ctx)
	if err != nil {
		return pve.Task{}, false, fmt.Errorf("reading cluster tasks: %w", err)
	}
	since := en.IntentAt.Truncate(time.Second).Add(-clockSkew)
	id := strconv.Itoa(vmid)
	var best pve.Task
	found := false
	for _, t := range tasks {
		if t.ID != id || !isMigrationTask(t.Type) || t.Node != en.Source || t.StartTime.Before(since) ||
			(t.Type == "hamigrate" && !withHARequests) {
			continue
		}
		if !found || t.StartTime.Before(best.StartTime) {
			best, found = t, true
		}
	}
	return best, found, nil
}

// closeEntry ends the attempt's journal entry. A store failure is logged and reported in the record: the
// entry stays open and Reconcile settles it later.
func (e *Executor) closeEntry(ctx context.Context, a *Attempt, state store.MoveState, reason Reason, msg string) {
	en, err := e.cfg.Store.UpdateMove(context.WithoutCancel(ctx), a.Journal.ID, func(j *store.JournalEntry) error {
		j.State, j.Reason, j.Error = state, string(reason), msg
		if a.UPID != "" {
			j.UPID = a.UPID
		}
		j.EndedAt = e.now()
		return nil
	})
	if err != nil {
		a.note("journal entry %d could not be closed as %s: %v", a.Journal.ID, state, err)
		return
	}
	a.Journal = en
	if !en.StartedAt.IsZero() {
		e.metrics.duration.WithLabelValues(string(state)).Observe(en.Duration.Seconds())
	}
}

// followStage waits for the migration task to end. For an HA-managed guest PVE's answer is an "hamigrate"
// request task; the real migration starts a little later and is followed in turn.
type followStage struct{ e *Executor }

func (*followStage) Name() string { return "follow" }

func (s *followStage) Exec(ctx context.Context, a *Attempt) (bool, error) {
	const stage = "follow"
	if a.DryRun {
		a.note("dry run: nothing to follow")
		return false, nil
	}
	st, err := s.wait(ctx, a)
	if err != nil {
		return false, err
	}
	if u, perr := pve.ParseUPID(a.UPID); perr == nil && u.Type == "hamigrate" && st.Succeeded() {
		t, err := s.handoff(ctx, a)
		if err != nil {
			return false, err
		}
		en, err := s.e.cfg.Store.UpdateMove(context.WithoutCancel(ctx), a.Journal.ID, func(j *store.JournalEntry) error {
			j.UPID, j.StartedAt = t.UPID, t.StartTime
			return nil
		})
		if err != nil {
			return false, &StageError{Stage: stage, Reason: ReasonJournalError, Err: err}
		}
		a.Journal, a.UPID = en, t.UPID
		if st, err = s.wait(ctx, a); err != nil {
			return false, err
		}
	}
	a.Task = st
	if !st.Succeeded() {
		msg := st.ExitStatus
		if lines, err := s.e.logLines(context.WithoutCancel(ctx), a.UPID); err == nil {
			if l := lastErrorLine(lines); l != "" && !strings.Contains(l, msg) {
				msg += "; " + l
			} else if l != "" {
				msg = l
			}
		}
		s.e.closeEntry(ctx, a, store.MoveFailed, ReasonTaskFailed, msg)
		return false, &StageError{Stage: stage, Reason: ReasonTaskFailed, Err: fmt.Errorf("task %s: %s", a.UPID, msg)}
	}
	a.note("task %s ended %s", a.UPID, st.ExitStatus)
	return false, nil
}

func (s *followStage) wait(ctx context.Context, a *Attempt) (*pve.TaskState, error) {
	st, err := s.e.cfg.PVE.WaitTask(ctx, a.UPID, s.e.cfg.PollInterval)
	if err == nil {
		return st, nil
	}
	reason := ReasonAPIError
	if ctx.Err() != nil {
		reason = ReasonCanceled
	}
	return nil, &StageError{Stage: "follow", Reason: reason,
		Err: fmt.Errorf("following %s (journal entry %d stays open for reconcile): %w", a.UPID, a.Journal.ID, err)}
}

// handoff waits for the HA stack to start the real migration of the guest.
func (s *followStage) handoff(ctx context.Context, a *Attempt) (pve.Task, error) {
	hctx, cancel := context.WithTimeout(ctx, s.e.cfg.HAHandoffTimeout)
	defer cancel()
	req, _ := pve.ParseUPID(a.UPID)
	probe := a.Journal
	probe.IntentAt = req.StartTime
	for {
		t, found, err := s.e.findMigrationTask(hctx, probe, false)
		if err == nil && found {
			return t, nil
		}
		if !sleepCtx(hctx, s.e.cfg.PollInterval) {
			reason := ReasonAPIError
			if ctx.Err() != nil {
				reason = ReasonCanceled
			}
			return pve.Task{}, &StageError{Stage: "follow", Reason: reason, Err: fmt.Errorf(
				"HA request %s ended but no migration of %s started (journal entry %d stays open for reconcile)",
				a.UPID, a.Journal.Guest, a.Journal.ID)}
		}
	}
}

// verifyStage checks that the guest is on the target after a successful task and closes the journal entry.
type verifyStage struct{ e *Executor }

func (*verifyStage) Name() string { return "verify" }

// verifyTries bounds how often the guest's place is read: /cluster/resources can lag the task's end briefly.
const verifyTries = 3

func (s *verifyStage) Exec(ctx context.Context, a *Attempt) (bool, error) {
	const stage = "verify"
	if a.DryRun {
		a.note("dry run: nothing to verify")
		return false, nil
	}
	gt, vmid, err := parseGuest(a.Journal.Guest)
	if err != nil {
		return refuse(stage, ReasonInvalidMove, "%v", err)
	}
	var where string
	for try := 1; ; try++ {
		res, err := s.e.cfg.PVE.ClusterResources(ctx)
		if err == nil {
			g, ok := findGuest(res, gt, vmid)
			where = "not in the cluster"
			if ok {
				where = "on " + g.Node
			}
			if ok && g.Node == a.Journal.Target {
				break
			}
		} else {
			where = "unknown: " + err.Error()
		}
		if try >= verifyTries || ctx.Err() != nil {
			if ctx.Err() != nil {
				return false, &StageError{Stage: stage, Reason: ReasonCanceled, Err: ctx.Err()}
			}
			msg := fmt.Sprintf("task %s ended %s but guest %s is %s, not on %s", a.UPID, taskExit(a.Task),
				a.Journal.Guest, where, a.Journal.Target)
			s.e.closeEntry(ctx, a, store.MoveFailed, ReasonVerifyFailed, msg)
			return false, &StageError{Stage: stage, Reason: ReasonVerifyFailed, Err: errors.New(msg)}
		}
		sleepCtx(ctx, s.e.cfg.PollInterval)
	}
	s.e.closeEntry(ctx, a, store.MoveSucceeded, ReasonNone, "")
	if !a.Journal.State.Final() {
		return false, &StageError{Stage: stage, Reason: ReasonJournalError, Err: errors.New(a.detail)}
	}
	a.note("guest %s is on %s", a.Journal.Guest, a.Journal.Target)
	return false, nil
}

func taskExit(st *pve.TaskState) string {
	if st == nil {
		return "(unknown)"
	}
	return st.ExitStatus
}

// sleepCtx waits d unless ctx ends first; it reports whether the full wait passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
