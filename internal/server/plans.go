package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-kit/log/level"
	"github.com/gorilla/mux"

	"github.com/proxbalance/proxbalance/internal/executor"
	"github.com/proxbalance/proxbalance/internal/placement"
	"github.com/proxbalance/proxbalance/internal/policy"
	"github.com/proxbalance/proxbalance/internal/store"
)

// decisionsReport is the last planning run, served by /api/v1/decisions.
type decisionsReport struct {
	PlanID    string               `json:"plan_id"`
	Action    placement.Action     `json:"action"`
	Node      string               `json:"node,omitempty"`
	Trigger   string               `json:"trigger"`
	At        string               `json:"at"`
	Outcomes  map[string]int       `json:"outcomes"`
	Decisions []placement.Decision `json:"decisions"`
	Notes     []placement.Note     `json:"notes,omitempty"`
}

// triggerKind turns a trigger into a bounded metric label.
func triggerKind(trigger string) string {
	kind, _, _ := strings.Cut(trigger, ":")
	switch kind {
	case "alert", "api", "schedule", "maintenance":
		return kind
	}
	return "other"
}

// maintenanceSet reads the maintenance flags.
func (s *Server) maintenanceSet(ctx context.Context) (map[string]bool, error) {
	ms, err := s.store.MaintenanceNodes(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(ms))
	for _, m := range ms {
		out[m.Node] = true
	}
	return out, nil
}

// plan runs the planner with the current settings and maintenance flags and records the run's decisions.
func (s *Server) plan(ctx context.Context, req placement.Request) (Planning, error) {
	maint, err := s.maintenanceSet(ctx)
	if err != nil {
		return Planning{}, err
	}
	if req.Action == placement.ActionEvacuate {
		maint[req.Node] = true // an evacuated node accepts no guests
	}
	p, err := s.planner.Plan(ctx, req, maint, s.current().Placement)
	if err != nil {
		s.metrics.planningFailures.Inc()
		return Planning{}, err
	}
	s.recordRun(p.Plan)
	return p, nil
}

func (s *Server) recordRun(p placement.Plan) {
	rep := &decisionsReport{PlanID: p.ID, Action: p.Action, Node: p.Node, Trigger: p.Trigger,
		At: p.At.UTC().Format("2006-01-02T15:04:05Z"), Outcomes: map[string]int{}, Decisions: p.Decisions, Notes: p.Notes}
	for _, d := range p.Decisions {
		rep.Outcomes[string(d.Outcome)]++
	}
	s.mu.Lock()
	s.lastRun = rep
	s.mu.Unlock()
	for _, o := range []placement.Outcome{placement.OutcomeSelected, placement.OutcomeSkipped, placement.OutcomeFiltered, placement.OutcomeManual} {
		s.metrics.decisions.WithLabelValues(string(o)).Set(float64(rep.Outcomes[string(o)]))
	}
	s.metrics.imbalance.WithLabelValues("before").Set(p.Before.LoadCV)
	s.metrics.imbalance.WithLabelValues("after").Set(p.After.LoadCV)
	s.metrics.nodeScore.Reset()
	for _, n := range p.Before.Nodes {
		s.metrics.nodeScore.WithLabelValues(n.Node).Set(n.Score)
	}
}

// makePlan plans and stores the plan as pending, superseding older pending plans for the same action and
// node (an operator approves the freshest). Plan IDs are deterministic: asking twice for the same thing on the
// same inputs returns the stored plan. A plan without moves is not stored (its decisions are still the last
// run's); its record has an empty State.
func (s *Server) makePlan(ctx context.Context, req placement.Request, fingerprint string) (store.PlanRecord, error) {
	p, err := s.plan(ctx, req)
	if err != nil {
		return store.PlanRecord{}, err
	}
	if len(p.Plan.Moves) == 0 {
		level.Info(s.logger).Log("msg", "nothing to move", "action", req.Action, "node", req.Node, "trigger", req.Trigger,
			"notes", notesText(p.Plan.Notes))
		return store.PlanRecord{Plan: p.Plan, Trigger: req.Trigger}, nil
	}
	now := s.now()
	rec, created, err := s.store.CreatePlan(ctx, store.PlanRecord{
		Plan: p.Plan, Trigger: req.Trigger, AlertFingerprint: fingerprint, CreatedAt: now,
		ExpiresAt: now.Add(s.current().PlanTTL),
	})
	if err != nil {
		return store.PlanRecord{}, err
	}
	if created {
		s.metrics.plansCreated.WithLabelValues(triggerKind(req.Trigger), string(req.Action)).Inc()
		level.Info(s.logger).Log("msg", "plan created", "plan", rec.ID(), "action", req.Action, "node", req.Node,
			"trigger", req.Trigger, "moves", len(p.Plan.Moves))
		s.supersede(ctx, rec)
	}
	s.refreshPlanGauge(ctx)
	return rec, nil
}

