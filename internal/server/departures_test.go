package server

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/proxbalance/proxbalance/internal/placement"
	"github.com/proxbalance/proxbalance/internal/policy"
	"github.com/proxbalance/proxbalance/internal/promtest"
	"github.com/proxbalance/proxbalance/internal/store"
)

// placementHistory renders pve_guest_info samples: qemu/100 ran on pve2 until 3h ago and on pve1 since;
// qemu/101 stayed on pve1; lxc/200 left pve3 30h ago (outside a 24h window).
func placementHistory(now time.Time) string {
	var b strings.Builder
	b.WriteString("# TYPE pve_guest_info gauge\n")
	sample := func(id, node string, from, to time.Duration) {
		for back := from; back >= to; back -= time.Minute {
			fmt.Fprintf(&b, "pve_guest_info{cluster=\"lab\",id=%q,node=%q,name=\"g\",type=\"qemu\",template=\"0\",tags=\"\"} 1 %d\n",
				id, node, now.Add(-back).Unix())
		}
	}
	// OpenMetrics wants each series' samples in order and series grouped: one series at a time.
	sample("lxc/200", "pve3", 36*time.Hour, 30*time.Hour)
	sample("lxc/200", "pve2", 30*time.Hour-time.Minute, 2*time.Minute)
	sample("qemu/100", "pve1", 3*time.Hour-time.Minute, 2*time.Minute)
	sample("qemu/100", "pve2", 30*time.Hour, 3*time.Hour)
	sample("qemu/101", "pve1", 30*time.Hour, 2*time.Minute)
	b.WriteString("# EOF\n")
	return b.String()
}

func TestPrometheusDepartures(t *testing.T) {
	now := time.Now().Truncate(time.Minute)
	data := promtest.Backfill(t, placementHistory(now))
	prom := promtest.StartPrometheus(t, promtest.PrometheusOptions{Config: "global: {}\n", DataDir: data})
	src := &PrometheusDepartures{API: promtest.API(t, prom), Selector: map[string]string{"cluster": "lab"}}
	got, err := src.Departures(context.Background(), now, 24*time.Hour, []string{"qemu/100", "qemu/101", "lxc/200"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Guest != "qemu/100" || got[0].Node != "pve2" {
		t.Fatalf("departures = %+v, want qemu/100 leaving pve2", got)
	}
	if d := now.Add(-3 * time.Hour).Sub(got[0].LeftAt); d < -time.Minute || d > time.Minute {
		t.Errorf("left at %s, want about %s", got[0].LeftAt, now.Add(-3*time.Hour))
	}
	// lxc/200 left pve3 30h ago: inside a 48h window it is a departure.
	got, err = src.Departures(context.Background(), now, 48*time.Hour, []string{"lxc/200"})
	if err != nil || len(got) != 1 || got[0].Node != "pve3" {
		t.Errorf("48h window: %+v %v", got, err)
	}
}

func TestDeparturesQuery(t *testing.T) {
	p := &PrometheusDepartures{Selector: map[string]string{"job": "pve", "cluster": "a\"b"}}
	got := p.departuresQuery(24*time.Hour, []string{"qemu/100", "lxc/2.1"})
	want := `max by (id, node) (max_over_time(timestamp(pve_guest_info{cluster="a\"b",job="pve",id=~"qemu/100|lxc/2\\.1"})[1d:1m]))`
	if got != want {
		t.Errorf("query:\n got  %s\n want %s", got, want)
	}
}

type fakeDepartures struct {
	deps []policy.Departure
	err  error
}

func (f fakeDepartures) Departures(context.Context, time.Time, time.Duration, []string) ([]policy.Departure, error) {
	return f.deps, f.err
}

func TestRollbackAfterStateLoss(t *testing.T) {
	cases := []struct {
		name string
		src  fakeDepartures
		code int
		want string
	}{
		{"Prometheus remembers the guest left the target", fakeDepartures{deps: []policy.Departure{{Guest: "qemu/100", Node: "pve2", LeftAt: testNow.Add(-2 * time.Hour)}}},
			http.StatusConflict, "held:RollbackWindow"},
		{"no history of the target", fakeDepartures{}, http.StatusAccepted, "started:"},
		{"Prometheus down: refuse", fakeDepartures{err: fmt.Errorf("connection refused")}, http.StatusServiceUnavailable, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// A fresh store: the journal knows nothing.
			h := newHarness(t, settings(policy.ModeManual), func(o *Options) { o.Departures = c.src })
			h.planner.setMoves(placement.ActionRebalance, mv("qemu/100", "pve1", "pve2"))
			rec, err := h.srv.makePlan(context.Background(), placement.Request{Action: placement.ActionRebalance, Trigger: "api"}, "")
			if err != nil {
				t.Fatal(err)
			}
			code, resp := approve(t, h, rec.ID(), "")
			if code != c.code {
				t.Fatalf("status %d, want %d", code, c.code)
			}
			if got := strings.Join(outcomes(resp.Moves), " "); c.want != "" && got != c.want {
				t.Errorf("verdicts %s, want %s", got, c.want)
			}
			after, err := h.store.Plan(context.Background(), rec.ID())
			if err != nil {
				t.Fatal(err)
			}
			if wantPending := c.code != http.StatusAccepted; wantPending != (after.State == store.PlanPending) {
				t.Errorf("plan state %s after status %d", after.State, code)
			}
		})
	}
}
