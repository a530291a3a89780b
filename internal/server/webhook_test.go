package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/proxbalance/proxbalance/internal/placement"
	"github.com/proxbalance/proxbalance/internal/policy"
	"github.com/proxbalance/proxbalance/internal/store"
)

func TestAlertmanagerCaptures(t *testing.T) {
	want := map[string]struct {
		status string
		key    planKey
	}{
		"am025-1-firing-PVEAntiAffinityViolation.json": {"firing", planKey{Action: placement.ActionRepairAntiAffinity}},
		"am025-2-firing-PVENodeCPUPressure.json":       {"firing", planKey{Action: placement.ActionRelieve, Node: "pve2"}},
		"am025-3-firing-PVENodeMemoryPressure.json":    {"firing", planKey{Action: placement.ActionRelieve, Node: "pve2"}},
		"am025-4-resolved-PVENodeCPUPressure.json":     {"resolved", planKey{Action: placement.ActionRelieve, Node: "pve2"}},
		"am035-1-firing-PVEAntiAffinityViolation.json": {"firing", planKey{Action: placement.ActionRepairAntiAffinity}},
		"am035-2-firing-PVENodeMemoryPressure.json":    {"firing", planKey{Action: placement.ActionRelieve, Node: "pve2"}},
		"am035-3-firing-PVENodeCPUPressure.json":       {"firing", planKey{Action: placement.ActionRelieve, Node: "pve2"}},
		"am035-4-resolved-PVENodeCPUPressure.json":     {"resolved", planKey{Action: placement.ActionRelieve, Node: "pve2"}},
	}
	files, _ := filepath.Glob("testdata/alertmanager/*.json")
	if len(files) != len(want) {
		t.Fatalf("%d captures, %d expectations", len(files), len(want))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			w, ok := want[filepath.Base(f)]
			if !ok {
				t.Fatal("no expectation for this capture")
			}
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			m, err := DecodeMessage(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Alerts) != 1 || m.Alerts[0].Status != w.status || m.Alerts[0].Fingerprint == "" || m.Alerts[0].StartsAt.IsZero() {
				t.Fatalf("decoded %+v", m.Alerts)
			}
			got := MapAlert(m.Alerts[0])
			if got.Ignored != "" || got.Key != w.key {
				t.Errorf("MapAlert = %+v, want key %+v", got, w.key)
			}
		})
	}
}

func TestMapAlert(t *testing.T) {
	cases := []struct {
		labels  map[string]string
		key     planKey
		ignored string
	}{
		{map[string]string{"alertname": "Watchdog"}, planKey{}, "no proxbalance_action label"},
		{map[string]string{LabelAction: "relieve"}, planKey{}, "action relieve without a node label"},
		{map[string]string{LabelAction: "evacuate", LabelNode: "pve3"}, planKey{Action: placement.ActionEvacuate, Node: "pve3"}, ""},
		{map[string]string{LabelAction: "rebalance", LabelNode: "pve3"}, planKey{Action: placement.ActionRebalance}, ""},
		{map[string]string{LabelAction: "repair-anti-affinity", LabelNode: "pve3", "group": "exclude_db"}, planKey{Action: placement.ActionRepairAntiAffinity}, ""},
		{map[string]string{LabelAction: "reboot", LabelNode: "pve3"}, planKey{}, `unknown action "reboot"`},
	}
	for _, c := range cases {
		got := MapAlert(Alert{Labels: c.labels})
		if got.Key != c.key || got.Ignored != c.ignored {
			t.Errorf("MapAlert(%v) = %+v, want %+v %q", c.labels, got, c.key, c.ignored)
		}
	}
}