// supersede withdraws the other pending plans for the same action and node, and hands their alerts to the new
// plan.
func (s *Server) supersede(ctx context.Context, rec store.PlanRecord) {
	pending, err := s.store.Plans(ctx, store.PlanFilter{States: []store.PlanState{store.PlanPending}})
	if err != nil {
		level.Warn(s.logger).Log("msg", "listing pending plans", "err", err)
		return
	}
	for _, old := range pending {
		if old.ID() == rec.ID() || old.Plan.Action != rec.Plan.Action || old.Plan.Node != rec.Plan.Node {
			continue
		}
		if _, err := s.store.TransitionPlan(ctx, old.ID(), store.PlanWithdrawn, "superseded by "+rec.ID()); err != nil {
			level.Warn(s.logger).Log("msg", "superseding a plan", "plan", old.ID(), "err", err)
			continue
		}
		s.mu.Lock()
		for f := range s.planAlerts[old.ID()] {
			s.alertPlans[f] = rec.ID()
			if s.planAlerts[rec.ID()] == nil {
				s.planAlerts[rec.ID()] = map[string]bool{}
			}
			s.planAlerts[rec.ID()][f] = true
		}
		delete(s.planAlerts, old.ID())
		s.mu.Unlock()
	}
}

func notesText(ns []placement.Note) string {
	var parts []string
	for _, n := range ns {
		parts = append(parts, string(n.Reason)+": "+n.Message)
	}
	return strings.Join(parts, "; ")
}

func (s *Server) refreshPlanGauge(ctx context.Context) {
	recs, err := s.store.Plans(ctx, store.PlanFilter{})
	if err != nil {
		level.Warn(s.logger).Log("msg", "counting plans", "err", err)
		return
	}
	s.metrics.plans.Reset()
	for _, r := range recs {
		s.metrics.plans.WithLabelValues(triggerKind(r.Trigger), string(r.State)).Inc()
	}
}

func (s *Server) refreshGauges(ctx context.Context) error {
	s.refreshPlanGauge(ctx)
	ms, err := s.store.MaintenanceNodes(ctx)
	if err != nil {
		return err
	}
	for _, m := range ms {
		s.metrics.maintenance.WithLabelValues(m.Node).Set(1)
	}
	return nil
}

func (s *Server) handlePlans(w http.ResponseWriter, r *http.Request) {
	s.expirePlans(r.Context())
	f := store.PlanFilter{}
	if st := r.URL.Query().Get("state"); st != "" {
		if !store.PlanState(st).Valid() {
			writeError(w, http.StatusBadRequest, "state %q: want one of %v", st, store.PlanStates)
			return
		}
		f.States = []store.PlanState{store.PlanState(st)}
	}
	recs, err := s.store.Plans(r.Context(), f)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	if recs == nil {
		recs = []store.PlanRecord{}
	}
	writeJSON(w, http.StatusOK, recs)
}

func (s *Server) planRecord(w http.ResponseWriter, r *http.Request) (store.PlanRecord, bool) {
	s.expirePlans(r.Context())
	id := mux.Vars(r)["id"]
	rec, err := s.store.Plan(r.Context(), id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "plan %s: not found", id)
		return rec, false
	case err != nil:
		writeError(w, http.StatusInternalServerError, "%v", err)
		return rec, false
	}
	return rec, true
}

