package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/go-kit/log/level"

	"github.com/proxbalance/proxbalance/internal/placement"
	"github.com/proxbalance/proxbalance/internal/policy"
	"github.com/proxbalance/proxbalance/internal/store"
)

// Message is Alertmanager's webhook payload, version 4. Unknown keys are accepted: newer Alertmanagers add some
// (0.35 sends notification_reason and routeLabels).
type Message struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   int               `json:"truncatedAlerts"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []Alert           `json:"alerts"`
}

// Alert is one alert of a Message.
type Alert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// Labels the balancer reads on an alert.
const (
	LabelAction = "proxbalance_action"
	LabelNode   = "node"
)

// DecodeMessage reads a webhook body. It fails on malformed JSON, a version other than 4 and alerts without a
// fingerprint or with an unknown status.
func DecodeMessage(r io.Reader) (*Message, error) {
	var m Message
	dec := json.NewDecoder(r)
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("decoding the webhook payload: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("decoding the webhook payload: trailing data after the JSON object")
	}
	if m.Version != "4" {
		return nil, fmt.Errorf("webhook payload version %q: want \"4\"", m.Version)
	}
	for i, a := range m.Alerts {
		if a.Fingerprint == "" {
			return nil, fmt.Errorf("alert %d: no fingerprint", i)
		}
		if a.Status != "firing" && a.Status != "resolved" {
			return nil, fmt.Errorf("alert %d (%s): status %q: want firing or resolved", i, a.Fingerprint, a.Status)
		}
	}
	return &m, nil
}

// planKey identifies what a firing alert asks for; a storm of alerts with one key makes one plan.
type planKey struct {
	Action placement.Action
	// Node is the node to relieve or evacuate; empty for cluster-wide actions.
	Node string
}

// Mapping is what the balancer makes of one alert.
type Mapping struct {
	Key planKey
	// Ignored is why the alert asks for nothing ("" when it maps to a plan).
	Ignored string
}

// MapAlert reads an alert's proxbalance_action and node labels. (The group label of anti-affinity alerts is
// informational: the planner repairs every group.)
func MapAlert(a Alert) Mapping {
	action := placement.Action(a.Labels[LabelAction])
	node := a.Labels[LabelNode]
	switch action {
	case "":
		return Mapping{Ignored: "no " + LabelAction + " label"}
	case placement.ActionRelieve, placement.ActionEvacuate:
		if node == "" {
			return Mapping{Ignored: fmt.Sprintf("action %s without a %s label", action, LabelNode)}
		}
		return Mapping{Key: planKey{Action: action, Node: node}}
	case placement.ActionRebalance, placement.ActionRepairAntiAffinity:
		// Cluster-wide actions: the planner repairs every group at once, so alerts for several nodes or groups
		// coalesce into one plan.
		return Mapping{Key: planKey{Action: action}}
	}
	return Mapping{Ignored: fmt.Sprintf("unknown action %q", action)}
}

// pendingRequest is a planning request waiting in the queue, with the alerts that asked for it: how many are
// firing, and the fingerprints of the first maxFingerprintsPerRequest of them.
type pendingRequest struct {
	key          planKey
	trigger      string
	firing       int
	fingerprints []string
}

// maxFingerprintsPerRequest bounds what a storm can make one queued request remember.
const maxFingerprintsPerRequest = 64

// requestQueue coalesces planning requests by key: however many alerts ask for the same thing before the worker
// gets to it, one plan is made. Its size is bounded by distinct keys.
type requestQueue struct {
	mu      sync.Mutex
	max     int
	order   []planKey
	pending map[planKey]*pendingRequest
	wake    chan struct{}
}

func newRequestQueue(max int) *requestQueue {
	return &requestQueue{max: max, pending: map[planKey]*pendingRequest{}, wake: make(chan struct{}, 1)}
}

// add queues a request or merges it into the waiting one; it reports false when the queue is full.
func (q *requestQueue) add(key planKey, trigger, fingerprint string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if p, ok := q.pending[key]; ok {
		p.firing++
		if len(p.fingerprints) < maxFingerprintsPerRequest {
			p.fingerprints = append(p.fingerprints, fingerprint)
		}
		return true
	}
	if len(q.pending) >= q.max {
		return false
	}
	q.pending[key] = &pendingRequest{key: key, trigger: trigger, firing: 1, fingerprints: []string{fingerprint}}
	q.order = append(q.order, key)
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return true
}

// withdraw drops a resolved alert from the waiting request; a request left without firing alerts is dropped.
func (q *requestQueue) withdraw(key planKey, fingerprint string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	p, ok := q.pending[key]
	if !ok {
		return false
	}
	switch i := slices.Index(p.fingerprints, fingerprint); {
	case i >= 0:
		p.fingerprints = slices.Delete(p.fingerprints, i, i+1)
	case len(p.fingerprints) < p.firing:
		// One of the alerts whose fingerprints were not kept; it was counted all the same.
	default:
		return false
	}
	if p.firing--; p.firing == 0 {
		delete(q.pending, key)
	}
	return true
}

// take returns the oldest waiting request.
func (q *requestQueue) take() (*pendingRequest, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.order) > 0 {
		k := q.order[0]
		q.order = q.order[1:]
		if p, ok := q.pending[k]; ok {
			delete(q.pending, k)
			return p, true
		}
	}
	return nil, false
}

func (q *requestQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.pending)
}

// dedupeFor is how long a (fingerprint, startsAt, status) triple is remembered; HA pairs and retries deliver
// within minutes. maxDeliveries bounds the memory this takes (about 100 bytes each).
const (
	dedupeFor     = 24 * time.Hour
	maxDeliveries = 100_000
)

// webhookResult is the webhook's answer: what became of each alert.
type webhookResult struct {
	Queued    int `json:"queued"`
	Duplicate int `json:"duplicate"`
	Resolved  int `json:"resolved"`
	Ignored   int `json:"ignored"`
	Dropped   int `json:"dropped"`
}

func (s *Server) handleAlerts(w http.ResponseWriter, r *http.Request) {
	body := http.MaxBytesReader(w, r.Body, s.current().MaxBodyBytes)
	msg, err := DecodeMessage(body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.metrics.webhookRequests.WithLabelValues("oversize").Inc()
			writeError(w, http.StatusRequestEntityTooLarge, "payload larger than %d bytes", tooBig.Limit)
			return
		}
		s.metrics.webhookRequests.WithLabelValues("malformed").Inc()
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	var res webhookResult
	now := s.now()
	for _, a := range msg.Alerts {
		first := s.dedupe.first(deliveryKey{a.Fingerprint, a.StartsAt.UnixNano(), a.Status}, now)
		if !first {
			res.Duplicate++
			s.metrics.webhookAlerts.WithLabelValues("duplicate").Inc()
			continue
		}
		m := MapAlert(a)
		switch {
		case m.Ignored != "":
			res.Ignored++
			s.metrics.webhookAlerts.WithLabelValues("ignored").Inc()
			level.Debug(s.logger).Log("msg", "alert ignored", "alertname", a.Labels["alertname"], "fingerprint", a.Fingerprint, "why", m.Ignored)
		case a.Status == "resolved":
			res.Resolved++
			s.metrics.webhookAlerts.WithLabelValues("resolved").Inc()
			s.resolveAlert(r.Context(), m.Key, a.Fingerprint)
		default:
			trigger := "alert:" + a.Labels["alertname"]
			if m.Key.Node != "" {
				trigger += " " + m.Key.Node
			}
			if s.queue.add(m.Key, trigger, a.Fingerprint) {
				res.Queued++
				s.metrics.webhookAlerts.WithLabelValues("queued").Inc()
			} else {
				res.Dropped++
				s.metrics.webhookAlerts.WithLabelValues("dropped").Inc()
				s.metrics.queueDropped.Inc()
			}
		}
	}
	s.metrics.webhookRequests.WithLabelValues("accepted").Inc()
	writeJSON(w, http.StatusAccepted, res)
}

// resolveAlert withdraws what a resolved alert's firing asked for: its queued request, or the pending,
// unapproved plan it created once every alert that asked for that plan has resolved. An alert resolving while
// its plan is being made is remembered, and the worker withdraws the plan as soon as it exists.
func (s *Server) resolveAlert(ctx context.Context, key planKey, fingerprint string) {
	s.queue.withdraw(key, fingerprint)
	s.mu.Lock()
	if s.planning[fingerprint] {
		s.resolvedEarly[fingerprint] = true
		s.mu.Unlock()
		return
	}
	id, ok := s.alertPlans[fingerprint]
	last := false
	if ok {
		delete(s.alertPlans, fingerprint)
		delete(s.planAlerts[id], fingerprint)
		if last = len(s.planAlerts[id]) == 0; last {
			delete(s.planAlerts, id)
		}
	}
	s.mu.Unlock()
	if last {
		s.withdrawPlan(ctx, id, "alert "+fingerprint+" resolved")
	}
}

// withdrawPlan withdraws a plan that nobody approved yet; approved plans run on, final ones are history.
func (s *Server) withdrawPlan(ctx context.Context, id, reason string) {
	rec, err := s.store.Plan(ctx, id)
	if err != nil || rec.State != store.PlanPending {
		return
	}
	if _, err := s.store.TransitionPlan(ctx, id, store.PlanWithdrawn, reason); err != nil {
		level.Warn(s.logger).Log("msg", "withdrawing a plan", "plan", id, "err", err)
		return
	}
	level.Info(s.logger).Log("msg", "plan withdrawn", "plan", id, "reason", reason)
	s.refreshPlanGauge(ctx)
}

// trackAlerts marks fingerprints as being planned for.
func (s *Server) trackAlerts(fps []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range fps {
		if f != "" {
			s.planning[f] = true
		}
	}
}

// untrackAlerts forgets fingerprints whose planning failed.
func (s *Server) untrackAlerts(fps []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range fps {
		delete(s.planning, f)
		delete(s.resolvedEarly, f)
	}
}

// bindAlerts links the fingerprints to the plan made for them and reports whether all of them resolved while
// it was made.
func (s *Server) bindAlerts(fps []string, id string) (allResolved bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	bound, resolved := 0, 0
	for _, f := range fps {
		if f == "" {
			continue
		}
		delete(s.planning, f)
		if s.resolvedEarly[f] {
			delete(s.resolvedEarly, f)
			resolved++
			continue
		}
		if len(s.alertPlans) >= maxAlertPlans {
			continue
		}
		s.alertPlans[f] = id
		if s.planAlerts[id] == nil {
			s.planAlerts[id] = map[string]bool{}
		}
		s.planAlerts[id][f] = true
		bound++
	}
	return resolved > 0 && bound == 0 && len(s.planAlerts[id]) == 0
}

// maxAlertPlans bounds the fingerprint → plan index; past it, a resolved alert no longer withdraws its plan
// (the plan still expires with its TTL).
const maxAlertPlans = 4096

// runAutomatically re-validates a fresh plan, approves it on automation's behalf when at least one move passes
// every gate, and runs those moves. A plan with nothing to run stays pending for an operator.
func (s *Server) runAutomatically(ctx context.Context, rec store.PlanRecord) {
	_, reqs, err := s.vet(ctx, rec, nil, "auto", false)
	if err != nil {
		level.Error(s.logger).Log("msg", "re-validating a plan for automatic execution", "plan", rec.ID(), "err", err)
		return
	}
	if len(reqs) == 0 {
		return
	}
	if _, err := s.store.Approve(ctx, store.Approval{PlanID: rec.ID(), By: "auto", At: s.now()}); err != nil {
		level.Error(s.logger).Log("msg", "approving a plan automatically", "plan", rec.ID(), "err", err)
		return
	}
	s.start(ctx, rec.ID(), reqs, len(rec.Plan.Moves))
	s.refreshPlanGauge(ctx)
}

// planWorker makes one plan per queued request, one at a time.
func (s *Server) planWorker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.queue.wake:
		}
		for {
			p, ok := s.queue.take()
			if !ok || ctx.Err() != nil {
				break
			}
			req := placement.Request{Action: p.key.Action, Node: p.key.Node, Trigger: p.trigger}
			s.trackAlerts(p.fingerprints)
			rec, err := s.makePlan(ctx, req, p.fingerprints[0])
			if err != nil {
				s.untrackAlerts(p.fingerprints)
				level.Error(s.logger).Log("msg", "planning for an alert failed", "action", req.Action, "node", req.Node, "err", err)
				continue
			}
			if rec.State == "" { // nothing to move: no plan to bind the alerts to
				s.untrackAlerts(p.fingerprints)
				continue
			}
			if s.bindAlerts(p.fingerprints, rec.ID()) {
				s.withdrawPlan(ctx, rec.ID(), "its alerts resolved while it was made")
				continue
			}
			if s.current().Gates.Mode == policy.ModeAuto && rec.State == store.PlanPending && len(rec.Plan.Moves) > 0 {
				s.runAutomatically(ctx, rec)
			}
		}
	}
}
