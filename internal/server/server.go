// Package server is pb-balancer's HTTP API: the Alertmanager webhook that turns alerts into plans, the plan
// approval workflow that re-validates and hands moves to the executor, maintenance flags, migration history,
// the last planning run's decisions, the balancer's own /metrics, health, readiness and config reload.
//
// It reaches the cluster only through interfaces (Planner, Executor) and keeps durable state in internal/store,
// so tests run it against the PVE simulator and a fake or real history source.
package server

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/model"

	"github.com/proxbalance/proxbalance/internal/executor"
	"github.com/proxbalance/proxbalance/internal/placement"
	"github.com/proxbalance/proxbalance/internal/policy"
	"github.com/proxbalance/proxbalance/internal/pve"
	"github.com/proxbalance/proxbalance/internal/store"
)

// Planning is one planning run's result with the live facts the gates need.
type Planning struct {
	Plan placement.Plan
	// Quorate is the cluster's quorum; RunningMigrations counts migration tasks running now.
	Quorate           bool
	RunningMigrations int
	// Tags are every guest's PVE tags, by guest ID.
	Tags map[string][]string
}

// Planner reads the live cluster and its history and plans (inventory + history → placement.Compute).
type Planner interface {
	Plan(ctx context.Context, req placement.Request, maintenance map[string]bool, pol placement.Policy) (Planning, error)
	// Ready reports whether PVE and Prometheus answer.
	Ready(ctx context.Context) error
}

// Executor runs approved moves; internal/executor's Executor satisfies it. In dry-run mode the server still
// hands it the moves that pass every gate, marked Request.DryRun: dry runs take the real path (prechecks,
// journal) and only the migrate call is recorded instead of made. Settings reach it on every (re)load:
// SetDryRun for moves from elsewhere (reconciliation), SetMaxConcurrent for its own max-concurrent check.
type Executor interface {
	Execute(ctx context.Context, req executor.Request) executor.Result
	SetDryRun(dryRun bool)
	SetMaxConcurrent(n int)
	Active(ctx context.Context) ([]executor.ActiveMigration, error)
	TaskLog(ctx context.Context, id uint64) ([]pve.TaskLogLine, error)
}

var _ Executor = (*executor.Executor)(nil)

// Settings are the reloadable parts of the configuration.
type Settings struct {
	Gates     policy.Gates
	Placement placement.Policy
	// APIToken guards mutating endpoints; WebhookToken the webhook. Empty tokens refuse every request.
	APIToken, WebhookToken string
	// PlanTTL (default 1h), MaxBodyBytes (default 1 MiB) and Retention (default 90 days) take their defaults
	// when zero.
	PlanTTL      time.Duration
	MaxBodyBytes int64
	// Retention is how long the store keeps final plans and journal entries after they ended. The config
	// validates it to cover the rollback window and the failure cooldown, whose gates read the journal.
	Retention time.Duration
}

// Options build a Server.
type Options struct {
	Planner  Planner
	Executor Executor
	Store    *store.Store
	Settings Settings
	Logger   log.Logger
	// Registry receives the balancer's metrics and is served on /metrics; nil means a fresh one.
	Registry *prometheus.Registry
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// QueueSize bounds the distinct planning requests waiting (default 256); further ones are dropped and
	// counted.
	QueueSize int
	// Departures adds Prometheus' placement history to the journal for the rollback window; nil uses the
	// journal only.
	Departures DepartureSource
	// MeasureAfter is how long after a plan executed its realised gain is measured (default 15m, the
	// planner's current window; negative disables).
	MeasureAfter time.Duration
	// PlanningInterval queues a cluster-wide rebalance plan this often; 0 plans only on alerts and requests.
	PlanningInterval time.Duration
	// Reload re-reads the configuration; nil disables /-/reload.
	Reload func(ctx context.Context) (Settings, error)
}

// Server is the balancer's HTTP API and its background workers.
type Server struct {
	planner  Planner
	exec     Executor
	store    *store.Store
	logger   log.Logger
	now      func() time.Time
	registry *prometheus.Registry
	metrics  *metrics
	settings atomic.Pointer[Settings]
	queue    *requestQueue
	dedupe   *dedupeCache
	reloader *reloader
	router   *mux.Router
	interval time.Duration
	depart   DepartureSource
	// measureAfter delays gain measurements; stop ends the waiting ones when Run returns.
	measureAfter time.Duration
	stop         chan struct{}

	// running tracks goroutines that run moves; executing counts plans whose moves are running.
	running   sync.WaitGroup
	executing atomic.Int64

	// mu guards the fields below. alertPlans maps an alert fingerprint to the plan its firing created;
	// planAlerts is the reverse, the alerts still firing for a plan: when the last resolves, the plan is
	// withdrawn. planning holds the fingerprints of the request being planned, resolvedEarly those of them that
	// resolved meanwhile. lastRun is the last planning run.
	mu            sync.Mutex
	alertPlans    map[string]string
	planAlerts    map[string]map[string]bool
	planning      map[string]bool
	resolvedEarly map[string]bool
	lastRun       *decisionsReport
}

