package history

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// QueryAPI is the part of client_golang's promv1.API that a Fetch uses.
type QueryAPI interface {
	QueryRange(ctx context.Context, query string, r promv1.Range, opts ...promv1.Option) (model.Value, promv1.Warnings, promv1.Infos, error)
}

var _ QueryAPI = promv1.API(nil)

// Config says which cluster to read and how much of its past.
type Config struct {
	// Selector selects one cluster's series by exact label values, e.g. {job: pve, instance: pve-a.example.org}
	// (or a cluster label added by relabelling). Empty reads every series, which is right only when Prometheus
	// scrapes one cluster.
	Selector map[string]string
	// Windows are the spans the planner looks at; a Fetch covers the longest, and Snapshot.Window gives the
	// shorter ones. Default 1h, 24h, 7d.
	Windows []time.Duration
	// Resolution is the smallest step. The default, 5m, is the recording rules' averaging window: a finer grid
	// would only repeat overlapping averages.
	Resolution time.Duration
	// MaxPoints caps the points per series of one query. Default and maximum: PrometheusMaxPoints.
	MaxPoints int
	// CoreOnly leaves out pressure, network and disk: three queries and most of the memory less.
	CoreOnly bool
}

// DefaultWindows are the planner's default views: the last hour, day and week.
var DefaultWindows = []time.Duration{time.Hour, 24 * time.Hour, 7 * 24 * time.Hour}

// DefaultResolution is the default smallest step.
const DefaultResolution = 5 * time.Minute

// withDefaults returns c with unset fields defaulted.
func (c Config) withDefaults() Config {
	if len(c.Windows) == 0 {
		c.Windows = slices.Clone(DefaultWindows)
	}
	if c.Resolution == 0 {
		c.Resolution = DefaultResolution
	}
	if c.MaxPoints == 0 {
		c.MaxPoints = PrometheusMaxPoints
	}
	return c
}

// Validate reports the first invalid field of c (after defaults).
func (c Config) Validate() error {
	c = c.withDefaults()
	for _, w := range c.Windows {
		if w <= 0 {
			return fmt.Errorf("history windows: %s is not positive", w)
		}
	}
	if c.Resolution < time.Second || c.Resolution%time.Second != 0 {
		return fmt.Errorf("history resolution %s: must be a whole number of seconds, at least 1s", c.Resolution)
	}
	if c.MaxPoints < 1 || c.MaxPoints > PrometheusMaxPoints {
		return fmt.Errorf("history max points %d: must be between 1 and %d", c.MaxPoints, PrometheusMaxPoints)
	}
	if err := selector(c.Selector).validate(); err != nil {
		return fmt.Errorf("history %w", err)
	}
	if _, err := ChooseStep(slices.Max(c.Windows), c.Resolution, c.MaxPoints); err != nil {
		return fmt.Errorf("history: %w", err)
	}
	return nil
}

// Client fetches snapshots of one cluster's history.
type Client struct {
	api    QueryAPI
	cfg    Config
	window time.Duration
	step   time.Duration
	logger log.Logger
}

// New returns a Client for cfg; it fails on an invalid config.
func New(api QueryAPI, cfg Config, logger log.Logger) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	window := slices.Max(cfg.Windows)
	step, err := ChooseStep(window, cfg.Resolution, cfg.MaxPoints)
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	if logger == nil {
		logger = log.NewNopLogger()
	}
	return &Client{api: api, cfg: cfg, window: window, step: step, logger: logger}, nil
}

// Step is the grid step every Fetch uses.
func (c *Client) Step() time.Duration { return c.step }

// Fetch reads the history that ends at the last step boundary at or before at. It makes one range query per
// signal (8, or 5 with CoreOnly) plus at most one shared fallback query. An error of a core signal's query
// (Prometheus down, a bad selector, an overloaded server) fails the whole Fetch with an error naming the query,
// because a plan on partial inputs is worse than no plan. The optional signals and the fallback only add to
// what the core queries returned; their errors become warnings and missing coverage.
func (c *Client) Fetch(ctx context.Context, at time.Time) (*Snapshot, error) {
	g, err := AlignedGrid(at, c.window, c.step)
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	snap := newSnapshot(g)
	sel := selector(c.cfg.Selector)
	var fallbacks []signalQuery
	var until []int // per fallback query: the grid index its recording rule's data starts at
	for _, q := range signalQueries(sel, c.step, c.cfg.CoreOnly) {
		expr := q.rule
		if expr == "" {
			expr = q.raw
		}
		m, err := c.queryRange(ctx, snap, q.name, expr, g)
		if err != nil {
			if !q.optional || ctx.Err() != nil {
				return nil, err
			}
			c.warn(snap, fmt.Sprintf("%s left out: %v", q.name, err))
			continue
		}
		c.fill(snap, q.name, m, q.route, g.Count)
		if q.rule == "" {
			continue
		}
		if first := firstIndex(g, m); first > 0 {
			fallbacks = append(fallbacks, q)
			until = append(until, first)
		}
	}
	if len(fallbacks) > 0 {
		if err := c.fetchFallbacks(ctx, snap, fallbacks, until); err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			// The recorded series are in, so this is a shorter history, not a broken one (typically a raw
			// query over a long window hitting Prometheus' query.max-samples): coverage shows the hole.
			c.warn(snap, fmt.Sprintf("history before the recording rules' first samples left out: %v", err))
		}
	}
	c.warnMissing(snap)
	return snap, nil
}

