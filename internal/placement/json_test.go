package placement

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The HTTP API serves a Plan as is: every action's plan on random clusters survives a JSON round trip, and the
// wire names are snake_case with durations in seconds.
func TestPlanRoundTripsThroughJSON(t *testing.T) {
	pol := DefaultPolicy()
	for seed := range uint64(20) {
		st := generate(randomSpec(seed))
		for _, req := range []Request{rebalance, repair, spread, evacuate("pve01"), relieve("pve01")} {
			p := mustPlan(t, st, pol, req)
			b, err := json.Marshal(p)
			if err != nil {
				t.Fatalf("seed %d %s: marshal: %v", seed, req.Action, err)
			}
			var back Plan
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatalf("seed %d %s: unmarshal: %v", seed, req.Action, err)
			}
			if !reflect.DeepEqual(p, back) {
				t.Errorf("seed %d %s: plan differs after a JSON round trip:\n%s", seed, req.Action, b)
			}
		}
	}
}

func TestPlanJSONWireNames(t *testing.T) {
	st := cluster([]Node{node("pve1"), node("pve2")}, hot4(localDisk("local-zfs", 40*GiB)))
	p := mustPlan(t, st, DefaultPolicy(), rebalance)
	if len(p.Moves) == 0 {
		t.Fatalf("no moves; notes %+v", p.Notes)
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var wire map[string]any
	if err := json.Unmarshal(b, &wire); err != nil {
		t.Fatal(err)
	}
	mv := wire["moves"].([]any)[0].(map[string]any)
	cost := mv["cost"].(map[string]any)
	wantSeconds := p.Moves[0].Cost.Duration.Seconds()
	if got, ok := cost["duration_seconds"].(float64); !ok || got != wantSeconds || wantSeconds <= 0 {
		t.Errorf("cost = %v, want duration_seconds %v", cost, wantSeconds)
	}
	for _, key := range []string{"guest", "guest_name", "source_before", "target_after", "storage_check", "candidates", "improvement", "confidence"} {
		if _, ok := mv[key]; !ok {
			t.Errorf("move has no %q: %v", key, keys(mv))
		}
	}
	plugins := mv["source_before"].(map[string]any)["plugins"].([]any)
	if pl := plugins[pluginCPUBalance].(map[string]any); pl["plugin"] != "cpu-balance" || pl["reference"] == nil {
		t.Errorf("plugin %v, want cpu-balance with its reference", pl)
	}
	for _, key := range []string{"hottest_node", "hottest_load", "load_cv", "cpu_current_cv", "ideal_cpu", "nodes"} {
		if _, ok := wire["after"].(map[string]any)[key]; !ok {
			t.Errorf("after has no %q", key)
		}
	}
	if strings.Contains(string(b), "Duration") || strings.Contains(string(b), "\"ID\"") {
		t.Errorf("Go field names leak into JSON: %s", b)
	}
}

func TestCostJSONRejectsOutOfRangeDuration(t *testing.T) {
	for _, in := range []string{`{"duration_seconds":-1}`, `{"duration_seconds":1e300}`, `{"duration_seconds":"x"}`} {
		var c Cost
		if err := json.Unmarshal([]byte(in), &c); err == nil {
			t.Errorf("%s: no error, got %+v", in, c)
		}
	}
	var c Cost
	if err := json.Unmarshal([]byte(`{"memory_bytes":4,"disk_bytes":2,"duration_seconds":1.5}`), &c); err != nil ||
		c != (Cost{MemoryBytes: 4, DiskBytes: 2, Duration: 1500 * time.Millisecond}) {
		t.Errorf("got %+v, %v", c, err)
	}
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
