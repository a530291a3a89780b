package history

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/proxbalance/proxbalance/internal/promtest"
)

// fakeAPI answers range queries from a function, for failure paths a real Prometheus will not produce on demand.
type fakeAPI struct {
	answer func(n int, query string, r promv1.Range) (model.Value, promv1.Warnings, promv1.Infos, error)
	calls  int
}

func (f *fakeAPI) QueryRange(_ context.Context, q string, r promv1.Range, _ ...promv1.Option) (model.Value, promv1.Warnings, promv1.Infos, error) {
	f.calls++
	return f.answer(f.calls, q, r)
}

// onGrid returns one series for id with value v at every point of r.
func onGrid(id string, v float64, r promv1.Range) model.Matrix {
	s := &model.SampleStream{Metric: model.Metric{"id": model.LabelValue(id)}}
	for t := r.Start; !t.After(r.End); t = t.Add(r.Step) {
		s.Values = append(s.Values, model.SamplePair{Timestamp: model.TimeFromUnixNano(t.UnixNano()), Value: model.SampleValue(v)})
	}
	return model.Matrix{s}
}

var fetchAt = time.Date(2026, 11, 27, 4, 0, 0, 0, time.UTC)

func TestFetchErrorNamesTheQuery(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name    string
		failAt  int
		answer  func() (model.Value, error)
		want    string
		wantErr error
	}{
		{"first query fails", 1, func() (model.Value, error) { return nil, boom }, `history query guest_cpu (guest:pve_cpu_usage_cores:avg5m{job="pve"}): boom`, boom},
		{"third query fails", 3, func() (model.Value, error) { return nil, boom }, `history query node_cpu (`, boom},
		{"not a matrix", 2, func() (model.Value, error) { return model.Vector{}, nil }, `history query guest_memory (`, errNotMatrix},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &fakeAPI{answer: func(n int, q string, r promv1.Range) (model.Value, promv1.Warnings, promv1.Infos, error) {
				if n == tt.failAt {
					v, err := tt.answer()
					return v, nil, nil, err
				}
				return onGrid("qemu/100", 1, r), nil, nil, nil
			}}
			c, err := New(fake, Config{Selector: map[string]string{"job": "pve"}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			snap, err := c.Fetch(context.Background(), fetchAt)
			if snap != nil || err == nil || !strings.HasPrefix(err.Error(), tt.want) || !errors.Is(err, tt.wantErr) {
				t.Fatalf("Fetch = %v, %v; want nil and an error starting %q wrapping %v", snap, err, tt.want, tt.wantErr)
			}
			if fake.calls != tt.failAt {
				t.Fatalf("%d queries after a failure at query %d; want no more", fake.calls, tt.failAt)
			}
		})
	}
}

func TestFetchPrometheusDown(t *testing.T) {
	addr := promtest.FreeAddr(t) // nothing listens there
	client, err := api.NewClient(api.Config{Address: "http://" + addr})
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(promv1.NewAPI(client), Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Fetch(context.Background(), fetchAt)
	if err == nil || !strings.HasPrefix(err.Error(), "history query guest_cpu (guest:pve_cpu_usage_cores:avg5m{}): ") ||
		!strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("Fetch against a closed port = %v; want a connection error naming guest_cpu", err)
	}
}

func TestFetchWarningsAndInfos(t *testing.T) {
	fake := &fakeAPI{answer: func(n int, q string, r promv1.Range) (model.Value, promv1.Warnings, promv1.Infos, error) {
		var m model.Matrix
		switch {
		case strings.HasPrefix(q, "guest:"):
			m = onGrid("qemu/100", 2, r)
		case strings.HasPrefix(q, "node:"):
			m = onGrid("node/pve1", 0.5, r)
		}
		if n == 1 {
			return m, promv1.Warnings{"too many samples, result truncated"}, promv1.Infos{"PromQL info: metric might not be a counter"}, nil
		}
		return m, nil, nil, nil
	}}
	var buf bytes.Buffer
	c, err := New(fake, Config{CoreOnly: true}, log.NewLogfmtLogger(&buf))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := c.Fetch(context.Background(), fetchAt)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Warnings) != 1 || snap.Warnings[0] != "guest_cpu: prometheus: too many samples, result truncated" {
		t.Fatalf("warnings = %q", snap.Warnings)
	}
	logged := buf.String()
	for _, want := range []string{
		`level=warn msg=history warning="guest_cpu: prometheus: too many samples, result truncated"`,
		`level=info msg="prometheus info" query=guest_cpu info="PromQL info: metric might not be a counter"`,
	} {
		if !strings.Contains(logged, want) {
			t.Errorf("log lacks %s:\n%s", want, logged)
		}
	}
	// Every rule query had data from the grid's start: no fallback query.
	if fake.calls != 5 || len(snap.Fallbacks) != 0 {
		t.Fatalf("%d queries, fallbacks %+v; want 5 and none", fake.calls, snap.Fallbacks)
	}
}