func (s *Server) handlePlan(w http.ResponseWriter, r *http.Request) {
	if rec, ok := s.planRecord(w, r); ok {
		writeJSON(w, http.StatusOK, rec)
	}
}

// approveRequest is the approve body; empty approves every move.
type approveRequest struct {
	// Moves are indexes into the plan's moves; empty means all.
	Moves   []int  `json:"moves"`
	By      string `json:"by"`
	Comment string `json:"comment"`
}

// MoveVerdict is what approval made of one move.
type MoveVerdict struct {
	Index int    `json:"index"`
	Guest string `json:"guest"`
	// Outcome is "started", "dry-run", "refused" (no longer valid or worth it) or "held" (a gate).
	Outcome string   `json:"outcome"`
	Reasons []string `json:"reasons,omitempty"`
	Message string   `json:"message,omitempty"`
}

type approveResponse struct {
	// Error says why nothing was approved (409); empty on success.
	Error string           `json:"error,omitempty"`
	Plan  store.PlanRecord `json:"plan"`
	Moves []MoveVerdict    `json:"moves"`
}

func decodeBody(r *http.Request, v any) error {
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return err
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return nil
	}
	return json.Unmarshal(b, v)
}

func (s *Server) handleApprove(w http.ResponseWriter, r *http.Request) {
	rec, ok := s.planRecord(w, r)
	if !ok {
		return
	}
	var req approveRequest
	if err := decodeBody(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, "approve body: %v", err)
		return
	}
	if rec.State != store.PlanPending {
		writeError(w, http.StatusConflict, "plan %s is %s (%s): only pending plans can be approved", rec.ID(), rec.State, rec.StateReason)
		return
	}
	for _, i := range req.Moves {
		if i < 0 || i >= len(rec.Plan.Moves) {
			writeError(w, http.StatusBadRequest, "move index %d: the plan has %d moves", i, len(rec.Plan.Moves))
			return
		}
	}
	if req.By == "" {
		req.By = "api"
	}
	if !rec.ExpiresAt.IsZero() && !s.now().Before(rec.ExpiresAt) {
		writeError(w, http.StatusConflict, "plan %s expired at %s", rec.ID(), rec.ExpiresAt.UTC().Format(time.RFC3339))
		return
	}
	// Re-validate first: when live state or history cannot be read, or when no chosen move can run now (a
	// window is closed, a cooldown runs, ...), the approval is not recorded and the plan stays pending, so it
	// can be approved again later.
	verdicts, reqs, err := s.vet(r.Context(), rec, req.Moves, req.By, true)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "re-validating plan %s: %v", rec.ID(), err)
		return
	}
	if len(reqs) == 0 {
		writeJSON(w, http.StatusConflict, approveResponse{Error: "no chosen move can run now; the plan stays pending", Plan: rec, Moves: verdicts})
		return
	}
	approved, err := s.store.Approve(r.Context(), store.Approval{PlanID: rec.ID(), By: req.By, At: s.now(), Moves: req.Moves, Comment: req.Comment})
	if err != nil {
		writeError(w, http.StatusConflict, "approving plan %s: %v", rec.ID(), err)
		return
	}
	chosen := len(req.Moves)
	if chosen == 0 {
		chosen = len(rec.Plan.Moves)
	}
	s.start(r.Context(), rec.ID(), reqs, chosen)
	s.refreshPlanGauge(r.Context())
	if cur, err := s.store.Plan(r.Context(), rec.ID()); err == nil {
		approved = cur
	}
	writeJSON(w, http.StatusAccepted, approveResponse{Plan: approved, Moves: verdicts})
}

