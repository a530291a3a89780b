package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/proxbalance/proxbalance/internal/executor"
	"github.com/proxbalance/proxbalance/internal/history"
	"github.com/proxbalance/proxbalance/internal/placement"
	"github.com/proxbalance/proxbalance/internal/policy"
	"github.com/proxbalance/proxbalance/internal/pve"
	"github.com/proxbalance/proxbalance/internal/store"
)

// mutating lists every endpoint that changes state, with a body that would succeed.
var mutating = []struct{ method, path, body string }{
	{http.MethodPost, "/api/v1/plans/rebalance-/approve", ""},
	{http.MethodPost, "/api/v1/plans/rebalance-/reject", ""},
	{http.MethodPut, "/api/v1/nodes/pve1/maintenance", `{"reason":"kernel"}`},
	{http.MethodDelete, "/api/v1/nodes/pve1/maintenance", ""},
	{http.MethodPost, "/api/v1/nodes/pve1/evacuation", ""},
	{http.MethodPost, "/-/reload", ""},
	{http.MethodPost, "/api/v1/alerts", `{"version":"4","alerts":[]}`},
}

func TestMutatingEndpointsNeedTheToken(t *testing.T) {
	for _, ep := range mutating {
		t.Run(ep.method+" "+ep.path, func(t *testing.T) {
			h := newHarness(t, settings(policy.ModeDryRun), func(o *Options) {
				o.Reload = func(context.Context) (Settings, error) { return settings(policy.ModeDryRun), nil }
			})
			h.planner.setMoves(placement.ActionRebalance, mv("qemu/100", "pve1", "pve2"))
			if _, err := h.srv.makePlan(context.Background(), placement.Request{Action: placement.ActionRebalance, Trigger: "api"}, ""); err != nil {
				t.Fatal(err)
			}
			if ep.method == http.MethodDelete {
				if err := h.store.SetMaintenance(context.Background(), store.Maintenance{Node: "pve1", By: "t", Since: testNow}); err != nil {
					t.Fatal(err)
				}
			}
			for _, c := range []struct {
				name, header string
			}{{"no header", ""}, {"wrong token", "Bearer nope"}, {"wrong scheme", "Basic " + apiToken}, {"empty bearer", "Bearer "}} {
				req := httptest.NewRequest(ep.method, ep.path, strings.NewReader(ep.body))
				if c.header != "" {
					req.Header.Set("Authorization", c.header)
				}
				rec := httptest.NewRecorder()
				h.srv.Handler().ServeHTTP(rec, req)
				if rec.Code != http.StatusUnauthorized || rec.Header().Get("WWW-Authenticate") == "" {
					t.Errorf("%s: status %d, want 401 with WWW-Authenticate", c.name, rec.Code)
				}
			}
			code, body := h.do(t, ep.method, ep.path, apiToken, ep.body)
			if code >= 300 {
				t.Errorf("right token: status %d %s", code, body)
			}
		})
	}
}

func TestWebhookTokenOnlyOpensTheWebhook(t *testing.T) {
	h := newHarness(t, settings(policy.ModeDryRun))
	if code, _ := h.do(t, http.MethodPost, "/api/v1/alerts", webhookToken, `{"version":"4"}`); code != http.StatusAccepted {
		t.Errorf("webhook with its token: %d", code)
	}
	if code, _ := h.do(t, http.MethodPut, "/api/v1/nodes/pve1/maintenance", webhookToken, ""); code != http.StatusUnauthorized {
		t.Errorf("maintenance with the webhook token: %d, want 401", code)
	}
}

func TestNoSecretInLogs(t *testing.T) {
	h := newHarness(t, settings(policy.ModeManual), func(o *Options) {
		o.Reload = func(context.Context) (Settings, error) {
			return Settings{}, errors.New("reading auth.token_file: permission denied")
		}
	})
	h.planner.setMoves(placement.ActionRelieve, mv("qemu/100", "pve2", "pve3"))
	for _, tok := range []string{apiToken, webhookToken, "wrong-guess-token"} {
		h.do(t, http.MethodPost, "/api/v1/alerts", tok, alertJSON("firing", 1, 7, `{"proxbalance_action":"relieve","node":"pve2"}`))
		h.do(t, http.MethodPut, "/api/v1/nodes/pve9/maintenance", tok, "")
		h.do(t, http.MethodPost, "/-/reload", tok, "")
	}
	waitFor(t, "a plan", func() bool { return len(h.plans(t)) == 1 })
	h.do(t, http.MethodPost, "/api/v1/plans/relieve-pve2/approve", apiToken, "")
	h.srv.running.Wait()
	logs := h.logs.String()
	if !strings.Contains(logs, "plan created") || !strings.Contains(logs, "reload failed") {
		t.Fatalf("the test did not exercise logging:\n%s", logs)
	}
	for _, secret := range []string{apiToken, webhookToken, "wrong-guess-token", "Bearer", "Authorization"} {
		if strings.Contains(logs, secret) {
			t.Errorf("a log line shows %q:\n%s", secret, logs)
		}
	}
}