func TestSignalQueries(t *testing.T) {
	sel := selector{"job": "pve", "instance": "a"}
	tests := []struct {
		step time.Duration
		name string
		rule string
		raw  string
	}{
		{5 * time.Minute, "guest_cpu", `guest:pve_cpu_usage_cores:avg5m{instance="a",job="pve"}`,
			`avg_over_time(pve_cpu_usage_ratio{id=~"(?:qemu|lxc)/.+",instance="a",job="pve"}[5m]) * on (job, instance, id) avg_over_time(pve_cpu_usage_limit{id=~"(?:qemu|lxc)/.+",instance="a",job="pve"}[5m])`},
		{5 * time.Minute, "node_memory",
			`node:pve_memory_usage_ratio:avg5m{instance="a",job="pve"} * on (job, instance, id) pve_memory_size_bytes{id=~"node/.+",instance="a",job="pve"}`,
			`avg_over_time(pve_memory_usage_bytes{id=~"node/.+",instance="a",job="pve"}[5m])`},
		// Past 5m, every point averages the step before it, so no sample between two points is skipped.
		{15 * time.Minute, "node_iowait", `avg_over_time(node:pve_node_iowait_ratio:avg5m{instance="a",job="pve"}[15m])`,
			`avg_over_time(pve_node_iowait_ratio{id=~"node/.+",instance="a",job="pve"}[15m])`},
		{time.Minute, "pressure", "",
			`avg_over_time({__name__=~"pve_node_pressure_ratio|pve_guest_pressure_ratio",instance="a",job="pve"}[5m])`},
		{time.Minute, "network", "",
			`label_replace(rate(pve_network_receive_bytes_total{instance="a",job="pve"}[5m]), "direction", "receive", "", "") or label_replace(rate(pve_network_transmit_bytes_total{instance="a",job="pve"}[5m]), "direction", "transmit", "", "")`},
	}
	for _, tt := range tests {
		var found bool
		for _, q := range signalQueries(sel, tt.step, false) {
			if q.name != tt.name {
				continue
			}
			found = true
			if q.rule != tt.rule || q.raw != tt.raw {
				t.Errorf("%s at %s:\nrule %s\nwant %s\nraw  %s\nwant %s", tt.name, tt.step, q.rule, tt.rule, q.raw, tt.raw)
			}
		}
		if !found {
			t.Errorf("no query %s", tt.name)
		}
	}
	if n := len(signalQueries(sel, time.Minute, false)); n != 8 {
		t.Errorf("%d signal queries, want 8", n)
	}
	if n := len(signalQueries(sel, time.Minute, true)); n != 5 {
		t.Errorf("%d core signal queries, want 5", n)
	}
	got := fallbackExpr([]signalQuery{{name: "a", raw: "x"}, {name: "b", raw: "y"}})
	if want := `label_replace(x, "pb_signal", "a", "", "") or label_replace(y, "pb_signal", "b", "", "")`; got != want {
		t.Errorf("fallbackExpr = %s, want %s", got, want)
	}
}

