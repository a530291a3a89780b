package server

import (
	"context"
	"io"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"

	"github.com/proxbalance/proxbalance/internal/executor"
	"github.com/proxbalance/proxbalance/internal/placement"
	"github.com/proxbalance/proxbalance/internal/policy"
	"github.com/proxbalance/proxbalance/internal/promtest"
	"github.com/proxbalance/proxbalance/internal/pve"
	"github.com/proxbalance/proxbalance/internal/store"
)

const (
	apiToken     = "api-token-5f2c"
	webhookToken = "example-webhook-token"
)

var testNow = time.Date(2026, 11, 27, 4, 0, 0, 0, time.UTC)

// fakePlanner plans from a fixed set of moves per action and counts its calls.
type fakePlanner struct {
	mu    sync.Mutex
	calls int
	moves map[placement.Action][]placement.Move
	// seen remembers every guest ever moved and its source: a fresh plan that no longer moves it still
	// considers it (a skipped decision), as the real planner does.
	seen    map[string]string
	quorate bool
	tags    map[string][]string
	// before and after are the cluster metrics of every plan.
	before, after placement.ClusterMetrics
	// idSuffix changes the plan IDs, as changed inputs do.
	idSuffix string
	err      error
	ready    error
	block    chan struct{} // when set, Plan waits on it (to let a storm pile up)
}

func (f *fakePlanner) Plan(_ context.Context, req placement.Request, _ map[string]bool, _ placement.Policy) (Planning, error) {
	if f.block != nil {
		<-f.block
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return Planning{}, f.err
	}
	moves := f.moves[req.Action]
	p := placement.Plan{ID: string(req.Action) + "-" + req.Node + f.idSuffix, Action: req.Action, Node: req.Node, Trigger: req.Trigger, At: testNow, Moves: moves,
		Before: f.before, After: f.after}
	moved := map[string]bool{}
	for _, m := range moves {
		moved[m.Guest] = true
		p.Decisions = append(p.Decisions, placement.Decision{Guest: m.Guest, Node: m.Source, Outcome: placement.OutcomeSelected})
	}
	for g, node := range f.seen {
		if !moved[g] {
			p.Decisions = append(p.Decisions, placement.Decision{Guest: g, Node: node, Outcome: placement.OutcomeSkipped, Summary: "below min improvement"})
		}
	}
	return Planning{Plan: p, Quorate: f.quorate, Tags: f.tags}, nil
}

func (f *fakePlanner) Ready(context.Context) error { return f.ready }

func (f *fakePlanner) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func (f *fakePlanner) setMoves(a placement.Action, ms ...placement.Move) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.moves[a] = ms
	for _, m := range ms {
		if _, ok := f.seen[m.Guest]; !ok {
			f.seen[m.Guest] = m.Source
		}
	}
}

// fakeExecutor records requests and succeeds, or, in dry-run mode or for a dry-run request, records them as dry
// runs.
type fakeExecutor struct {
	mu     sync.Mutex
	reqs   []executor.Request // migrated
	dry    []executor.Request // recorded in dry-run mode
	dryRun bool
	// maxConcurrent is the last SetMaxConcurrent.
	maxConcurrent int
	// gate, when set, holds every Execute until it is closed (a long migration).
	gate chan struct{}
	// refuse makes the precheck refuse the moves of these guests, for the reason given.
	refuse map[string]executor.Reason
}

func (f *fakeExecutor) Execute(_ context.Context, req executor.Request) executor.Result {
	if f.gate != nil {
		<-f.gate
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dryRun || req.DryRun {
		f.dry = append(f.dry, req)
		return executor.Result{Request: req, Outcome: executor.OutcomeDryRun}
	}
	if reason, ok := f.refuse[req.Move.Guest]; ok {
		return executor.Result{Request: req, Outcome: executor.OutcomeRefused, Reason: reason}
	}
	f.reqs = append(f.reqs, req)
	return executor.Result{Request: req, Outcome: executor.OutcomeSucceeded}
}

func (f *fakeExecutor) SetDryRun(dryRun bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dryRun = dryRun
}

func (f *fakeExecutor) SetMaxConcurrent(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.maxConcurrent = n
}

func (f *fakeExecutor) concurrencyCap() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.maxConcurrent
}

func (f *fakeExecutor) Active(context.Context) ([]executor.ActiveMigration, error) { return nil, nil }

func (f *fakeExecutor) TaskLog(context.Context, uint64) ([]pve.TaskLogLine, error) {
	return nil, store.ErrNotFound
}

func (f *fakeExecutor) dryRuns() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.dry)
}

func (f *fakeExecutor) requests() []executor.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]executor.Request(nil), f.reqs...)
}

func mv(guest, src, dst string) placement.Move {
	return placement.Move{Guest: guest, Source: src, Target: dst, Online: true, Confidence: 90, Improvement: 30}
}

func settings(mode policy.Mode) Settings {
	g := policy.DefaultGates()
	g.Mode = mode
	g.MaxConcurrent = 5
	return Settings{Gates: g, Placement: placement.DefaultPolicy(), APIToken: apiToken, WebhookToken: webhookToken,
		PlanTTL: time.Hour, MaxBodyBytes: 1 << 20}
}

type harness struct {
	srv     *Server
	planner *fakePlanner
	exec    *fakeExecutor
	store   *store.Store
	logs    *promtest.SyncBuffer
	cancel  context.CancelFunc
}

func newHarness(t testing.TB, st Settings, mut ...func(*Options)) *harness {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "state.db"), store.Options{Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	h := &harness{
		planner: &fakePlanner{quorate: true, moves: map[placement.Action][]placement.Move{}, seen: map[string]string{}},
		exec:    &fakeExecutor{}, store: db, logs: &promtest.SyncBuffer{},
	}
	o := Options{Planner: h.planner, Executor: h.exec, Store: db, Settings: st, Now: func() time.Time { return testNow },
		Logger: log.NewLogfmtLogger(h.logs), MeasureAfter: -1}
	for _, m := range mut {
		m(&o)
	}
	if h.srv, err = New(o); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	done := make(chan struct{})
	go func() { h.srv.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return h
}

// do sends a request with an optional bearer token and returns status and body.
func (h *harness) do(t *testing.T, method, path, token, body string) (int, string) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, r)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.srv.Handler().ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (h *harness) plans(t *testing.T) []store.PlanRecord {
	t.Helper()
	recs, err := h.store.Plans(context.Background(), store.PlanFilter{})
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// alertJSON renders a v4 payload of n alerts sharing labels, with distinct fingerprints from fpStart.
func alertJSON(status string, n, fpStart int, labels string) string {
	var b strings.Builder
	b.WriteString(`{"version":"4","status":"` + status + `","receiver":"balancer","groupKey":"{}","alerts":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"status":"` + status + `","labels":` + labels + `,"startsAt":"2026-11-27T03:50:23Z","fingerprint":"fp` + strconv.Itoa(fpStart+i) + `"}`)
	}
	b.WriteString(`]}`)
	return b.String()
}
