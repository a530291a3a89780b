// Package policy holds the gates between a good move and an executed move: mode, migration windows and blackout
// periods, per-guest cooldowns, the rollback window, rate limits, confidence and improvement thresholds, quorum
// and guest tags. It is pure: the time, the cluster facts and the guest's recent moves are passed in, and every
// move that is held back gets a coded reason.
package policy

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Mode says what the balancer does with a plan.
type Mode string

// The modes.
const (
	// ModeDryRun makes and records plans; nothing migrates. The default.
	ModeDryRun Mode = "dry-run"
	// ModeManual runs moves only when an operator approves them.
	ModeManual Mode = "manual"
	// ModeAuto runs moves that pass every gate without approval.
	ModeAuto Mode = "auto"
)

// ParseMode reads a mode name; "" is the default, dry-run.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case "":
		return ModeDryRun, nil
	case ModeDryRun, ModeManual, ModeAuto:
		return m, nil
	}
	return "", fmt.Errorf("mode %q: want dry-run, manual or auto", s)
}

// Reason is a gate's coded verdict on a move it holds back. Reasons are stable: they are metric label values.
type Reason string

// The reasons a gate holds a move back.
const (
	ReasonDryRun           Reason = "DryRun"
	ReasonAwaitingApproval Reason = "AwaitingApproval"
	ReasonNoQuorum         Reason = "NoQuorum"
	ReasonOutsideWindow    Reason = "OutsideMigrationWindow"
	ReasonBlackout         Reason = "Blackout"
	ReasonTagIgnore        Reason = "TagIgnore"
	ReasonTagNoAutoMigrate Reason = "TagNoAutoMigrate"
	ReasonNotWhitelisted   Reason = "NotWhitelisted"
	ReasonCooldown         Reason = "Cooldown"
	ReasonFailureCooldown  Reason = "FailureCooldown"
	ReasonRollback         Reason = "RollbackWindow"
	ReasonLowConfidence    Reason = "LowConfidence"
	ReasonLowImprovement   Reason = "LowImprovement"
	ReasonMaxPerRun        Reason = "MaxMigrationsPerRun"
	ReasonMaxConcurrent    Reason = "MaxConcurrentMigrations"
)

// The tags the gates read (PVE tags, compared case-insensitively).
const (
	TagIgnore        = "ignore"
	TagNoAutoMigrate = "no-auto-migrate"
	TagAutoMigrateOK = "auto-migrate-ok"
)

// Defaults of Gates.
const (
	DefaultRollbackWindow  = 24 * time.Hour
	MinRollbackWindow      = time.Hour
	MaxRollbackWindow      = 168 * time.Hour
	DefaultMaxPerRun       = 3
	DefaultMaxConcurrent   = 1
	DefaultCooldown        = time.Hour
	DefaultFailureCooldown = 6 * time.Hour
)

// Gates configures every gate. The zero value of a field disables its gate, except where Default says otherwise.
type Gates struct {
	Mode Mode
	// Windows are when migrations may start; none means always.
	Windows []Window
	// Blackouts are when no migration may start; they win over Windows.
	Blackouts []Window
	// Cooldown holds a guest after any move of it ended; FailureCooldown (longer) after a failed one.
	Cooldown, FailureCooldown time.Duration
	// RollbackWindow: a guest never returns to a node it left within this window (1h–168h).
	RollbackWindow time.Duration
	// MaxPerRun bounds the moves started by one run; MaxConcurrent the migrations running at once.
	MaxPerRun, MaxConcurrent int
	// MinConfidence (0..100) and MinImprovement (points) bound load-driven moves.
	MinConfidence  int
	MinImprovement float64
	// RequireQuorum holds every move while the cluster is not quorate.
	RequireQuorum bool
	// Whitelist: in automatic execution only guests tagged auto-migrate-ok move.
	Whitelist bool
}

// DefaultGates returns the documented defaults: dry-run, 24 h rollback window, 3 moves per run, 1 at a time,
// quorum required.
func DefaultGates() Gates {
	return Gates{
		Mode: ModeDryRun, Cooldown: DefaultCooldown, FailureCooldown: DefaultFailureCooldown,
		RollbackWindow: DefaultRollbackWindow, MaxPerRun: DefaultMaxPerRun, MaxConcurrent: DefaultMaxConcurrent,
		RequireQuorum: true,
	}
}