// New builds a Server; Run starts its workers.
func New(o Options) (*Server, error) {
	if o.Planner == nil || o.Executor == nil || o.Store == nil {
		return nil, errors.New("server: planner, executor and store are required")
	}
	if o.Logger == nil {
		o.Logger = log.NewNopLogger()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 256
	}
	s := &Server{
		planner: o.Planner, exec: o.Executor, store: o.Store, logger: o.Logger, now: o.Now, registry: o.Registry,
		queue: newRequestQueue(o.QueueSize), dedupe: newDedupeCache(dedupeFor, maxDeliveries), alertPlans: map[string]string{},
		planAlerts: map[string]map[string]bool{}, planning: map[string]bool{}, resolvedEarly: map[string]bool{}, interval: o.PlanningInterval,
		depart: o.Departures, measureAfter: o.MeasureAfter, stop: make(chan struct{}),
	}
	if s.measureAfter == 0 {
		s.measureAfter = 15 * time.Minute
	}
	s.metrics = newMetrics(o.Registry)
	s.applySettings(o.Settings)
	s.reloader = newReloader(o.Reload, s.applySettings, s.metrics, o.Logger, o.Now)
	s.router = s.routes()
	return s, nil
}

func (s *Server) current() *Settings { return s.settings.Load() }

// Defaults of Settings fields left zero.
const (
	DefaultMaxBodyBytes = 1 << 20
	DefaultPlanTTL      = time.Hour
	DefaultRetention    = 90 * 24 * time.Hour
)

func (s *Server) applySettings(st Settings) {
	if st.MaxBodyBytes <= 0 {
		st.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if st.PlanTTL <= 0 {
		st.PlanTTL = DefaultPlanTTL
	}
	if st.Retention <= 0 {
		st.Retention = DefaultRetention
	}
	if st.Gates.Mode == "" {
		st.Gates.Mode = policy.ModeDryRun // the safe default, whatever the caller forgot
	}
	s.exec.SetDryRun(st.Gates.Mode == policy.ModeDryRun)
	s.exec.SetMaxConcurrent(st.Gates.MaxConcurrent)
	s.settings.Store(&st)
}

// Handler is the HTTP API.
func (s *Server) Handler() http.Handler { return s.router }

// Reload runs one reload through the reload goroutine (SIGHUP calls this) and returns its error.
func (s *Server) Reload(ctx context.Context) error { return s.reloader.reload(ctx) }

// Run starts the planning worker, the reload goroutine and the plan expiry sweeper; it returns when ctx ends
// and every started migration has been handed back.
func (s *Server) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { s.reloader.run(ctx) })
	wg.Go(func() { s.planWorker(ctx) })
	wg.Go(func() {
		t := time.NewTicker(30 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				s.sweep(ctx)
			}
		}
	})
	if s.interval > 0 {
		wg.Go(func() {
			t := time.NewTicker(s.interval)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					if !s.queue.add(planKey{Action: placement.ActionRebalance}, "schedule", "") {
						s.metrics.queueDropped.Inc()
					}
				}
			}
		})
	}
	if err := s.refreshGauges(ctx); err != nil {
		level.Warn(s.logger).Log("msg", "reading the store for metrics", "err", err)
	}
	wg.Wait()
	close(s.stop)
	s.running.Wait()
}

// sweep is the periodic sweep: it expires plans past their TTL and removes final records older than the
// retention.
func (s *Server) sweep(ctx context.Context) { s.sweepStore(ctx, s.current().Retention) }

// expirePlans expires plans past their TTL before a request reads plans. Removing old records is left to the
// periodic sweep: it scans the whole journal, which a GET need not wait for.
func (s *Server) expirePlans(ctx context.Context) { s.sweepStore(ctx, 0) }

