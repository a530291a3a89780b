package executor

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/go-kit/log/level"

	"github.com/proxbalance/proxbalance/internal/pve"
	"github.com/proxbalance/proxbalance/internal/store"
)

// ReconcileReport says what Reconcile did with each unfinished journal entry; entries are as last written.
type ReconcileReport struct {
	// Adopted: intent entries whose migration task was found started after the intent; followed to its end
	// and closed.
	Adopted []store.JournalEntry
	// NotStarted: intent entries without a task while the guest is still on its source; closed, not re-issued.
	NotStarted []store.JournalEntry
	// Closed: entries whose task had ended while the balancer was down, closed with the task's outcome.
	Closed []store.JournalEntry
	// Followed: entries whose task was still running; followed to its end and closed.
	Followed []store.JournalEntry
	// Unknown: entries whose task can no longer be found or read; closed as unknown.
	Unknown []store.JournalEntry
	// Skipped: entries this process is following itself.
	Skipped []store.JournalEntry
}

type reconcileKind int

const (
	kindAdopted reconcileKind = iota
	kindNotStarted
	kindClosed
	kindFollowed
	kindUnknown
)

func (r *ReconcileReport) add(k reconcileKind, e store.JournalEntry) {
	switch k {
	case kindAdopted:
		r.Adopted = append(r.Adopted, e)
	case kindNotStarted:
		r.NotStarted = append(r.NotStarted, e)
	case kindClosed:
		r.Closed = append(r.Closed, e)
	case kindFollowed:
		r.Followed = append(r.Followed, e)
	case kindUnknown:
		r.Unknown = append(r.Unknown, e)
	}
}

// Reconcile settles the journal's unfinished entries against /cluster/tasks after a restart, so that no
// migration is repeated and none is forgotten:
//
//   - an entry with a UPID is followed (task still running) or closed from the task's status (it ended while
//     the balancer was down);
//   - an entry with only an intent (the balancer stopped between the journal write and the migrate call, or
//     before journaling the UPID) adopts a qmigrate/vzmigrate/hamigrate task of its guest on its source started
//     after the intent; without one, and with the guest still on its source, it is closed as not started and
//     never re-issued.
//
// Running tasks are followed concurrently; Reconcile returns when all have ended or ctx is done. Entries it
// could not settle (PVE unreachable) stay open, and the error says which. It is safe to call at any time:
// entries this process follows itself are skipped.
func (e *Executor) Reconcile(ctx context.Context) (ReconcileReport, error) {
	var rep ReconcileReport
	entries, err := e.cfg.Store.ActiveMoves(ctx)
	if err != nil {
		return rep, fmt.Errorf("reconciling: %w", err)
	}
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		errs []error
	)
	record := func(k reconcileKind, a *Attempt, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil && !a.Journal.State.Final() {
			errs = append(errs, fmt.Errorf("journal entry %d (%s): %w", a.Journal.ID, a.Journal.Guest, err))
			return
		}
		rep.add(k, a.Journal)
		out, _ := outcomeOf(a, err)
		level.Info(e.logger).Log("msg", "reconciled journal entry", "journal_id", a.Journal.ID, "guest", a.Journal.Guest,
			"state", a.Journal.State, "upid", a.Journal.UPID, "outcome", out)
	}
	for _, en := range entries {
		if !e.track(en.ID) {
			rep.Skipped = append(rep.Skipped, en)
			continue
		}
		a, kind, done, err := e.prepareReconcile(ctx, en)
		a.tracked = true
		if err != nil || done {
			record(kind, a, err)
			e.untrack(a)
			continue
		}
		if kind == kindFollowed || kind == kindAdopted {
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer e.untrack(a)
				_, err := e.runFinish(ctx, a)
				record(kind, a, err)
			}()
			continue
		}
		_, err = e.runFinish(ctx, a)
		record(kind, a, err)
		e.untrack(a)
	}
	wg.Wait()
	return rep, errors.Join(errs...)
}