// vet re-validates the chosen moves against a fresh plan made on live PVE state and fresh metrics and passes
// them through the policy gates. It returns a verdict per chosen move and the executor requests of those that
// may start. indexes nil means every move; approved says an operator approved rather than automation.
func (s *Server) vet(ctx context.Context, rec store.PlanRecord, indexes []int, by string, approved bool) ([]MoveVerdict, []executor.Request, error) {
	if indexes == nil {
		for i := range rec.Plan.Moves {
			indexes = append(indexes, i)
		}
	}
	fresh, err := s.plan(ctx, placement.Request{Action: rec.Plan.Action, Node: rec.Plan.Node, Trigger: rec.Trigger})
	if err != nil {
		return nil, nil, err
	}
	settings := s.current()
	verdicts := make([]MoveVerdict, 0, len(indexes))
	var candidates []int // positions in verdicts that passed re-validation
	var pm []policy.Move
	for _, i := range indexes {
		m := rec.Plan.Moves[i]
		v := MoveVerdict{Index: i, Guest: m.Guest}
		if reason, msg := revalidate(m, fresh.Plan, settings.Placement.MinImprovement); reason != "" {
			v.Outcome, v.Reasons, v.Message = "refused", []string{reason}, msg
			s.metrics.moves.WithLabelValues(string(executor.OutcomeRefused)).Inc()
		} else {
			candidates = append(candidates, len(verdicts))
			pm = append(pm, policy.Move{Guest: m.Guest, Source: m.Source, Target: m.Target, Tags: fresh.Tags[m.Guest],
				Confidence: m.Confidence, Improvement: m.Improvement})
		}
		verdicts = append(verdicts, v)
	}
	journal, departures, err := s.recentMoves(ctx, pm)
	if err != nil {
		return nil, nil, err
	}
	gv := policy.Evaluate(settings.Gates, policy.Input{
		Now: s.now(), Quorate: fresh.Quorate, Running: fresh.RunningMigrations, Approved: approved,
		Evacuation: rec.Plan.Action == placement.ActionEvacuate, Moves: pm, Journal: journal, Departures: departures,
	})
	var reqs []executor.Request
	for k, g := range gv {
		v := &verdicts[candidates[k]]
		switch {
		case g.Allowed():
			v.Outcome = "started"
			reqs = append(reqs, executor.Request{PlanID: rec.ID(), MoveIndex: v.Index, Move: rec.Plan.Moves[v.Index], Trigger: rec.Trigger, Approver: by})
		case len(g.Reasons) == 1 && g.Reasons[0] == policy.ReasonDryRun:
			// The executor runs its checks and journals the move without migrating.
			// The request carries the verdict: a reload to a real mode before this move's turn must not make it
			// a migration.
			v.Outcome, v.Reasons, v.Message = "dry-run", []string{string(g.Reasons[0])}, g.Messages[0]
			reqs = append(reqs, executor.Request{PlanID: rec.ID(), MoveIndex: v.Index, Move: rec.Plan.Moves[v.Index], Trigger: rec.Trigger, Approver: by, DryRun: true})
		default:
			v.Outcome = "held"
			for _, r := range g.Reasons {
				v.Reasons = append(v.Reasons, string(r))
			}
			v.Message = strings.Join(g.Messages, "; ")
			s.metrics.moves.WithLabelValues(outcomeHeld).Inc()
		}
	}
	for _, v := range verdicts {
		level.Info(s.logger).Log("msg", "move verdict", "plan", rec.ID(), "index", v.Index, "guest", v.Guest, "outcome", v.Outcome, "reasons", strings.Join(v.Reasons, ","))
	}
	return verdicts, reqs, nil
}

// start hands moves to the executor in the background; chosen is how many moves were approved.
func (s *Server) start(ctx context.Context, planID string, reqs []executor.Request, chosen int) {
	if len(reqs) == 0 {
		return
	}
	s.running.Add(1)
	s.executing.Add(1)
	go func() {
		defer s.running.Done()
		s.runMoves(context.WithoutCancel(ctx), planID, reqs, chosen)
	}()
}