// sweepStore sweeps the store, removing final records older than retention (none when it is 0). It waits while
// a plan executes: the store would expire an approved plan whose migrations outlive its TTL, and its outcome
// would be lost.
func (s *Server) sweepStore(ctx context.Context, retention time.Duration) {
	if s.executing.Load() > 0 {
		return
	}
	res, err := s.store.Sweep(ctx, s.now(), retention)
	if err != nil {
		level.Error(s.logger).Log("msg", "sweeping the store", "err", err)
		return
	}
	if len(res.ExpiredPlans) > 0 {
		level.Info(s.logger).Log("msg", "plans expired", "count", len(res.ExpiredPlans))
	}
	if res.PlansRemoved > 0 || res.JournalRemoved > 0 {
		s.metrics.recordsRemoved.WithLabelValues(removedPlan).Add(float64(res.PlansRemoved))
		s.metrics.recordsRemoved.WithLabelValues(removedJournal).Add(float64(res.JournalRemoved))
		level.Info(s.logger).Log("msg", "removed records past the retention", "retention", model.Duration(retention),
			"plans", res.PlansRemoved, "approvals", res.ApprovalsRemoved, "journal_entries", res.JournalRemoved)
	}
	if len(res.ExpiredPlans) > 0 || res.PlansRemoved > 0 {
		s.refreshPlanGauge(ctx)
	}
}

func (s *Server) routes() *mux.Router {
	r := mux.NewRouter()
	api := r.PathPrefix("/api/v1").Subrouter()
	api.Handle("/alerts", s.webhookAuth(http.HandlerFunc(s.handleAlerts))).Methods(http.MethodPost)
	api.HandleFunc("/plans", s.handlePlans).Methods(http.MethodGet)
	api.HandleFunc("/plans/{id}", s.handlePlan).Methods(http.MethodGet)
	api.Handle("/plans/{id}/approve", s.auth(http.HandlerFunc(s.handleApprove))).Methods(http.MethodPost)
	api.Handle("/plans/{id}/reject", s.auth(http.HandlerFunc(s.handleReject))).Methods(http.MethodPost)
	api.Handle("/nodes/{node}/maintenance", s.auth(http.HandlerFunc(s.handleSetMaintenance))).Methods(http.MethodPut)
	api.Handle("/nodes/{node}/maintenance", s.auth(http.HandlerFunc(s.handleClearMaintenance))).Methods(http.MethodDelete)
	api.HandleFunc("/nodes/{node}/evacuation", s.handleEvacuationPreview).Methods(http.MethodGet)
	api.Handle("/nodes/{node}/evacuation", s.auth(http.HandlerFunc(s.handleEvacuation))).Methods(http.MethodPost)
	api.HandleFunc("/migrations", s.handleMigrations).Methods(http.MethodGet)
	api.HandleFunc("/migrations/active", s.handleActive).Methods(http.MethodGet)
	api.HandleFunc("/migrations/{id:[0-9]+}/log", s.handleMigrationLog).Methods(http.MethodGet)
	api.HandleFunc("/decisions", s.handleDecisions).Methods(http.MethodGet)
	r.Handle("/metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{}))
	r.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "OK") })
	r.HandleFunc("/-/ready", s.handleReady)
	r.Handle("/-/reload", s.auth(http.HandlerFunc(s.handleReload))).Methods(http.MethodPost)
	r.Use(s.logRequests)
	return r
}

// logRequests logs method, path and status only: headers (Authorization) and bodies never reach a log line.
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		start := time.Now()
		next.ServeHTTP(rec, r)
		level.Debug(s.logger).Log("msg", "request", "method", r.Method, "path", r.URL.Path, "status", rec.status,
			"duration", time.Since(start))
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// bearer extracts the token of an "Authorization: Bearer <token>" header.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimSpace(tok), true
}

// tokenMatches compares in constant time; an empty configured token matches nothing.
func tokenMatches(got, want string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

func (s *Server) auth(next http.Handler) http.Handler {
	return s.authWith(func() string { return s.current().APIToken }, next)
}

// webhookAuth accepts the webhook token (what Alertmanager's http_config.authorization sends) or the API token.
func (s *Server) webhookAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := bearer(r)
		st := s.current()
		if !ok || !(tokenMatches(tok, st.WebhookToken) || tokenMatches(tok, st.APIToken)) {
			s.metrics.webhookRequests.WithLabelValues("unauthorized").Inc()
			unauthorized(w)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) authWith(token func() string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := bearer(r)
		if !ok || !tokenMatches(tok, token()) {
			unauthorized(w)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="pb-balancer"`)
	writeError(w, http.StatusUnauthorized, "missing or wrong bearer token")
}

// apiError is every error body.
type apiError struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, format string, args ...any) {
	writeJSON(w, code, apiError{Error: fmt.Sprintf(format, args...)})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away; nothing to do
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	if err := s.planner.Ready(ctx); err != nil {
		writeError(w, http.StatusServiceUnavailable, "not ready: %v", err)
		return
	}
	fmt.Fprintln(w, "OK")
}

func (s *Server) handleReload(w http.ResponseWriter, r *http.Request) {
	if err := s.reloader.reload(r.Context()); err != nil {
		writeError(w, http.StatusInternalServerError, "reload failed, the previous configuration stays: %v", err)
		return
	}
	fmt.Fprintln(w, "OK")
}