// Validate reports every field out of range.
func (g Gates) Validate() error {
	var errs []error
	if _, err := ParseMode(string(g.Mode)); err != nil || g.Mode == "" {
		errs = append(errs, fmt.Errorf("mode %q: want dry-run, manual or auto", g.Mode))
	}
	if g.RollbackWindow < MinRollbackWindow || g.RollbackWindow > MaxRollbackWindow {
		errs = append(errs, fmt.Errorf("rollback_window: %v is outside [1h, 168h]", g.RollbackWindow))
	}
	if g.Cooldown < 0 || g.FailureCooldown < 0 {
		errs = append(errs, errors.New("cooldown: must not be negative"))
	}
	if g.MaxPerRun < 1 {
		errs = append(errs, fmt.Errorf("max_migrations_per_run: %d must be at least 1", g.MaxPerRun))
	}
	if g.MaxConcurrent < 1 {
		errs = append(errs, fmt.Errorf("max_concurrent_migrations: %d must be at least 1", g.MaxConcurrent))
	}
	if g.MinConfidence < 0 || g.MinConfidence > 100 {
		errs = append(errs, fmt.Errorf("min_confidence: %d is outside [0, 100]", g.MinConfidence))
	}
	if g.MinImprovement < 0 || g.MinImprovement > 100 {
		errs = append(errs, fmt.Errorf("min_improvement: %v is outside [0, 100]", g.MinImprovement))
	}
	for i, w := range g.Windows {
		if err := w.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("windows[%d]: %w", i, err))
		}
	}
	for i, w := range g.Blackouts {
		if err := w.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("blackouts[%d]: %w", i, err))
		}
	}
	return errors.Join(errs...)
}

// Move is what the gates need to know about one proposed move.
type Move struct {
	Guest          string
	Source, Target string
	// Tags are the guest's PVE tags.
	Tags        []string
	Confidence  int
	Improvement float64
}

// JournalEntry is one past move of a guest, from the balancer's journal.
type JournalEntry struct {
	Guest, Source, Target string
	// Ended is when the migration ended (its start when it never ended).
	Ended  time.Time
	Failed bool
}

// Departure says a guest left a node at a time. After the journal is lost, Prometheus' placement history
// (pve_guest_info's node label) still knows this.
type Departure struct {
	Guest, Node string
	LeftAt      time.Time
}

// Input is one evaluation's facts.
type Input struct {
	Now time.Time
	// Quorate is the cluster's quorum (/cluster/status).
	Quorate bool
	// Running counts migrations running now (from the cluster task list).
	Running int
	// Approved is true when an operator approved the moves; false for automatic execution.
	Approved bool
	// Evacuation marks a maintenance evacuation: tag and rollback gates are bypassed, and so are the
	// improvement and confidence thresholds (emptying a node is not optional). Hardware and storage constraints
	// are the planner's filters and are never bypassed.
	Evacuation bool
	Moves      []Move
	Journal    []JournalEntry
	Departures []Departure
}

// Verdict is the gates' answer for one move. Reasons lists every gate that holds it back, in gate order; a move
// with no reasons may start.
type Verdict struct {
	Move    Move
	Reasons []Reason
	// Messages has one human sentence per reason.
	Messages []string
}

// Allowed reports whether the move may start now.
func (v Verdict) Allowed() bool { return len(v.Reasons) == 0 }

func (v *Verdict) hold(r Reason, format string, args ...any) {
	v.Reasons = append(v.Reasons, r)
	v.Messages = append(v.Messages, fmt.Sprintf(format, args...))
}