func TestWebhookBadRequests(t *testing.T) {
	h := newHarness(t, settings(policy.ModeManual), func(o *Options) { o.Settings.MaxBodyBytes = 4096 })
	cases := []struct {
		name, body string
		code       int
		msg        string
	}{
		{"malformed", `{"version":"4","alerts":[`, http.StatusBadRequest, "decoding the webhook payload: unexpected EOF"},
		{"wrong type", `{"version":4}`, http.StatusBadRequest, "decoding the webhook payload: json: cannot unmarshal number"},
		{"old version", `{"version":"3","alerts":[]}`, http.StatusBadRequest, `webhook payload version \"3\": want \"4\"`},
		{"no fingerprint", `{"version":"4","alerts":[{"status":"firing"}]}`, http.StatusBadRequest, "alert 0: no fingerprint"},
		{"trailing data", `{"version":"4"} {}`, http.StatusBadRequest, "trailing data"},
		{"oversize", `{"version":"4","receiver":"` + strings.Repeat("x", 5000) + `"}`, http.StatusRequestEntityTooLarge, "payload larger than 4096 bytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, body := h.do(t, http.MethodPost, "/api/v1/alerts", webhookToken, c.body)
			if code != c.code || !strings.Contains(body, c.msg) {
				t.Errorf("got %d %s, want %d with %q", code, body, c.code, c.msg)
			}
		})
	}
}

func TestWebhookDuplicatesMakeOnePlan(t *testing.T) {
	h := newHarness(t, settings(policy.ModeManual))
	h.planner.setMoves(placement.ActionRelieve, mv("qemu/100", "pve2", "pve3"))
	body, err := os.ReadFile("testdata/alertmanager/am035-3-firing-PVENodeCPUPressure.json")
	if err != nil {
		t.Fatal(err)
	}
	var results []webhookResult
	for range 2 { // an HA pair delivers twice
		code, resp := h.do(t, http.MethodPost, "/api/v1/alerts", webhookToken, string(body))
		if code != http.StatusAccepted {
			t.Fatalf("status %d: %s", code, resp)
		}
		var r webhookResult
		if err := json.Unmarshal([]byte(resp), &r); err != nil {
			t.Fatal(err)
		}
		results = append(results, r)
	}
	if results[0].Queued != 1 || results[1].Duplicate != 1 || results[1].Queued != 0 {
		t.Errorf("results = %+v", results)
	}
	waitFor(t, "a plan", func() bool { return len(h.plans(t)) == 1 })
	if n := h.planner.callCount(); n != 1 {
		t.Errorf("planner called %d times, want 1", n)
	}
	if rec := h.plans(t)[0]; rec.Trigger != "alert:PVENodeCPUPressure pve2" || rec.State != store.PlanPending || rec.AlertFingerprint != "e1575880873babfb" {
		t.Errorf("plan = %s %s %s", rec.Trigger, rec.State, rec.AlertFingerprint)
	}
}