// prepareReconcile finds the task of an unfinished entry. done reports that the entry was closed here (not
// started, unknown); otherwise the returned attempt is ready for the follow → verify stages.
func (e *Executor) prepareReconcile(ctx context.Context, en store.JournalEntry) (*Attempt, reconcileKind, bool, error) {
	a := &Attempt{
		Request: Request{PlanID: en.PlanID, MoveIndex: en.MoveIndex, Trigger: en.Trigger, Approver: en.Approver},
		Journal: en, UPID: en.UPID,
	}
	a.Request.Move.Guest, a.Request.Move.GuestName = en.Guest, en.GuestName
	a.Request.Move.Source, a.Request.Move.Target = en.Source, en.Target
	gt, vmid, err := parseGuest(en.Guest)
	if err != nil {
		e.closeEntry(ctx, a, store.MoveUnknown, ReasonLost, err.Error())
		return a, kindUnknown, true, nil
	}
	a.Guest = pve.GuestRef{Type: gt, VMID: vmid, Node: en.Source}

	kind := kindClosed
	if en.UPID == "" {
		t, found, err := e.findMigrationTask(ctx, en, true)
		if err != nil {
			return a, kindUnknown, false, err
		}
		if !found {
			return e.closeWithoutTask(ctx, a, gt, vmid)
		}
		updated, err := e.cfg.Store.UpdateMove(ctx, en.ID, func(j *store.JournalEntry) error {
			j.State, j.UPID, j.StartedAt = store.MoveStarted, t.UPID, t.StartTime
			return nil
		})
		if err != nil {
			return a, kindAdopted, false, err
		}
		a.Journal, a.UPID = updated, t.UPID
		kind = kindAdopted
	}

	st, err := e.cfg.PVE.TaskStatus(ctx, a.UPID)
	switch {
	case err != nil && isTransient(err):
		return a, kind, false, fmt.Errorf("reading task %s: %w", a.UPID, err)
	case err != nil:
		e.closeEntry(ctx, a, store.MoveUnknown, ReasonLost, fmt.Sprintf("task %s cannot be read: %v", a.UPID, err))
		return a, kindUnknown, true, nil
	case !st.Done() && kind == kindClosed:
		kind = kindFollowed
	}
	return a, kind, false, nil
}

// closeWithoutTask closes an intent that has no task: not started when the guest is still on its source,
// unknown otherwise (it moved, but no task of ours says so).
func (e *Executor) closeWithoutTask(ctx context.Context, a *Attempt, gt pve.GuestType, vmid int) (*Attempt, reconcileKind, bool, error) {
	res, err := e.cfg.PVE.ClusterResources(ctx)
	if err != nil {
		return a, kindNotStarted, false, fmt.Errorf("reading cluster resources: %w", err)
	}
	g, ok := findGuest(res, gt, vmid)
	if ok && g.Lock == "migrate" {
		// Something migrates the guest, but /cluster/tasks does not show it (yet): decide on a later pass.
		return a, kindNotStarted, false, fmt.Errorf("guest %s is locked for migration but no task of it was found", g.ID())
	}
	if ok && g.Node == a.Journal.Source {
		e.closeEntry(ctx, a, store.MoveNotStarted, ReasonInterrupted,
			"the balancer stopped before requesting the migration; no task found, guest still on "+g.Node+"; not re-issued")
		return a, kindNotStarted, true, nil
	}
	where := "not in the cluster"
	if ok {
		where = "on " + g.Node
	}
	e.closeEntry(ctx, a, store.MoveUnknown, ReasonLost, "no migration task found after the intent, but the guest is "+where)
	return a, kindUnknown, true, nil
}

// isTransient reports failures worth trying again later: no answer, or PVE saying the node is unreachable.
func isTransient(err error) bool {
	var ae *pve.APIError
	return !errors.As(err, &ae) || pve.IsUnavailable(err)
}