func approve(t *testing.T, h *harness, id, body string) (int, approveResponse) {
	t.Helper()
	code, resp := h.do(t, http.MethodPost, "/api/v1/plans/"+id+"/approve", apiToken, body)
	var out approveResponse
	if code == http.StatusAccepted || code == http.StatusConflict {
		if err := json.Unmarshal([]byte(resp), &out); err != nil {
			t.Fatalf("%v: %s", err, resp)
		}
	} else {
		t.Logf("approve: %d %s", code, resp)
	}
	h.srv.running.Wait()
	return code, out
}

func outcomes(vs []MoveVerdict) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.Outcome+":"+strings.Join(v.Reasons, ","))
	}
	return out
}

func TestApprove(t *testing.T) {
	moves := []placement.Move{mv("qemu/100", "pve1", "pve2"), mv("qemu/101", "pve1", "pve3"), mv("qemu/102", "pve1", "pve3")}
	cases := []struct {
		name     string
		mode     policy.Mode
		body     string
		fresh    []placement.Move // the planner's answer at approval; nil: same as the plan
		quorate  bool
		code     int
		want     []string
		executed int
		state    store.PlanState
	}{
		{"dry-run moves nothing", policy.ModeDryRun, "", nil, true, http.StatusAccepted,
			[]string{"dry-run:DryRun", "dry-run:DryRun", "dry-run:DryRun"}, 0, store.PlanApproved},
		{"manual runs every move", policy.ModeManual, "", nil, true, http.StatusAccepted,
			[]string{"started:", "started:", "started:"}, 3, store.PlanExecuted},
		{"a subset", policy.ModeManual, `{"moves":[2],"by":"alice"}`, nil, true, http.StatusAccepted,
			[]string{"started:"}, 1, store.PlanExecuted},
		{"a move no longer proposed is refused", policy.ModeManual, "", moves[:1], true, http.StatusAccepted,
			[]string{"started:", "refused:NoLongerProposed", "refused:NoLongerProposed"}, 1, store.PlanPartiallyExecuted},
		{"nothing can run: the plan stays pending", policy.ModeManual, `{"moves":[0]}`, []placement.Move{mv("qemu/100", "pve4", "pve2")}, true,
			http.StatusConflict, []string{"refused:GuestMoved"}, 0, store.PlanPending},
		{"gates still apply", policy.ModeManual, "", nil, false, http.StatusConflict,
			[]string{"held:NoQuorum", "held:NoQuorum", "held:NoQuorum"}, 0, store.PlanPending},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, settings(c.mode))
			h.planner.setMoves(placement.ActionRebalance, moves...)
			rec, err := h.srv.makePlan(context.Background(), placement.Request{Action: placement.ActionRebalance, Trigger: "api"}, "")
			if err != nil {
				t.Fatal(err)
			}
			if c.fresh != nil {
				h.planner.setMoves(placement.ActionRebalance, c.fresh...)
			}
			h.planner.quorate = c.quorate
			code, resp := approve(t, h, rec.ID(), c.body)
			if code != c.code {
				t.Fatalf("status %d, want %d", code, c.code)
			}
			if got := outcomes(resp.Moves); strings.Join(got, " ") != strings.Join(c.want, " ") {
				t.Errorf("verdicts = %v, want %v", got, c.want)
			}
			if n := len(h.exec.requests()); n != c.executed {
				t.Errorf("executed %d moves, want %d", n, c.executed)
			}
			if wantDry := strings.Count(strings.Join(c.want, " "), "dry-run:"); h.exec.dryRuns() != wantDry {
				t.Errorf("%d dry runs reached the executor, want %d (dry runs take the real path)", h.exec.dryRuns(), wantDry)
			}
			after, err := h.store.Plan(context.Background(), rec.ID())
			if err != nil {
				t.Fatal(err)
			}
			if after.State != c.state {
				t.Errorf("plan state %s (%s), want %s", after.State, after.StateReason, c.state)
			}
		})
	}
}

