package policy

import (
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC) // a Wednesday

func gates(mut ...func(*Gates)) Gates {
	g := DefaultGates()
	g.Mode = ModeAuto
	g.MaxConcurrent = 10
	for _, m := range mut {
		m(&g)
	}
	return g
}

func move(guest, src, dst string, mut ...func(*Move)) Move {
	m := Move{Guest: guest, Source: src, Target: dst, Confidence: 80, Improvement: 20}
	for _, f := range mut {
		f(&m)
	}
	return m
}

func tags(ts ...string) func(*Move) { return func(m *Move) { m.Tags = ts } }

func input(mut ...func(*Input)) Input {
	in := Input{Now: t0, Quorate: true, Moves: []Move{move("qemu/100", "pve1", "pve2")}}
	for _, m := range mut {
		m(&in)
	}
	return in
}

func TestEvaluateGates(t *testing.T) {
	cases := []struct {
		name  string
		gates Gates
		in    Input
		want  []Reason
	}{
		{"auto, nothing holds", gates(), input(), nil},
		{"dry-run holds a good move", gates(func(g *Gates) { g.Mode = ModeDryRun }), input(), []Reason{ReasonDryRun}},
		{"manual waits for approval", gates(func(g *Gates) { g.Mode = ModeManual }), input(), []Reason{ReasonAwaitingApproval}},
		{"manual approved runs", gates(func(g *Gates) { g.Mode = ModeManual }), input(func(in *Input) { in.Approved = true }), nil},
		{"no quorum", gates(), input(func(in *Input) { in.Quorate = false }), []Reason{ReasonNoQuorum}},
		{"no quorum allowed when not required", gates(func(g *Gates) { g.RequireQuorum = false }), input(func(in *Input) { in.Quorate = false }), nil},
		{"outside window", gates(func(g *Gates) { g.Windows = []Window{{Start: 22 * 60, End: 6 * 60}} }), input(), []Reason{ReasonOutsideWindow}},
		{"inside window", gates(func(g *Gates) { g.Windows = []Window{{Start: 11 * 60, End: 13 * 60}} }), input(), nil},
		{"blackout wins over window", gates(func(g *Gates) {
			g.Windows = []Window{{Start: 0, End: 0}}
			g.Blackouts = []Window{{Days: []time.Weekday{time.Wednesday}, Start: 9 * 60, End: 17 * 60}}
		}), input(), []Reason{ReasonBlackout}},
		{"ignore tag", gates(), input(func(in *Input) { in.Moves[0].Tags = []string{"Ignore"} }), []Reason{ReasonTagIgnore}},
		{"no-auto-migrate blocks automatic execution", gates(), input(func(in *Input) { in.Moves[0].Tags = []string{TagNoAutoMigrate} }), []Reason{ReasonTagNoAutoMigrate}},
		{"no-auto-migrate allows an approved move", gates(), input(func(in *Input) {
			in.Moves[0].Tags = []string{TagNoAutoMigrate}
			in.Approved = true
		}), nil},
		{"whitelist holds untagged", gates(func(g *Gates) { g.Whitelist = true }), input(), []Reason{ReasonNotWhitelisted}},
		{"whitelist passes auto-migrate-ok", gates(func(g *Gates) { g.Whitelist = true }), input(func(in *Input) { in.Moves[0].Tags = []string{TagAutoMigrateOK} }), nil},
		{"evacuation bypasses tags", gates(func(g *Gates) { g.Whitelist = true }), input(func(in *Input) {
			in.Evacuation = true
			in.Moves[0].Tags = []string{TagIgnore, TagNoAutoMigrate}
		}), nil},
		{"cooldown after a move", gates(), input(func(in *Input) {
			in.Journal = []JournalEntry{{Guest: "qemu/100", Source: "pve3", Target: "pve1", Ended: t0.Add(-30 * time.Minute)}}
		}), []Reason{ReasonCooldown}},
		{"cooldown over", gates(), input(func(in *Input) {
			in.Journal = []JournalEntry{{Guest: "qemu/100", Source: "pve3", Target: "pve1", Ended: t0.Add(-2 * time.Hour)}}
		}), nil},
		{"longer cooldown after a failure", gates(), input(func(in *Input) {
			in.Journal = []JournalEntry{{Guest: "qemu/100", Source: "pve1", Target: "pve3", Ended: t0.Add(-2 * time.Hour), Failed: true}}
		}), []Reason{ReasonFailureCooldown}},
		{"evacuation keeps the cooldown", gates(), input(func(in *Input) {
			in.Evacuation = true
			in.Journal = []JournalEntry{{Guest: "qemu/100", Source: "pve3", Target: "pve1", Ended: t0.Add(-30 * time.Minute)}}
		}), []Reason{ReasonCooldown}},
		{"rollback from the journal", gates(), input(func(in *Input) {
			in.Journal = []JournalEntry{{Guest: "qemu/100", Source: "pve2", Target: "pve1", Ended: t0.Add(-5 * time.Hour)}}
		}), []Reason{ReasonRollback}},
		{"rollback window over", gates(), input(func(in *Input) {
			in.Journal = []JournalEntry{{Guest: "qemu/100", Source: "pve2", Target: "pve1", Ended: t0.Add(-25 * time.Hour)}}
		}), nil},
		{"a failed move left nothing", gates(func(g *Gates) { g.FailureCooldown = time.Hour }), input(func(in *Input) {
			in.Journal = []JournalEntry{{Guest: "qemu/100", Source: "pve2", Target: "pve1", Ended: t0.Add(-5 * time.Hour), Failed: true}}
		}), nil},
		{"rollback from Prometheus after state loss", gates(), input(func(in *Input) {
			in.Departures = []Departure{{Guest: "qemu/100", Node: "pve2", LeftAt: t0.Add(-23 * time.Hour)}}
		}), []Reason{ReasonRollback}},
		{"rollback window configurable", gates(func(g *Gates) { g.RollbackWindow = 2 * time.Hour }), input(func(in *Input) {
			in.Departures = []Departure{{Guest: "qemu/100", Node: "pve2", LeftAt: t0.Add(-3 * time.Hour)}}
		}), nil},
		{"evacuation bypasses rollback", gates(), input(func(in *Input) {
			in.Evacuation = true
			in.Departures = []Departure{{Guest: "qemu/100", Node: "pve2", LeftAt: t0.Add(-3 * time.Hour)}}
		}), nil},
		{"low confidence", gates(func(g *Gates) { g.MinConfidence = 90 }), input(), []Reason{ReasonLowConfidence}},
		{"low improvement", gates(func(g *Gates) { g.MinImprovement = 25 }), input(), []Reason{ReasonLowImprovement}},
		{"max concurrent counts running tasks", gates(func(g *Gates) { g.MaxConcurrent = 2 }), input(func(in *Input) { in.Running = 2 }), []Reason{ReasonMaxConcurrent}},
		{"every failing gate is listed", gates(func(g *Gates) { g.MinConfidence = 90 }), input(func(in *Input) {
			in.Quorate = false
			in.Moves[0].Tags = []string{"ignore"}
		}), []Reason{ReasonNoQuorum, ReasonTagIgnore, ReasonLowConfidence}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.gates.Validate(); err != nil {
				t.Fatalf("invalid gates: %v", err)
			}
			vs := Evaluate(c.gates, c.in)
			if len(vs) != 1 {
				t.Fatalf("got %d verdicts, want 1", len(vs))
			}
			if !slices.Equal(vs[0].Reasons, c.want) {
				t.Errorf("reasons = %v (%q), want %v", vs[0].Reasons, vs[0].Messages, c.want)
			}
			if len(vs[0].Messages) != len(vs[0].Reasons) {
				t.Errorf("%d messages for %d reasons", len(vs[0].Messages), len(vs[0].Reasons))
			}
			if vs[0].Allowed() != (len(c.want) == 0) {
				t.Errorf("Allowed() = %v", vs[0].Allowed())
			}
		})
	}
}

