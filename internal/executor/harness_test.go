package executor

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/proxbalance/proxbalance/internal/placement"
	"github.com/proxbalance/proxbalance/internal/pve"
	"github.com/proxbalance/proxbalance/internal/pvesim"
	"github.com/proxbalance/proxbalance/internal/pvesim/pvesimtest"
	"github.com/proxbalance/proxbalance/internal/store"
)

// countingPVE counts migrate POSTs on their way to the simulator.
type countingPVE struct {
	PVE
	migrates atomic.Int32
}

func (c *countingPVE) Migrate(ctx context.Context, g pve.GuestRef, target string, o pve.MigrateOptions) (string, error) {
	c.migrates.Add(1)
	return c.PVE.Migrate(ctx, g, target, o)
}

type harness struct {
	t     *testing.T
	srv   *pvesimtest.Server
	api   *countingPVE
	store *store.Store
	path  string
	exec  *Executor
	cfg   Config
}

type harnessOption func(*harnessConfig)

type harnessConfig struct {
	exec   func(*Config)
	scnMut func(*pvesim.Scenario)
	wrap   func(PVE) PVE
}

func withConfig(f func(*Config)) harnessOption {
	return func(c *harnessConfig) { c.exec = f }
}

// withScenario changes the built-in default scenario before the simulator starts.
func withScenario(f func(*pvesim.Scenario)) harnessOption {
	return func(c *harnessConfig) { c.scnMut = f }
}

// withWrap puts a test double between the executor and the PVE client.
func withWrap(f func(PVE) PVE) harnessOption { return func(c *harnessConfig) { c.wrap = f } }

func newHarness(t *testing.T, opts ...harnessOption) *harness {
	t.Helper()
	var hc harnessConfig
	for _, o := range opts {
		o(&hc)
	}
	simOpts := []pvesimtest.Option{pvesimtest.WithPlainHTTP()}
	if hc.scnMut != nil {
		scn, err := pvesim.Builtin("default")
		if err != nil {
			t.Fatal(err)
		}
		cp := *scn
		cp.Guests = append([]pvesim.GuestSpec(nil), scn.Guests...)
		hc.scnMut(&cp)
		if err := cp.Revalidate(); err != nil {
			t.Fatal(err)
		}
		simOpts = append(simOpts, pvesimtest.WithScenario(&cp))
	}
	srv := pvesimtest.Start(t, simOpts...)
	client, err := pve.New(pve.Config{URL: srv.URL, TokenID: srv.TokenID, TokenSecret: pve.Secret(srv.TokenSecret), Retries: -1},
		pve.WithRetryBackoff(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	var api PVE = client
	if hc.wrap != nil {
		api = hc.wrap(api)
	}
	h := &harness{t: t, srv: srv, api: &countingPVE{PVE: api}, path: t.TempDir() + "/state.db"}
	h.store = h.openStore()
	h.cfg = Config{
		PVE: h.api, Store: h.store, MaxConcurrent: 2, PollInterval: time.Millisecond,
		RetryBackoff: time.Millisecond, HAHandoffTimeout: 10 * time.Second, Now: srv.Clock.Now,
	}
	if hc.exec != nil {
		hc.exec(&h.cfg)
	}
	h.exec = h.newExecutor()
	return h
}

func (h *harness) openStore() *store.Store {
	s, err := store.Open(h.path, store.Options{Now: h.srv.Clock.Now})
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { _ = s.Close() })
	return s
}

func (h *harness) newExecutor() *Executor {
	e, err := New(h.cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	return e
}

// restart simulates a balancer restart: a new store handle on the same file and a new executor.
func (h *harness) restart() {
	_ = h.store.Close()
	h.store = h.openStore()
	h.cfg.Store = h.store
	h.exec = h.newExecutor()
}

// drive runs fn while moving the simulated clock forward, so that migration tasks progress and end.
func drive[T any](h *harness, fn func() T) T {
	h.t.Helper()
	done := make(chan T, 1)
	go func() { done <- fn() }()
	deadline := time.After(60 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case v := <-done:
			return v
		case <-tick.C:
			h.srv.Clock.Advance(2 * time.Second)
		case <-deadline:
			h.t.Fatal("timed out driving the simulated clock")
		}
	}
}

func (h *harness) execute(req Request) Result {
	h.t.Helper()
	return drive(h, func() Result { return h.exec.Execute(context.Background(), req) })
}

func (h *harness) guestNode(vmid int) string {
	h.t.Helper()
	node, _, ok := h.srv.Sim.GuestNode(vmid)
	if !ok {
		h.t.Fatalf("guest %d not in the simulator", vmid)
	}
	return node
}

// migrationTasks counts migration tasks the simulator has run or runs (seeded history has none).
func (h *harness) migrationTasks() int {
	n := 0
	for _, t := range h.srv.Sim.State().Tasks {
		for _, typ := range []string{":qmigrate:", ":vzmigrate:", ":hamigrate:"} {
			if strings.Contains(t.UPID, typ) {
				n++
			}
		}
	}
	return n
}

func (h *harness) setFaults(f pvesim.Faults) {
	h.t.Helper()
	if err := h.srv.Sim.SetFaults(f); err != nil {
		h.t.Fatal(err)
	}
}

// request builds a Request for moving guest from source to target, with mutators.
func request(guest, source, target string, mut ...func(*Request)) Request {
	r := Request{
		PlanID: "plan-1", MoveIndex: 0, Trigger: "alert:NodeCPUHigh pve1", Approver: "alice",
		Move: placement.Move{
			Guest: guest, GuestName: "g", Source: source, Target: target, Online: true, Improvement: 7.5,
			TargetAfter: placement.Score{Total: 42},
		},
	}
	for _, m := range mut {
		m(&r)
	}
	return r
}

func planMove(plan string, idx int) func(*Request) {
	return func(r *Request) { r.PlanID, r.MoveIndex = plan, idx }
}

// waitFor polls cond (real time) until it holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func stageNames(recs []StageRecord) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.Stage)
	}
	return out
}