// Evaluate returns one Verdict per move, in order. Rate limits count only moves that pass every other gate, in
// plan order, so the first good moves of a plan are the ones that run.
func Evaluate(g Gates, in Input) []Verdict {
	lastEnd, lastFailed := map[string]time.Time{}, map[string]bool{}
	left := map[[2]string]time.Time{}
	depart := func(guest, node string, at time.Time) {
		k := [2]string{guest, node}
		if at.After(left[k]) {
			left[k] = at
		}
	}
	for _, j := range g.sortedJournal(in.Journal) {
		lastEnd[j.Guest], lastFailed[j.Guest] = j.Ended, j.Failed
		if !j.Failed {
			depart(j.Guest, j.Source, j.Ended)
		}
	}
	for _, d := range in.Departures {
		depart(d.Guest, d.Node, d.LeftAt)
	}

	started := 0
	out := make([]Verdict, len(in.Moves))
	for i, m := range in.Moves {
		v := &out[i]
		v.Move = m
		if g.RequireQuorum && !in.Quorate {
			v.hold(ReasonNoQuorum, "the cluster is not quorate")
		}
		if r, msg, ok := g.timeGate(in.Now); !ok {
			v.hold(r, "%s", msg)
		}
		if !in.Evacuation {
			g.tagGates(v, m, in.Approved)
		}
		if end, ok := lastEnd[m.Guest]; ok {
			cool, r := g.Cooldown, ReasonCooldown
			if lastFailed[m.Guest] {
				cool, r = g.FailureCooldown, ReasonFailureCooldown
			}
			if until := end.Add(cool); in.Now.Before(until) {
				v.hold(r, "%s last moved at %s; cooling down until %s", m.Guest, end.UTC().Format(time.RFC3339), until.UTC().Format(time.RFC3339))
			}
		}
		if !in.Evacuation {
			if at, ok := left[[2]string{m.Guest, m.Target}]; ok && in.Now.Sub(at) < g.RollbackWindow {
				v.hold(ReasonRollback, "%s left %s at %s, within the %v rollback window", m.Guest, m.Target, at.UTC().Format(time.RFC3339), g.RollbackWindow)
			}
			if m.Confidence < g.MinConfidence {
				v.hold(ReasonLowConfidence, "confidence %d is below %d", m.Confidence, g.MinConfidence)
			}
			if m.Improvement < g.MinImprovement {
				v.hold(ReasonLowImprovement, "improvement %.1f points is below %.1f", m.Improvement, g.MinImprovement)
			}
		}
		if len(v.Reasons) > 0 {
			continue
		}
		switch {
		case started >= g.MaxPerRun:
			v.hold(ReasonMaxPerRun, "%d migrations already started by this run (max %d)", started, g.MaxPerRun)
			continue
		case in.Running+started >= g.MaxConcurrent:
			v.hold(ReasonMaxConcurrent, "%d migrations running (max %d)", in.Running+started, g.MaxConcurrent)
			continue
		}
		switch {
		case g.Mode == ModeDryRun:
			// A dry run counts like a real run, so it shows exactly what a real run would start.
			started++
			v.hold(ReasonDryRun, "dry-run mode: the move would start now")
		case g.Mode == ModeManual && !in.Approved:
			v.hold(ReasonAwaitingApproval, "manual mode: the move waits for an operator's approval")
		default:
			started++
		}
	}
	return out
}

// sortedJournal orders entries by end time, so the last entry of a guest decides its cooldown.
func (g Gates) sortedJournal(js []JournalEntry) []JournalEntry {
	js = slices.Clone(js)
	slices.SortStableFunc(js, func(a, b JournalEntry) int { return a.Ended.Compare(b.Ended) })
	return js
}

func (g Gates) timeGate(now time.Time) (Reason, string, bool) {
	for _, b := range g.Blackouts {
		if b.Contains(now) {
			return ReasonBlackout, fmt.Sprintf("inside blackout %s", b), false
		}
	}
	if len(g.Windows) == 0 {
		return "", "", true
	}
	for _, w := range g.Windows {
		if w.Contains(now) {
			return "", "", true
		}
	}
	return ReasonOutsideWindow, fmt.Sprintf("%s is outside every migration window", now.UTC().Format(time.RFC3339)), false
}

func (g Gates) tagGates(v *Verdict, m Move, approved bool) {
	has := func(tag string) bool {
		return slices.ContainsFunc(m.Tags, func(t string) bool { return strings.EqualFold(strings.TrimSpace(t), tag) })
	}
	if has(TagIgnore) {
		v.hold(ReasonTagIgnore, "%s is tagged %s", m.Guest, TagIgnore)
	}
	if approved {
		return
	}
	if has(TagNoAutoMigrate) {
		v.hold(ReasonTagNoAutoMigrate, "%s is tagged %s: it moves only with an operator's approval", m.Guest, TagNoAutoMigrate)
	}
	if g.Whitelist && !has(TagAutoMigrateOK) {
		v.hold(ReasonNotWhitelisted, "whitelist mode: %s is not tagged %s", m.Guest, TagAutoMigrateOK)
	}
}