// TestFetchDegradesOnOptionalFailures: once the core signals are in, a failing optional or fallback query costs
// its signal (a warning, lower coverage), not the snapshot.
func TestFetchDegradesOnOptionalFailures(t *testing.T) {
	tooMany := errors.New("query processing would load too many samples into memory")
	tests := []struct {
		name         string
		fail         func(q string) bool
		late         bool // the recording rules start at the grid's last point, so a fallback is needed
		wantWarnings []string
	}{
		{
			name: "network query fails",
			fail: func(q string) bool { return strings.Contains(q, "pve_network_receive_bytes_total") },
			wantWarnings: []string{`network left out: history query network (label_replace(rate(pve_network_receive_bytes_total{}[5m]), ` +
				`"direction", "receive", "", "") or label_replace(rate(pve_network_transmit_bytes_total{}[5m]), "direction", "transmit", "", "")): ` +
				tooMany.Error()},
		},
		{
			name: "fallback fails",
			fail: func(q string) bool { return strings.Contains(q, fallbackLabel) },
			late: true,
			wantWarnings: []string{"history before the recording rules' first samples left out: history query fallback (label_replace(" +
				"avg_over_time(pve_cpu_usage_ratio{id=~\"(?:qemu|lxc)/.+\"}[5m]) * on (job, instance, id) avg_over_time(pve_cpu_usage_limit{id=~\"(?:qemu|lxc)/.+\"}[5m]), \"pb_signal\", \"guest_cpu\", \"\", \"\") or " +
				"label_replace(avg_over_time(pve_memory_usage_bytes{id=~\"(?:qemu|lxc)/.+\"}[5m]), \"pb_signal\", \"guest_memory\", \"\", \"\") or " +
				"label_replace(avg_over_time(pve_cpu_usage_ratio{id=~\"node/.+\"}[5m]) * on (job, instance, id) avg_over_time(pve_cpu_usage_limit{id=~\"node/.+\"}[5m]), \"pb_signal\", \"node_cpu\", \"\", \"\") or " +
				"label_replace(avg_over_time(pve_memory_usage_bytes{id=~\"node/.+\"}[5m]), \"pb_signal\", \"node_memory\", \"\", \"\") or " +
				"label_replace(avg_over_time(pve_node_iowait_ratio{id=~\"node/.+\"}[5m]), \"pb_signal\", \"node_iowait\", \"\", \"\")): " + tooMany.Error()},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &fakeAPI{answer: func(n int, q string, r promv1.Range) (model.Value, promv1.Warnings, promv1.Infos, error) {
				if tt.fail(q) {
					return nil, nil, nil, tooMany
				}
				if tt.late {
					r.Start = r.End
				}
				switch {
				case strings.HasPrefix(q, "guest:"):
					return onGrid("qemu/100", 2, r), nil, nil, nil
				case strings.HasPrefix(q, "node:"):
					return onGrid("node/pve1", 0.5, r), nil, nil, nil
				}
				return model.Matrix{}, nil, nil, nil
			}}
			c, err := New(fake, Config{Windows: []time.Duration{time.Hour}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			snap, err := c.Fetch(context.Background(), fetchAt)
			if err != nil {
				t.Fatalf("Fetch failed: %v", err)
			}
			if strings.Join(snap.Warnings, "\n") != strings.Join(tt.wantWarnings, "\n") {
				t.Fatalf("warnings:\n%s\nwant:\n%s", strings.Join(snap.Warnings, "\n"), strings.Join(tt.wantWarnings, "\n"))
			}
			wantCoverage := 1.0
			if tt.late {
				wantCoverage = 1.0 / 12 // only the last of 12 points, from the rules
			}
			if got := snap.GuestCoverage("qemu/100"); got != wantCoverage {
				t.Fatalf("guest coverage = %v, want %v", got, wantCoverage)
			}
		})
	}

	t.Run("a cancelled context still fails", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		fake := &fakeAPI{answer: func(n int, q string, r promv1.Range) (model.Value, promv1.Warnings, promv1.Infos, error) {
			if strings.Contains(q, "pressure") {
				cancel()
				return nil, nil, nil, context.Canceled
			}
			return onGrid("qemu/100", 1, r), nil, nil, nil
		}}
		c, err := New(fake, Config{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Fetch(ctx, fetchAt); !errors.Is(err, context.Canceled) || !strings.HasPrefix(err.Error(), "history query pressure (") {
			t.Fatalf("Fetch = %v, want the pressure query's cancellation", err)
		}
	})
}