func TestWebhookStormMakesOnePlanPerKey(t *testing.T) {
	h := newHarness(t, settings(policy.ModeManual))
	h.planner.block = make(chan struct{})
	h.planner.setMoves(placement.ActionRelieve, mv("qemu/100", "pve2", "pve3"))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	// A first alert occupies the worker (blocked planner), then a storm of 1,000 alerts for two nodes arrives.
	h.do(t, http.MethodPost, "/api/v1/alerts", webhookToken, alertJSON("firing", 1, 0, `{"proxbalance_action":"relieve","node":"pve1"}`))
	waitFor(t, "the worker to take the first request", func() bool { return h.srv.queue.len() == 0 })
	for batch := range 10 {
		node := "pve2"
		if batch%2 == 1 {
			node = "pve3"
		}
		code, resp := h.do(t, http.MethodPost, "/api/v1/alerts", webhookToken, alertJSON("firing", 100, 1+batch*100, `{"proxbalance_action":"relieve","node":"`+node+`"}`))
		if code != http.StatusAccepted {
			t.Fatalf("status %d: %s", code, resp)
		}
	}
	if n := h.srv.queue.len(); n != 2 {
		t.Errorf("queue holds %d requests, want 2 (one per node)", n)
	}
	for _, p := range h.srv.queue.pending {
		if len(p.fingerprints) > maxFingerprintsPerRequest {
			t.Errorf("a request remembers %d fingerprints", len(p.fingerprints))
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 8<<20 {
		t.Errorf("heap grew %d bytes for a storm of 1,000 alerts", grown)
	}
	close(h.planner.block)
	waitFor(t, "three plans", func() bool { return len(h.plans(t)) == 3 })
	if n := h.planner.callCount(); n != 3 {
		t.Errorf("planner called %d times for 1,001 alerts on 3 nodes, want 3", n)
	}
}

func TestWebhookQueueBound(t *testing.T) {
	h := newHarness(t, settings(policy.ModeManual), func(o *Options) { o.QueueSize = 2 })
	h.planner.block = make(chan struct{})
	defer close(h.planner.block)
	var last webhookResult
	for i := range 5 {
		_, resp := h.do(t, http.MethodPost, "/api/v1/alerts", webhookToken, alertJSON("firing", 1, i, `{"proxbalance_action":"relieve","node":"pve`+string(rune('1'+i))+`"}`))
		if err := json.Unmarshal([]byte(resp), &last); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			waitFor(t, "the worker", func() bool { return h.srv.queue.len() == 0 })
		}
	}
	if h.srv.queue.len() != 2 || last.Dropped != 1 {
		t.Errorf("queue %d, last result %+v; want 2 queued and the fifth dropped", h.srv.queue.len(), last)
	}
}

func TestResolvedAlertWithdrawsItsPlan(t *testing.T) {
	h := newHarness(t, settings(policy.ModeManual))
	h.planner.setMoves(placement.ActionRelieve, mv("qemu/100", "pve2", "pve3"))
	for _, f := range []string{"am025-2-firing-PVENodeCPUPressure.json", "am025-4-resolved-PVENodeCPUPressure.json"} {
		b, err := os.ReadFile("testdata/alertmanager/" + f)
		if err != nil {
			t.Fatal(err)
		}
		if code, resp := h.do(t, http.MethodPost, "/api/v1/alerts", webhookToken, string(b)); code != http.StatusAccepted {
			t.Fatalf("%s: %d %s", f, code, resp)
		}
		if strings.Contains(f, "firing") {
			waitFor(t, "the plan", func() bool { return len(h.plans(t)) == 1 })
		}
	}
	// The resolution may arrive while the worker still binds the alert to its plan; the worker then withdraws
	// it itself, so wait.
	waitFor(t, "the plan to be withdrawn", func() bool { return h.plans(t)[0].State == store.PlanWithdrawn })
	if rec := h.plans(t)[0]; !strings.Contains(rec.StateReason, "resolved") {
		t.Errorf("withdrawn because %q", rec.StateReason)
	}
}

func TestUnknownAlertsAreAcknowledged(t *testing.T) {
	h := newHarness(t, settings(policy.ModeManual))
	code, resp := h.do(t, http.MethodPost, "/api/v1/alerts", webhookToken, alertJSON("firing", 3, 0, `{"alertname":"Watchdog"}`))
	if code != http.StatusAccepted || !strings.Contains(resp, `"ignored": 3`) {
		t.Errorf("%d %s", code, resp)
	}
	if h.planner.callCount() != 0 {
		t.Error("an unknown alert caused planning")
	}
}

func FuzzDecodeMessage(f *testing.F) {
	files, _ := filepath.Glob("testdata/alertmanager/*.json")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"version":"4","alerts":[{"status":"firing","fingerprint":"x","labels":{"proxbalance_action":"evacuate"}}]}`))
	f.Add([]byte(`{"version":"4","alerts":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeMessage(bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, a := range m.Alerts {
			if a.Fingerprint == "" {
				t.Fatal("accepted an alert without fingerprint")
			}
			mp := MapAlert(a)
			if (mp.Ignored == "") == (mp.Key == planKey{}) {
				t.Fatalf("mapping %+v is neither a plan key nor ignored", mp)
			}
		}
	})
}

func TestDedupeCache(t *testing.T) {
	c := newDedupeCache(time.Hour, 3)
	k := func(fp string) deliveryKey { return deliveryKey{fp, 1, "firing"} }
	steps := []struct {
		key   string
		at    time.Duration
		first bool
	}{
		{"a", 0, true},
		{"a", time.Minute, false},               // the HA twin
		{"b", time.Minute, true},                //
		{"a", time.Hour, true},                  // expired: remembered again
		{"c", time.Hour, true},                  //
		{"d", time.Hour, true},                  // full: the oldest (b) goes
		{"b", time.Hour + time.Minute, true},    // b was evicted
		{"d", time.Hour + 2*time.Minute, false}, //
	}
	for i, s := range steps {
		if got := c.first(k(s.key), testNow.Add(s.at)); got != s.first {
			t.Errorf("step %d (%s at %v): first = %v, want %v", i, s.key, s.at, got, s.first)
		}
		if c.len() > 3 {
			t.Fatalf("step %d: %d entries, bound 3", i, c.len())
		}
	}
	// A resolved delivery of the same alert is a new state, not a duplicate.
	if !c.first(deliveryKey{"d", 1, "resolved"}, testNow.Add(time.Hour+3*time.Minute)) {
		t.Error("resolved after firing counted as a duplicate")
	}
}

