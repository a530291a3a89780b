package server

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/proxbalance/proxbalance/internal/executor"
)

// outcomeHeld labels moves a policy gate held back.
const outcomeHeld = "held"

const namespace = "proxbalance"

// Kinds of store records the retention removes.
const (
	removedPlan    = "plan"
	removedJournal = "journal"
)

// metrics are the balancer's own series. Names are an API: the alert rules read proxbalance_node_maintenance.
// moves counts every move once, whoever settled it (a gate, re-validation or the executor); the executor
// registers the in-flight gauge and the duration histogram, which only it can know.
type metrics struct {
	plans            *prometheus.GaugeVec
	plansCreated     *prometheus.CounterVec
	moves            *prometheus.CounterVec
	imbalance        *prometheus.GaugeVec
	gain             *prometheus.CounterVec
	lastGain         *prometheus.GaugeVec
	nodeScore        *prometheus.GaugeVec
	maintenance      *prometheus.GaugeVec
	decisions        *prometheus.GaugeVec
	webhookAlerts    *prometheus.CounterVec
	webhookRequests  *prometheus.CounterVec
	queueDropped     prometheus.Counter
	planningFailures prometheus.Counter
	recordsRemoved   *prometheus.CounterVec
	reloadSuccess    prometheus.Gauge
	reloadTimestamp  prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		plans: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "plans",
			Help: "Plans in the store by trigger kind and state.",
		}, []string{"trigger", "state"}),
		plansCreated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "plans_created_total",
			Help: "Plans created by trigger kind and action.",
		}, []string{"trigger", "action"}),
		moves: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "moves_total",
			Help: "Moves chosen for execution by outcome: held by a policy gate, refused (no longer valid or worth it, or by an executor check), or the executor's outcome (succeeded, failed, dry_run, unknown).",
		}, []string{"outcome"}),
		imbalance: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "cluster_imbalance_ratio",
			Help: "Coefficient of variation of node load in the last planning run, before and after its moves (predicted).",
		}, []string{"when"}),
		gain: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "gain_points_total",
			Help: "Improvement of the hottest node's score by executed plans, in points: kind=predicted by the planner, kind=realised as measured by re-planning after the moves settled.",
		}, []string{"kind"}),
		lastGain: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "last_plan_gain_points",
			Help: "Predicted and realised improvement of the hottest node's score by the last measured plan, in points.",
		}, []string{"kind"}),
		nodeScore: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "node_score_points",
			Help: "Node score in the last planning run (lower is better).",
		}, []string{"node"}),
		maintenance: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "node_maintenance",
			Help: "1 when the node is flagged for maintenance in the balancer, else 0.",
		}, []string{"node"}),
		decisions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "decisions",
			Help: "Guests considered by the last planning run, by outcome.",
		}, []string{"outcome"}),
		webhookAlerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "webhook_alerts_total",
			Help: "Alerts received on the webhook, by result (queued, duplicate, resolved, ignored, dropped).",
		}, []string{"result"}),
		webhookRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "webhook_requests_total",
			Help: "Webhook requests by result (accepted, malformed, oversize, unauthorized).",
		}, []string{"result"}),
		queueDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "planning_queue_dropped_total",
			Help: "Planning requests dropped because the queue was full.",
		}),
		planningFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "planning_failures_total",
			Help: "Planning runs that failed (PVE or Prometheus unreadable).",
		}),
		recordsRemoved: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "store_records_removed_total",
			Help: "Final plans (with their approvals) and final migration journal entries removed from the store after store.retention, by kind.",
		}, []string{"kind"}),
		reloadSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "config_last_reload_successful",
			Help: "Whether the last configuration reload succeeded.",
		}),
		reloadTimestamp: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "config_last_reload_success_timestamp_seconds",
			Help: "Time of the last successful configuration reload.",
		}),
	}
	reg.MustRegister(m.plans, m.plansCreated, m.moves, m.imbalance, m.gain, m.lastGain,
		m.nodeScore, m.maintenance, m.decisions, m.webhookAlerts, m.webhookRequests, m.queueDropped,
		m.planningFailures, m.recordsRemoved, m.reloadSuccess, m.reloadTimestamp)
	for _, r := range []string{"queued", "duplicate", "resolved", "ignored", "dropped"} {
		m.webhookAlerts.WithLabelValues(r)
	}
	for _, r := range []string{"accepted", "malformed", "oversize", "unauthorized"} {
		m.webhookRequests.WithLabelValues(r)
	}
	for _, o := range executor.Outcomes {
		m.moves.WithLabelValues(string(o))
	}
	m.moves.WithLabelValues(outcomeHeld)
	for _, k := range []string{removedPlan, removedJournal} {
		m.recordsRemoved.WithLabelValues(k)
	}
	return m
}