// fetchFallbacks reads the raw metrics of every query whose recording rule starts after the grid's start, in one
// query over the span before the latest of those starts, and fills each signal only before its rule's start.
func (c *Client) fetchFallbacks(ctx context.Context, snap *Snapshot, qs []signalQuery, until []int) error {
	g := snap.Grid
	fb := g
	fb.Count = slices.Max(until)
	m, err := c.queryRange(ctx, snap, "fallback", fallbackExpr(qs), fb)
	if err != nil {
		return err
	}
	byQuery := map[string]model.Matrix{}
	for _, s := range m {
		name := string(s.Metric[fallbackLabel])
		byQuery[name] = append(byQuery[name], s)
	}
	for i, q := range qs {
		c.fill(snap, "fallback "+q.name, byQuery[q.name], q.route, until[i])
		snap.Fallbacks = append(snap.Fallbacks, Fallback{Query: q.name, From: g.Start, Until: g.Time(until[i] - 1)})
		level.Info(c.logger).Log("msg", "recording rule has no data for the start of the window; raw metrics used",
			"query", q.name, "from", g.Start, "until", g.Time(until[i]-1))
	}
	return nil
}

// firstIndex returns the grid index of the earliest sample of m, g.Count when m has none, 0 when m starts at the
// grid's start.
func firstIndex(g Grid, m model.Matrix) int {
	first := g.Count
	for _, s := range m {
		if len(s.Values) == 0 {
			continue
		}
		if i, ok := g.index(int64(s.Values[0].Timestamp)); ok && i < first {
			first = i
		}
	}
	return first
}

func (c *Client) fill(snap *Snapshot, name string, m model.Matrix, route router, until int) {
	st := snap.fill(m, route, until)
	if st.Unrouted > 0 {
		c.warn(snap, fmt.Sprintf("%s: %d series without a node or guest id (or PSI resource/kind) ignored", name, st.Unrouted))
	}
	if st.OffGrid > 0 {
		c.warn(snap, fmt.Sprintf("%s: %d samples off the grid ignored", name, st.OffGrid))
	}
}

// queryRange runs one range query over g and returns its matrix; warnings and infos are logged, warnings also
// kept in the snapshot.
func (c *Client) queryRange(ctx context.Context, snap *Snapshot, name, expr string, g Grid) (model.Matrix, error) {
	r := promv1.Range{Start: g.Start, End: g.End(), Step: g.Step}
	began := time.Now()
	v, warnings, infos, err := c.api.QueryRange(ctx, expr, r)
	took := time.Since(began)
	for _, w := range warnings {
		c.warn(snap, fmt.Sprintf("%s: prometheus: %s", name, w))
	}
	for _, i := range infos {
		level.Info(c.logger).Log("msg", "prometheus info", "query", name, "info", i)
	}
	if err != nil {
		return nil, fmt.Errorf("history query %s (%s): %w", name, expr, err)
	}
	m, ok := v.(model.Matrix)
	if !ok {
		return nil, fmt.Errorf("history query %s (%s): %w: got %s", name, expr, errNotMatrix, v.Type())
	}
	snap.Queries = append(snap.Queries, QueryRecord{Name: name, Expr: expr, Start: r.Start, End: r.End, Step: r.Step,
		Series: len(m), Duration: took})
	level.Debug(c.logger).Log("msg", "prometheus range query", "query", name, "series", len(m), "duration", took)
	return m, nil
}

var errNotMatrix = errors.New("range query did not return a matrix")

func (c *Client) warn(snap *Snapshot, msg string) {
	snap.Warnings = append(snap.Warnings, msg)
	level.Warn(c.logger).Log("msg", "history", "warning", msg)
}

// warnMissing notes core signals for which Prometheus returned nothing at all: usually a missing recording rule
// group together with missing exporter metrics, or a selector that matches no cluster.
func (c *Client) warnMissing(snap *Snapshot) {
	check := func(kind string, es map[string]*Entity, sigs []Signal) {
		if len(es) == 0 {
			c.warn(snap, fmt.Sprintf("no %s series at all (selector %s)", kind, selector(c.cfg.Selector).render()))
			return
		}
		for _, sig := range sigs {
			found := false
			for _, e := range es {
				if e.Series[sig].Present > 0 {
					found = true
					break
				}
			}
			if !found {
				c.warn(snap, fmt.Sprintf("no %s %s data in the window", kind, sig))
			}
		}
	}
	check("node", snap.Nodes, nodeCoreSignals)
	check("guest", snap.Guests, guestCoreSignals)
}