func TestApproveRefusals(t *testing.T) {
	h := newHarness(t, settings(policy.ModeManual))
	h.planner.setMoves(placement.ActionRebalance, mv("qemu/100", "pve1", "pve2"))
	rec, err := h.srv.makePlan(context.Background(), placement.Request{Action: placement.ActionRebalance, Trigger: "api"}, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, path, body string
		code             int
		msg              string
	}{
		{"unknown plan", "/api/v1/plans/nope/approve", "", http.StatusNotFound, "plan nope: not found"},
		{"bad index", "/api/v1/plans/" + rec.ID() + "/approve", `{"moves":[3]}`, http.StatusBadRequest, "move index 3: the plan has 1 moves"},
		{"bad body", "/api/v1/plans/" + rec.ID() + "/approve", `{"moves":`, http.StatusBadRequest, "approve body"},
	} {
		code, body := h.do(t, http.MethodPost, c.path, apiToken, c.body)
		if code != c.code || !strings.Contains(body, c.msg) {
			t.Errorf("%s: %d %s, want %d %q", c.name, code, body, c.code, c.msg)
		}
	}
	if code, body := h.do(t, http.MethodPost, "/api/v1/plans/"+rec.ID()+"/reject", apiToken, `{"by":"bob","reason":"not now"}`); code != http.StatusOK || !strings.Contains(body, "rejected by bob: not now") {
		t.Errorf("reject: %d %s", code, body)
	}
	if code, body := h.do(t, http.MethodPost, "/api/v1/plans/"+rec.ID()+"/approve", apiToken, ""); code != http.StatusConflict || !strings.Contains(body, "is rejected") {
		t.Errorf("approving a rejected plan: %d %s", code, body)
	}
}

func TestPlanTTL(t *testing.T) {
	now := testNow
	h := newHarness(t, settings(policy.ModeManual), func(o *Options) { o.Now = func() time.Time { return now } })
	h.planner.setMoves(placement.ActionRebalance, mv("qemu/100", "pve1", "pve2"))
	rec, err := h.srv.makePlan(context.Background(), placement.Request{Action: placement.ActionRebalance, Trigger: "api"}, "")
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Hour + time.Second) // the handlers read now from the request goroutine only
	code, body := h.do(t, http.MethodPost, "/api/v1/plans/"+rec.ID()+"/approve", apiToken, "")
	if code != http.StatusConflict || !strings.Contains(body, "is expired") {
		t.Errorf("approving an expired plan: %d %s", code, body)
	}
	if code, body := h.do(t, http.MethodGet, "/api/v1/plans?state=expired", "", ""); code != http.StatusOK || !strings.Contains(body, rec.ID()) {
		t.Errorf("list expired: %d %s", code, body)
	}
}