const relievePVE2 = `{"alertname":"PVENodeCPUPressure","proxbalance_action":"relieve","node":"pve2"}`

// workerBlockedOnFirstAlert returns a harness whose worker took alert fp0 (relieve pve2) and waits in the
// planner until h.planner.block is closed.
func workerBlockedOnFirstAlert(t *testing.T) *harness {
	t.Helper()
	h := newHarness(t, settings(policy.ModeManual))
	h.planner.setMoves(placement.ActionRelieve, mv("qemu/100", "pve2", "pve3"))
	h.planner.block = make(chan struct{})
	h.do(t, http.MethodPost, "/api/v1/alerts", webhookToken, alertJSON("firing", 1, 0, relievePVE2))
	waitFor(t, "the worker", func() bool { return h.srv.queue.len() == 0 })
	return h
}

func TestResolutionWithdrawsOnlyWhenEveryAlertResolved(t *testing.T) {
	h := workerBlockedOnFirstAlert(t)
	labels := relievePVE2
	// Two more alerts for the same node coalesce while the first is being planned.
	h.do(t, http.MethodPost, "/api/v1/alerts", webhookToken, alertJSON("firing", 2, 1, labels))
	close(h.planner.block)
	waitFor(t, "the plan", func() bool { return len(h.plans(t)) == 1 && h.srv.queue.len() == 0 })
	waitFor(t, "the coalesced request", func() bool {
		h.srv.mu.Lock()
		defer h.srv.mu.Unlock()
		return len(h.srv.alertPlans) == 3
	})
	state := func() store.PlanState { return h.plans(t)[0].State }
	h.do(t, http.MethodPost, "/api/v1/alerts", webhookToken, alertJSON("resolved", 2, 0, labels))
	if st := state(); st != store.PlanPending {
		t.Fatalf("plan %s after 2 of 3 alerts resolved, want pending", st)
	}
	h.do(t, http.MethodPost, "/api/v1/alerts", webhookToken, alertJSON("resolved", 1, 2, labels))
	if st := state(); st != store.PlanWithdrawn {
		t.Errorf("plan %s after every alert resolved, want withdrawn", st)
	}
}

func TestAlertResolvedWhilePlanning(t *testing.T) {
	h := workerBlockedOnFirstAlert(t)
	h.do(t, http.MethodPost, "/api/v1/alerts", webhookToken, alertJSON("resolved", 1, 0, relievePVE2))
	close(h.planner.block)
	waitFor(t, "the plan to be withdrawn", func() bool {
		ps := h.plans(t)
		return len(ps) == 1 && ps[0].State == store.PlanWithdrawn
	})
}

func TestQueueCountsAlertsBeyondTheKeptFingerprints(t *testing.T) {
	q := newRequestQueue(4)
	key := planKey{Action: placement.ActionRelieve, Node: "pve1"}
	for i := range maxFingerprintsPerRequest + 2 {
		if !q.add(key, "alert:X pve1", "fp"+strconv.Itoa(i)) {
			t.Fatal("queue refused a coalescing alert")
		}
	}
	p := q.pending[key]
	if len(p.fingerprints) != maxFingerprintsPerRequest || p.firing != maxFingerprintsPerRequest+2 {
		t.Fatalf("kept %d fingerprints of %d firing", len(p.fingerprints), p.firing)
	}
	for i := range maxFingerprintsPerRequest + 1 {
		q.withdraw(key, "fp"+strconv.Itoa(i))
	}
	if q.len() != 1 {
		t.Fatal("the request went while an alert still fires")
	}
	q.withdraw(key, "fp"+strconv.Itoa(maxFingerprintsPerRequest+1))
	if q.len() != 0 {
		t.Error("the request stays after every alert resolved")
	}
}