// runMoves executes moves in plan order (each is valid on the cluster the earlier ones leave) and settles the
// plan's state.
func (s *Server) runMoves(ctx context.Context, planID string, reqs []executor.Request, chosen int) {
	executing := true
	done := func() {
		if executing {
			executing = false
			s.executing.Add(-1)
		}
	}
	defer done()
	ok, dry := 0, 0
	// unsuccessful says, for the plan's record, which moves did not succeed and why: a refusal by the
	// precheck is journaled nowhere else (nothing was requested).
	var unsuccessful []string
	for _, req := range reqs {
		res := s.exec.Execute(ctx, req)
		s.metrics.moves.WithLabelValues(string(res.Outcome)).Inc()
		switch res.Outcome {
		case executor.OutcomeSucceeded:
			ok++
		case executor.OutcomeDryRun:
			dry++
		default:
			unsuccessful = append(unsuccessful, moveOutcome(req.Move, res))
		}
		level.Info(s.logger).Log("msg", "move ended", "plan", planID, "guest", req.Move.Guest, "target", req.Move.Target,
			"outcome", res.Outcome, "reason", res.Reason, "upid", res.UPID, "err", res.Err)
	}
	if ok == 0 && dry > 0 {
		s.refreshPlanGauge(ctx)
		return // a dry run executed nothing: the plan stays approved, its journal entries say what would have run
	}
	to := store.PlanExecuted
	if ok < chosen {
		to = store.PlanPartiallyExecuted
	}
	reason := fmt.Sprintf("%d of %d chosen moves succeeded", ok, chosen)
	if len(unsuccessful) > 0 {
		reason += "; " + strings.Join(unsuccessful, "; ")
	}
	rec, err := s.store.TransitionPlan(ctx, planID, to, reason)
	if err != nil {
		level.Warn(s.logger).Log("msg", "settling plan state", "plan", planID, "err", err)
	}
	s.refreshPlanGauge(ctx)
	done() // the plan is settled: sweeping may expire plans again
	if err == nil && to == store.PlanExecuted {
		s.measureGain(ctx, rec)
	}
}

// moveOutcome describes a move that did not succeed: "qemu/101 pve1 → pve2: refused (guest_locked)".
func moveOutcome(m placement.Move, res executor.Result) string {
	out := fmt.Sprintf("%s %s → %s: %s", m.Guest, m.Source, m.Target, res.Outcome)
	if res.Reason != executor.ReasonNone {
		out += " (" + string(res.Reason) + ")"
	}
	return out
}

// measureGain compares, once the moves have settled into the load averages, the hottest node's score the
// planner predicted with the one a fresh planning run sees. Only fully executed plans are measured: a partial
// one's prediction does not apply.
func (s *Server) measureGain(ctx context.Context, rec store.PlanRecord) {
	if s.measureAfter < 0 {
		return
	}
	select {
	case <-s.stop:
		return
	case <-time.After(s.measureAfter):
	}
	maint, err := s.maintenanceSet(ctx)
	if err != nil {
		level.Warn(s.logger).Log("msg", "measuring a plan's gain", "plan", rec.ID(), "err", err)
		return
	}
	fresh, err := s.planner.Plan(ctx, placement.Request{Action: placement.ActionRebalance, Trigger: "measure:" + rec.ID()}, maint, s.current().Placement)
	if err != nil {
		level.Warn(s.logger).Log("msg", "measuring a plan's gain", "plan", rec.ID(), "err", err)
		return
	}
	predicted := rec.Plan.Before.MaxScore - rec.Plan.After.MaxScore
	realised := rec.Plan.Before.MaxScore - fresh.Plan.Before.MaxScore
	s.metrics.gain.WithLabelValues("predicted").Add(max(predicted, 0))
	s.metrics.gain.WithLabelValues("realised").Add(max(realised, 0))
	s.metrics.lastGain.WithLabelValues("predicted").Set(predicted)
	s.metrics.lastGain.WithLabelValues("realised").Set(realised)
	level.Info(s.logger).Log("msg", "plan gain measured", "plan", rec.ID(), "predicted_points", predicted, "realised_points", realised)
}

