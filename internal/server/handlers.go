package server

import (
	"encoding/csv"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/proxbalance/proxbalance/internal/placement"
	"github.com/proxbalance/proxbalance/internal/store"
)

func (s *Server) handleSetMaintenance(w http.ResponseWriter, r *http.Request) {
	node := mux.Vars(r)["node"]
	var body struct {
		By     string `json:"by"`
		Reason string `json:"reason"`
	}
	if err := decodeBody(r, &body); err != nil {
		writeError(w, http.StatusBadRequest, "maintenance body: %v", err)
		return
	}
	m := store.Maintenance{Node: node, By: cmpOr(body.By, "api"), Since: s.now(), Reason: body.Reason}
	if err := s.store.SetMaintenance(r.Context(), m); err != nil {
		writeError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	s.metrics.maintenance.WithLabelValues(node).Set(1)
	writeJSON(w, http.StatusOK, m)
}

func (s *Server) handleClearMaintenance(w http.ResponseWriter, r *http.Request) {
	node := mux.Vars(r)["node"]
	m, ok, err := s.store.ClearMaintenance(r.Context(), node)
	switch {
	case err != nil:
		writeError(w, http.StatusInternalServerError, "%v", err)
	case !ok:
		writeError(w, http.StatusNotFound, "node %s is not in maintenance", node)
	default:
		// 0, not deleted: the alert rules compare against it.
		s.metrics.maintenance.WithLabelValues(node).Set(0)
		writeJSON(w, http.StatusOK, m)
	}
}

// evacuationRequest is the planning request that empties node.
func evacuationRequest(node string) placement.Request {
	return placement.Request{Action: placement.ActionEvacuate, Node: node, Trigger: "maintenance:" + node}
}

// handleEvacuationPreview shows the plan that would empty the node. A GET changes nothing: the plan is not
// stored and supersedes no pending plan (POST does both), so its record has an empty State.
func (s *Server) handleEvacuationPreview(w http.ResponseWriter, r *http.Request) {
	node := mux.Vars(r)["node"]
	req := evacuationRequest(node)
	p, err := s.plan(r.Context(), req)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "planning the evacuation of %s: %v", node, err)
		return
	}
	writeJSON(w, http.StatusOK, store.PlanRecord{Plan: p.Plan, Trigger: req.Trigger})
}

// handleEvacuation plans the node's evacuation and stores the plan as pending, so it can be approved. Asking
// again on unchanged inputs returns the stored plan (plan IDs are deterministic); a plan without moves is not
// stored.
func (s *Server) handleEvacuation(w http.ResponseWriter, r *http.Request) {
	node := mux.Vars(r)["node"]
	rec, err := s.makePlan(r.Context(), evacuationRequest(node), "")
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "planning the evacuation of %s: %v", node, err)
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

// migrationRow is one line of the migration history.
type migrationRow struct {
	ID          uint64  `json:"id"`
	Guest       string  `json:"guest"`
	Source      string  `json:"source"`
	Target      string  `json:"target"`
	UPID        string  `json:"upid"`
	Start       string  `json:"start"`
	End         string  `json:"end"`
	Outcome     string  `json:"outcome"`
	Duration    float64 `json:"duration_seconds"`
	Trigger     string  `json:"trigger"`
	Approver    string  `json:"approver"`
	TargetScore float64 `json:"target_score"`
	PlanID      string  `json:"plan_id"`
	Error       string  `json:"error,omitempty"`
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// handleMigrations lists the journal, newest first. Filters: guest, node (source or target), plan, limit, and
// dry_run=true to include dry runs.
func (s *Server) handleMigrations(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	jq := store.JournalQuery{Guest: q.Get("guest"), Node: q.Get("node"), PlanID: q.Get("plan"), IncludeDryRun: q.Get("dry_run") == "true"}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "limit %q: want a non-negative integer", l)
			return
		}
		jq.Limit = n
	}
	entries, err := s.store.Journal(r.Context(), jq)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	rows := make([]migrationRow, 0, len(entries))
	for _, e := range entries {
		start := e.StartedAt
		if start.IsZero() {
			start = e.IntentAt
		}
		rows = append(rows, migrationRow{ID: e.ID, Guest: e.Guest, Source: e.Source, Target: e.Target, UPID: e.UPID,
			Start: rfc3339(start), End: rfc3339(e.EndedAt), Outcome: string(e.State), Duration: e.Duration.Seconds(),
			Trigger: e.Trigger, Approver: e.Approver, TargetScore: e.TargetScore, PlanID: e.PlanID, Error: e.Error})
	}
	if r.URL.Query().Get("format") == "csv" || (r.URL.Query().Get("format") == "" && strings.Contains(r.Header.Get("Accept"), "text/csv")) {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		cw := csv.NewWriter(w)
		_ = cw.Write([]string{"id", "guest", "source", "target", "upid", "start", "end", "outcome", "duration_seconds", "trigger", "approver", "target_score", "plan_id", "error"})
		for _, m := range rows {
			_ = cw.Write([]string{strconv.FormatUint(m.ID, 10), m.Guest, m.Source, m.Target, m.UPID, m.Start, m.End, m.Outcome,
				strconv.FormatFloat(m.Duration, 'f', -1, 64), m.Trigger, m.Approver, strconv.FormatFloat(m.TargetScore, 'f', 2, 64), m.PlanID, m.Error})
		}
		cw.Flush()
		return
	}
	writeJSON(w, http.StatusOK, rows)
}

func (s *Server) handleActive(w http.ResponseWriter, r *http.Request) {
	active, err := s.exec.Active(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "reading active migrations: %v", err)
		return
	}
	if active == nil {
		writeJSON(w, http.StatusOK, []any{})
		return
	}
	writeJSON(w, http.StatusOK, active)
}

func (s *Server) handleMigrationLog(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseUint(mux.Vars(r)["id"], 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, "migration id: %v", err)
		return
	}
	lines, err := s.exec.TaskLog(r.Context(), id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "migration %d: not found", id)
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, "reading the task log of migration %d: %v", id, err)
	default:
		writeJSON(w, http.StatusOK, lines)
	}
}

func (s *Server) handleDecisions(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	rep := s.lastRun
	s.mu.Unlock()
	if rep == nil {
		writeError(w, http.StatusNotFound, "no planning run yet")
		return
	}
	writeJSON(w, http.StatusOK, rep)
}