func TestMaintenance(t *testing.T) {
	h := newHarness(t, settings(policy.ModeManual))
	if code, body := h.do(t, http.MethodDelete, "/api/v1/nodes/pve1/maintenance", apiToken, ""); code != http.StatusNotFound {
		t.Errorf("clearing an unflagged node: %d %s", code, body)
	}
	if code, body := h.do(t, http.MethodPut, "/api/v1/nodes/pve1/maintenance", apiToken, `{"by":"alice","reason":"BIOS"}`); code != http.StatusOK {
		t.Fatalf("%d %s", code, body)
	}
	_, metrics := h.do(t, http.MethodGet, "/metrics", "", "")
	if !strings.Contains(metrics, `proxbalance_node_maintenance{node="pve1"} 1`) {
		t.Errorf("metrics lack the maintenance flag:\n%s", grepLines(metrics, "maintenance"))
	}
	h.planner.setMoves(placement.ActionEvacuate, mv("qemu/100", "pve1", "pve2"), mv("lxc/200", "pve1", "pve3"))
	code, body := h.do(t, http.MethodGet, "/api/v1/nodes/pve1/evacuation", "", "")
	if code != http.StatusOK || !strings.Contains(body, `"trigger": "maintenance:pve1"`) || !strings.Contains(body, "lxc/200") {
		t.Errorf("evacuation: %d %s", code, body)
	}
	if code, _ := h.do(t, http.MethodDelete, "/api/v1/nodes/pve1/maintenance", apiToken, ""); code != http.StatusOK {
		t.Errorf("clear: %d", code)
	}
	_, metrics = h.do(t, http.MethodGet, "/metrics", "", "")
	if !strings.Contains(metrics, `proxbalance_node_maintenance{node="pve1"} 0`) {
		t.Errorf("metrics after clearing:\n%s", grepLines(metrics, "maintenance"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestReload(t *testing.T) {
	next := settings(policy.ModeManual)
	var loadErr error
	h := newHarness(t, settings(policy.ModeDryRun), func(o *Options) {
		o.Reload = func(context.Context) (Settings, error) { return next, loadErr }
	})
	next.APIToken = "rotated-token"
	next.Gates.MaxConcurrent = 3
	if got := h.exec.concurrencyCap(); got != 5 {
		t.Errorf("executor max concurrent at start = %d, want the configured 5", got)
	}
	if code, body := h.do(t, http.MethodPost, "/-/reload", apiToken, ""); code != http.StatusOK {
		t.Fatalf("good reload: %d %s", code, body)
	}
	if h.srv.current().Gates.Mode != policy.ModeManual {
		t.Error("the new mode is not live")
	}
	if got := h.exec.concurrencyCap(); got != 3 {
		t.Errorf("executor max concurrent after the reload = %d, want 3", got)
	}
	if code, _ := h.do(t, http.MethodPut, "/api/v1/nodes/pve1/maintenance", apiToken, ""); code != http.StatusUnauthorized {
		t.Errorf("the old token still works after rotation: %d", code)
	}
	loadErr = errors.New("line 3: mode: \"yolo\": want dry-run, manual or auto")
	code, body := h.do(t, http.MethodPost, "/-/reload", "rotated-token", "")
	if code != http.StatusInternalServerError || !strings.Contains(body, "the previous configuration stays") || !strings.Contains(body, "yolo") {
		t.Errorf("bad reload: %d %s", code, body)
	}
	if h.srv.current().APIToken != "rotated-token" {
		t.Error("a bad reload replaced the configuration")
	}
	_, metrics := h.do(t, http.MethodGet, "/metrics", "", "")
	if !strings.Contains(metrics, "proxbalance_config_last_reload_successful 0") {
		t.Errorf("reload gauge:\n%s", grepLines(metrics, "reload"))
	}
	if err := h.srv.Reload(context.Background()); err == nil { // the SIGHUP path
		t.Error("Reload: want the load error")
	}
}

func TestHealthAndReadiness(t *testing.T) {
	h := newHarness(t, settings(policy.ModeDryRun))
	if code, _ := h.do(t, http.MethodGet, "/-/healthy", "", ""); code != http.StatusOK {
		t.Errorf("healthy: %d", code)
	}
	if code, _ := h.do(t, http.MethodGet, "/-/ready", "", ""); code != http.StatusOK {
		t.Errorf("ready: %d", code)
	}
	h.planner.ready = errors.New("Prometheus: connection refused")
	if code, body := h.do(t, http.MethodGet, "/-/ready", "", ""); code != http.StatusServiceUnavailable || !strings.Contains(body, "connection refused") {
		t.Errorf("not ready: %d %s", code, body)
	}
}

func TestDecisionsAndMetrics(t *testing.T) {
	h := newHarness(t, settings(policy.ModeManual))
	if code, _ := h.do(t, http.MethodGet, "/api/v1/decisions", "", ""); code != http.StatusNotFound {
		t.Errorf("decisions before any run: %d", code)
	}
	h.planner.setMoves(placement.ActionRebalance, mv("qemu/100", "pve1", "pve2"))
	if _, err := h.srv.makePlan(context.Background(), placement.Request{Action: placement.ActionRebalance, Trigger: "schedule"}, ""); err != nil {
		t.Fatal(err)
	}
	code, body := h.do(t, http.MethodGet, "/api/v1/decisions", "", "")
	if code != http.StatusOK || !strings.Contains(body, `"selected": 1`) {
		t.Errorf("decisions: %d %s", code, body)
	}
	_, metrics := h.do(t, http.MethodGet, "/metrics", "", "")
	for _, want := range []string{
		`proxbalance_plans{state="pending",trigger="schedule"} 1`,
		`proxbalance_plans_created_total{action="rebalance",trigger="schedule"} 1`,
		`proxbalance_decisions{outcome="selected"} 1`,
		`proxbalance_moves_total{outcome="held"} 0`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestAutoModeRunsWithinGates(t *testing.T) {
	st := settings(policy.ModeAuto)
	st.Gates.MaxPerRun = 2
	h := newHarness(t, st)
	h.planner.setMoves(placement.ActionRelieve, mv("qemu/100", "pve2", "pve3"), mv("qemu/101", "pve2", "pve3"), mv("qemu/102", "pve2", "pve1"))
	h.planner.mu.Lock()
	h.planner.tags = map[string][]string{"qemu/101": {"no-auto-migrate"}}
	h.planner.mu.Unlock()
	h.do(t, http.MethodPost, "/api/v1/alerts", webhookToken, alertJSON("firing", 1, 0, `{"proxbalance_action":"relieve","node":"pve2"}`))
	waitFor(t, "the plan to settle", func() bool {
		ps := h.plans(t)
		return len(ps) == 1 && ps[0].State.Final()
	})
	var got []string
	for _, r := range h.exec.requests() {
		got = append(got, r.Move.Guest+" by "+r.Approver)
	}
	if strings.Join(got, ", ") != "qemu/100 by auto, qemu/102 by auto" {
		t.Errorf("auto mode ran %v; want qemu/100 and qemu/102 (qemu/101 is tagged no-auto-migrate)", got)
	}
}

func TestScheduledPlanning(t *testing.T) {
	h := newHarness(t, settings(policy.ModeManual), func(o *Options) { o.PlanningInterval = 10 * time.Millisecond })
	h.planner.setMoves(placement.ActionRebalance, mv("qemu/100", "pve1", "pve2"))
	waitFor(t, "a scheduled plan", func() bool { return len(h.plans(t)) == 1 })
	if rec := h.plans(t)[0]; rec.Trigger != "schedule" || rec.Plan.Action != placement.ActionRebalance {
		t.Errorf("plan %s by %s", rec.Plan.Action, rec.Trigger)
	}
}

func TestGainMeasured(t *testing.T) {
	h := newHarness(t, settings(policy.ModeManual), func(o *Options) { o.MeasureAfter = time.Millisecond })
	h.planner.setMoves(placement.ActionRebalance, mv("qemu/100", "pve1", "pve2"))
	h.planner.before = placement.ClusterMetrics{MaxScore: 80}
	h.planner.after = placement.ClusterMetrics{MaxScore: 50}
	rec, err := h.srv.makePlan(context.Background(), placement.Request{Action: placement.ActionRebalance, Trigger: "api"}, "")
	if err != nil {
		t.Fatal(err)
	}
	// After the move the cluster measures 60 at its hottest node: 20 points realised of 30 predicted.
	h.planner.mu.Lock()
	h.planner.before = placement.ClusterMetrics{MaxScore: 60}
	h.planner.mu.Unlock()
	if code, _ := approve(t, h, rec.ID(), ""); code != http.StatusAccepted {
		t.Fatalf("approve: %d", code)
	}
	_, metrics := h.do(t, http.MethodGet, "/metrics", "", "")
	for _, want := range []string{
		`proxbalance_gain_points_total{kind="predicted"} 30`,
		`proxbalance_gain_points_total{kind="realised"} 20`,
		`proxbalance_last_plan_gain_points{kind="realised"} 20`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s:\n%s", want, grepLines(metrics, "gain"))
		}
	}
}

func TestNewerPlanSupersedesPending(t *testing.T) {
	h := newHarness(t, settings(policy.ModeManual))
	h.planner.setMoves(placement.ActionRelieve, mv("qemu/100", "pve2", "pve3"))
	labels := `{"alertname":"PVENodeCPUPressure","proxbalance_action":"relieve","node":"pve2"}`
	h.do(t, http.MethodPost, "/api/v1/alerts", webhookToken, alertJSON("firing", 1, 0, labels))
	waitFor(t, "the first plan", func() bool { return len(h.plans(t)) == 1 })
	first := h.plans(t)[0]
	// The cluster changed: the same alert group, re-fired with another alert, gets a different plan.
	h.planner.setMoves(placement.ActionRelieve, mv("qemu/101", "pve2", "pve1"))
	h.planner.mu.Lock()
	h.planner.idSuffix = "-v2"
	h.planner.mu.Unlock()
	h.do(t, http.MethodPost, "/api/v1/alerts", webhookToken, alertJSON("firing", 1, 1, labels))
	waitFor(t, "the second plan to supersede the first and take both alerts", func() bool {
		h.srv.mu.Lock()
		bound := len(h.srv.planAlerts["relieve-pve2-v2"]) == 2
		h.srv.mu.Unlock()
		return bound && len(h.plans(t)) == 2
	})
	old, err := h.store.Plan(context.Background(), first.ID())
	if err != nil {
		t.Fatal(err)
	}
	if old.State != store.PlanWithdrawn || !strings.Contains(old.StateReason, "superseded by relieve-pve2-v2") {
		t.Errorf("first plan %s (%s), want superseded", old.State, old.StateReason)
	}
	// Both alerts now belong to the new plan: it goes only when both resolved.
	h.do(t, http.MethodPost, "/api/v1/alerts", webhookToken, alertJSON("resolved", 1, 0, labels))
	if cur, _ := h.store.Plan(context.Background(), "relieve-pve2-v2"); cur.State != store.PlanPending {
		t.Errorf("new plan %s after one of two alerts resolved", cur.State)
	}
	h.do(t, http.MethodPost, "/api/v1/alerts", webhookToken, alertJSON("resolved", 1, 1, labels))
	waitFor(t, "the new plan to be withdrawn", func() bool {
		cur, _ := h.store.Plan(context.Background(), "relieve-pve2-v2")
		return cur.State == store.PlanWithdrawn
	})
}

func TestEmptyPlansAreNotStored(t *testing.T) {
	h := newHarness(t, settings(policy.ModeManual))
	code, body := h.do(t, http.MethodPost, "/api/v1/nodes/pve4/evacuation", apiToken, "")
	if code != http.StatusOK || !strings.Contains(body, `"state": ""`) {
		t.Errorf("empty evacuation: %d %s", code, body)
	}
	h.do(t, http.MethodPost, "/api/v1/alerts", webhookToken, alertJSON("firing", 1, 0, `{"proxbalance_action":"rebalance"}`))
	waitFor(t, "the planning run", func() bool { return h.planner.callCount() == 2 })
	if n := len(h.plans(t)); n != 0 {
		t.Errorf("%d plans stored without moves", n)
	}
	if code, _ := h.do(t, http.MethodGet, "/api/v1/decisions", "", ""); code != http.StatusOK {
		t.Errorf("decisions of the empty run: %d", code)
	}
}

func TestMigrationHistoryFormats(t *testing.T) {
	h := newHarness(t, settings(policy.ModeManual))
	ctx := context.Background()
	e, err := h.store.BeginMove(ctx, store.JournalEntry{PlanID: "p1", Guest: "qemu/100", Source: "pve1", Target: "pve2",
		Trigger: "alert:PVENodeCPUPressure pve1", Approver: "alice", TargetScore: 42.5, IntentAt: testNow})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.store.UpdateMove(ctx, e.ID, func(j *store.JournalEntry) error {
		j.State, j.UPID = store.MoveSucceeded, "UPID:pve1:0001:0002:0003:qmigrate:100:root@pam!pb:"
		j.StartedAt, j.EndedAt = testNow, testNow.Add(90*time.Second)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "/api/v1/migrations", nil)
	req.Header.Set("Accept", "text/csv")
	rec := httptest.NewRecorder()
	h.srv.Handler().ServeHTTP(rec, req)
	want := "id,guest,source,target,upid,start,end,outcome,duration_seconds,trigger,approver,target_score,plan_id,error\n" +
		"1,qemu/100,pve1,pve2,UPID:pve1:0001:0002:0003:qmigrate:100:root@pam!pb:,2026-11-27T04:00:00Z,2026-11-27T04:01:30Z,succeeded,90,alert:PVENodeCPUPressure pve1,alice,42.50,p1,\n"
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "text/csv; charset=utf-8" || rec.Body.String() != want {
		t.Errorf("CSV: %d %s\n%s", rec.Code, rec.Header().Get("Content-Type"), rec.Body.String())
	}
	code, body := h.do(t, http.MethodGet, "/api/v1/migrations?guest=qemu/100", "", "")
	var rows []migrationRow
	if err := json.Unmarshal([]byte(body), &rows); err != nil || code != http.StatusOK {
		t.Fatalf("JSON: %d %v %s", code, err, body)
	}
	if len(rows) != 1 || rows[0].Duration != 90 || rows[0].Approver != "alice" || rows[0].Outcome != "succeeded" {
		t.Errorf("JSON rows: %+v", rows)
	}
	if code, body := h.do(t, http.MethodGet, "/api/v1/migrations?guest=qemu/999", "", ""); code != http.StatusOK || strings.TrimSpace(body) != "[]" {
		t.Errorf("filtered out: %d %s", code, body)
	}
	if code, _ := h.do(t, http.MethodGet, "/api/v1/migrations?limit=-1", "", ""); code != http.StatusBadRequest {
		t.Errorf("bad limit: %d", code)
	}
}

// A move that does not succeed is named, with its reason, in the plan's state reason: a precheck refusal is
// journaled nowhere else, since nothing was requested.
func TestPlanStateNamesUnsuccessfulMoves(t *testing.T) {
	h := newHarness(t, settings(policy.ModeManual))
	h.exec.refuse = map[string]executor.Reason{"qemu/101": executor.ReasonGuestLocked}
	h.planner.setMoves(placement.ActionRebalance, mv("qemu/100", "pve1", "pve2"), mv("qemu/101", "pve1", "pve3"))
	rec, err := h.srv.makePlan(context.Background(), placement.Request{Action: placement.ActionRebalance, Trigger: "api"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := approve(t, h, rec.ID(), ""); code != http.StatusAccepted {
		t.Fatalf("approve: %d", code)
	}
	cur, err := h.store.Plan(context.Background(), rec.ID())
	if err != nil {
		t.Fatal(err)
	}
	want := "1 of 2 chosen moves succeeded; qemu/101 pve1 → pve3: refused (guest_locked)"
	if cur.State != store.PlanPartiallyExecuted || cur.StateReason != want {
		t.Errorf("plan %s (%q), want %s (%q)", cur.State, cur.StateReason, store.PlanPartiallyExecuted, want)
	}
}

func TestExecutingPlanOutlivesItsTTL(t *testing.T) {
	var mu sync.Mutex
	now := testNow
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	h := newHarness(t, settings(policy.ModeManual), func(o *Options) { o.Now = clock })
	h.exec.gate = make(chan struct{})
	h.planner.setMoves(placement.ActionRebalance, mv("qemu/100", "pve1", "pve2"))
	rec, err := h.srv.makePlan(context.Background(), placement.Request{Action: placement.ActionRebalance, Trigger: "api"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if code, body := h.do(t, http.MethodPost, "/api/v1/plans/"+rec.ID()+"/approve", apiToken, ""); code != http.StatusAccepted {
		t.Fatalf("approve: %d %s", code, body)
	}
	// The migration runs past the plan's TTL: sweeping must not expire the plan under it.
	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	h.srv.sweep(context.Background())
	if cur, _ := h.store.Plan(context.Background(), rec.ID()); cur.State != store.PlanApproved {
		t.Fatalf("plan %s while its move runs", cur.State)
	}
	close(h.exec.gate)
	h.srv.running.Wait()
	if cur, _ := h.store.Plan(context.Background(), rec.ID()); cur.State != store.PlanExecuted {
		t.Errorf("plan %s (%s), want executed", cur.State, cur.StateReason)
	}
}

// slowHistory answers when its context ends.
type slowHistory struct{}

func (slowHistory) Fetch(ctx context.Context, _ time.Time) (*history.Snapshot, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestLivePlannerHistoryTimeout(t *testing.T) {
	p := &LivePlanner{PVE: staticInventory{}, History: slowHistory{}, Now: func() time.Time { return testNow }, HistoryTimeout: 10 * time.Millisecond}
	_, err := p.Plan(context.Background(), placement.Request{Action: placement.ActionRebalance}, nil, placement.DefaultPolicy())
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "reading history from Prometheus") {
		t.Errorf("err = %v, want the history deadline", err)
	}
}

// staticInventory is a one-node cluster.
type staticInventory struct{}

func (staticInventory) Inventory(context.Context, pve.InventoryOptions) (*pve.Inventory, error) {
	return &pve.Inventory{FetchedAt: testNow, Nodes: []pve.Node{{Name: "pve1"}}}, nil
}

// GET shows the evacuation plan and changes nothing; POST, behind the token, stores it and supersedes the older
// pending evacuation of the node.
func TestEvacuationGetStoresNothing(t *testing.T) {
	h := newHarness(t, settings(policy.ModeManual))
	h.planner.setMoves(placement.ActionEvacuate, mv("qemu/100", "pve1", "pve2"))
	code, body := h.do(t, http.MethodPost, "/api/v1/nodes/pve1/evacuation", apiToken, "")
	if code != http.StatusOK || !strings.Contains(body, `"state": "pending"`) {
		t.Fatalf("POST evacuation: %d %s", code, body)
	}
	first := h.plans(t)
	if len(first) != 1 {
		t.Fatalf("%d plans after POST, want 1", len(first))
	}

	// Changed inputs: a stored plan would get a new ID and supersede the first.
	h.planner.mu.Lock()
	h.planner.idSuffix = "-v2"
	h.planner.mu.Unlock()
	h.planner.setMoves(placement.ActionEvacuate, mv("qemu/100", "pve1", "pve3"))
	for range 3 {
		code, body := h.do(t, http.MethodGet, "/api/v1/nodes/pve1/evacuation", "", "")
		if code != http.StatusOK || !strings.Contains(body, `"id": "evacuate-pve1-v2"`) || !strings.Contains(body, `"state": ""`) {
			t.Fatalf("GET evacuation: %d %s", code, body)
		}
	}
	after := h.plans(t)
	if len(after) != 1 || after[0].ID() != first[0].ID() || after[0].State != store.PlanPending {
		t.Fatalf("GET changed the store: %+v", after)
	}
	if code, _ := h.do(t, http.MethodPost, "/api/v1/nodes/pve1/evacuation", "", ""); code != http.StatusUnauthorized {
		t.Errorf("POST evacuation without a token: %d, want 401", code)
	}
	if n := len(h.plans(t)); n != 1 {
		t.Errorf("an unauthorised POST stored a plan: %d plans", n)
	}

	if code, body := h.do(t, http.MethodPost, "/api/v1/nodes/pve1/evacuation", apiToken, ""); code != http.StatusOK {
		t.Fatalf("second POST evacuation: %d %s", code, body)
	}
	old, err := h.store.Plan(context.Background(), first[0].ID())
	if err != nil || old.State != store.PlanWithdrawn || !strings.Contains(old.StateReason, "superseded by evacuate-pve1-v2") {
		t.Errorf("first plan after the second POST = %s (%s), %v; want withdrawn, superseded", old.State, old.StateReason, err)
	}
}

// A move approved in dry-run mode stays a dry run when a reload switches to manual before its turn: the verdict
// travels with the request, not with the executor's mode at execute time.
func TestDryRunSurvivesReloadBetweenMoves(t *testing.T) {
	h := newHarness(t, settings(policy.ModeDryRun), func(o *Options) {
		o.Reload = func(context.Context) (Settings, error) { return settings(policy.ModeManual), nil }
	})
	h.planner.setMoves(placement.ActionRebalance, mv("qemu/100", "pve1", "pve2"), mv("qemu/101", "pve1", "pve3"))
	rec, err := h.srv.makePlan(context.Background(), placement.Request{Action: placement.ActionRebalance, Trigger: "api"}, "")
	if err != nil {
		t.Fatal(err)
	}
	h.exec.gate = make(chan struct{}) // the first move "runs" until the reload is done
	code, body := h.do(t, http.MethodPost, "/api/v1/plans/"+rec.ID()+"/approve", apiToken, "")
	if code != http.StatusAccepted {
		t.Fatalf("approve: %d %s", code, body)
	}
	var resp approveResponse
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatal(err)
	}
	for _, v := range resp.Moves {
		if v.Outcome != "dry-run" {
			t.Errorf("move %d verdict %q, want dry-run", v.Index, v.Outcome)
		}
	}
	if err := h.srv.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if h.srv.current().Gates.Mode != policy.ModeManual {
		t.Fatal("the reload did not switch to manual")
	}
	close(h.exec.gate)
	waitFor(t, "both moves to be recorded", func() bool { return h.exec.dryRuns()+len(h.exec.requests()) == 2 })
	if got := h.exec.requests(); len(got) != 0 {
		t.Errorf("%d moves approved as dry runs migrated after the reload: %+v", len(got), got)
	}
	if n := h.exec.dryRuns(); n != 2 {
		t.Errorf("%d dry runs, want 2", n)
	}
}