func TestEvaluateRateLimits(t *testing.T) {
	moves := []Move{
		move("qemu/100", "pve1", "pve2"),
		move("qemu/101", "pve1", "pve2", tags("ignore")),
		move("qemu/102", "pve1", "pve3"),
		move("qemu/103", "pve1", "pve3"),
		move("qemu/104", "pve1", "pve3"),
	}
	cases := []struct {
		name    string
		gates   Gates
		running int
		want    []Reason // first reason per move, "" when allowed
	}{
		{"max per run counts only moves that pass", gates(func(g *Gates) { g.MaxPerRun = 2 }), 0,
			[]Reason{"", ReasonTagIgnore, "", ReasonMaxPerRun, ReasonMaxPerRun}},
		{"max concurrent includes running tasks", gates(func(g *Gates) { g.MaxConcurrent = 3 }), 1,
			[]Reason{"", ReasonTagIgnore, "", ReasonMaxConcurrent, ReasonMaxConcurrent}},
		{"dry-run counts like a real run", gates(func(g *Gates) { g.Mode = ModeDryRun; g.MaxPerRun = 2 }), 0,
			[]Reason{ReasonDryRun, ReasonTagIgnore, ReasonDryRun, ReasonMaxPerRun, ReasonMaxPerRun}},
		{"awaiting approval does not consume the budget", gates(func(g *Gates) { g.Mode = ModeManual; g.MaxPerRun = 1 }), 0,
			[]Reason{ReasonAwaitingApproval, ReasonTagIgnore, ReasonAwaitingApproval, ReasonAwaitingApproval, ReasonAwaitingApproval}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			vs := Evaluate(c.gates, Input{Now: t0, Quorate: true, Running: c.running, Moves: moves})
			var got []Reason
			for _, v := range vs {
				r := Reason("")
				if len(v.Reasons) > 0 {
					r = v.Reasons[0]
				}
				got = append(got, r)
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
}

func TestGatesValidate(t *testing.T) {
	cases := []struct {
		name string
		mut  func(*Gates)
		want string
	}{
		{"defaults", func(*Gates) {}, ""},
		{"rollback too short", func(g *Gates) { g.RollbackWindow = 30 * time.Minute }, "rollback_window: 30m0s is outside [1h, 168h]"},
		{"rollback too long", func(g *Gates) { g.RollbackWindow = 169 * time.Hour }, "rollback_window: 169h0m0s is outside [1h, 168h]"},
		{"bad mode", func(g *Gates) { g.Mode = "yolo" }, `mode "yolo": want dry-run, manual or auto`},
		{"zero per run", func(g *Gates) { g.MaxPerRun = 0 }, "max_migrations_per_run: 0 must be at least 1"},
		{"confidence", func(g *Gates) { g.MinConfidence = 101 }, "min_confidence: 101 is outside [0, 100]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := DefaultGates()
			c.mut(&g)
			err := g.Validate()
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != c.want {
				t.Errorf("Validate() = %q, want %q", got, c.want)
			}
		})
	}
}

func TestParseMode(t *testing.T) {
	for in, want := range map[string]Mode{"": ModeDryRun, "dry-run": ModeDryRun, "manual": ModeManual, "auto": ModeAuto} {
		if got, err := ParseMode(in); err != nil || got != want {
			t.Errorf("ParseMode(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseMode("Auto"); err == nil {
		t.Error("ParseMode(Auto): want an error (modes are lower case)")
	}
}