// revalidate checks one approved move against a fresh plan: the guest must still be on the planned source, and
// the planned target must still be a feasible candidate worth at least minImprovement (or the fresh plan still
// makes the same move). It returns a reason code and message when the move must be refused.
func revalidate(m placement.Move, fresh placement.Plan, minImprovement float64) (string, string) {
	var dec *placement.Decision
	for i := range fresh.Decisions {
		if fresh.Decisions[i].Guest == m.Guest {
			dec = &fresh.Decisions[i]
		}
	}
	for _, fm := range fresh.Moves {
		if fm.Guest != m.Guest {
			continue
		}
		if fm.Source != m.Source {
			return "GuestMoved", fmt.Sprintf("%s is on %s now, not %s", m.Guest, fm.Source, m.Source)
		}
		if fm.Target == m.Target {
			return "", ""
		}
		for _, c := range fm.Candidates {
			if c.Node != m.Target {
				continue
			}
			if !c.Feasible {
				return "TargetNoLongerValid", fmt.Sprintf("%s no longer fits on %s: %s", m.Guest, m.Target, statusSummary(c.Rejections))
			}
			if c.Improvement < minImprovement && fresh.Action != placement.ActionEvacuate {
				return "NoLongerWorthIt", fmt.Sprintf("moving %s to %s would now improve %.1f points (min %.1f)", m.Guest, m.Target, c.Improvement, minImprovement)
			}
			return "", ""
		}
		return "TargetNoLongerValid", fmt.Sprintf("%s is no longer a candidate for %s", m.Target, m.Guest)
	}
	if dec == nil {
		return "GuestGone", fmt.Sprintf("%s is no longer considered by the planner", m.Guest)
	}
	if dec.Node != m.Source {
		return "GuestMoved", fmt.Sprintf("%s is on %s now, not %s", m.Guest, dec.Node, m.Source)
	}
	return "NoLongerProposed", fmt.Sprintf("a fresh plan does not move %s: %s", m.Guest, dec.Summary)
}

func statusSummary(sts []placement.Status) string {
	var parts []string
	for _, st := range sts {
		parts = append(parts, strings.TrimSpace(string(st.Code)+" "+st.Detail))
	}
	return strings.Join(parts, "; ")
}

// recentMoves reads the journal entries and departures the cooldown and rollback gates need.
func (s *Server) recentMoves(ctx context.Context, moves []policy.Move) ([]policy.JournalEntry, []policy.Departure, error) {
	var js []policy.JournalEntry
	var ds []policy.Departure
	seen := map[string]bool{}
	for _, m := range moves {
		if seen[m.Guest] {
			continue
		}
		seen[m.Guest] = true
		if e, ok, err := s.store.LastAttempt(ctx, m.Guest); err != nil {
			return nil, nil, err
		} else if ok && e.State.Final() {
			end := e.EndedAt
			if end.IsZero() {
				end = e.IntentAt
			}
			js = append(js, policy.JournalEntry{Guest: e.Guest, Source: e.Source, Target: e.Target, Ended: end,
				Failed: e.State == store.MoveFailed || e.State == store.MoveUnknown})
		}
		if at, ok, err := s.store.LeftNode(ctx, m.Guest, m.Target); err != nil {
			return nil, nil, err
		} else if ok {
			ds = append(ds, policy.Departure{Guest: m.Guest, Node: m.Target, LeftAt: at})
		}
	}
	if s.depart != nil && len(seen) > 0 {
		guests := slices.Sorted(maps.Keys(seen))
		more, err := s.depart.Departures(ctx, s.now(), s.current().Gates.RollbackWindow, guests)
		if err != nil {
			// Without the placement history the rollback gate cannot be proven to hold: refuse, say why.
			return nil, nil, err
		}
		ds = append(ds, more...)
	}
	return js, ds, nil
}

func (s *Server) handleReject(w http.ResponseWriter, r *http.Request) {
	rec, ok := s.planRecord(w, r)
	if !ok {
		return
	}
	var body struct {
		By     string `json:"by"`
		Reason string `json:"reason"`
	}
	if err := decodeBody(r, &body); err != nil {
		writeError(w, http.StatusBadRequest, "reject body: %v", err)
		return
	}
	reason := strings.TrimSpace("rejected by " + cmpOr(body.By, "api") + ": " + body.Reason)
	out, err := s.store.TransitionPlan(r.Context(), rec.ID(), store.PlanRejected, strings.TrimSuffix(reason, ":"))
	if err != nil {
		writeError(w, http.StatusConflict, "%v", err)
		return
	}
	s.refreshPlanGauge(r.Context())
	writeJSON(w, http.StatusOK, out)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
