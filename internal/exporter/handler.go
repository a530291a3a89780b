package exporter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/klauspost/compress/gzip"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"

	"github.com/proxbalance/proxbalance/internal/pve"
)

// Defaults of a /pve request.
const (
	DefaultTarget = "localhost"
	// DefaultTimeoutOffset is kept from the scrape timeout so that the answer reaches Prometheus in time.
	DefaultTimeoutOffset = 500 * time.Millisecond
	// fallbackTimeout applies when the request carries no X-Prometheus-Scrape-Timeout-Seconds header.
	fallbackTimeout = 120 * time.Second
)

// HandlerOpts configure the /pve handler.
type HandlerOpts struct {
	// Config returns the current configuration (it may be reloaded between requests).
	Config func() *Config
	// NewSource opens the inventory source of a target.
	NewSource SourceFactory
	// Collectors are the enabled collectors.
	Collectors []CollectorSpec
	// DropFamilies are families removed from every scrape (see CompatFamilyGroups).
	DropFamilies []*prometheus.Desc
	Metrics      *Metrics
	Logger       log.Logger
	// TimeoutOffset is subtracted from the scrape timeout header; DefaultTimeoutOffset when zero.
	TimeoutOffset time.Duration
}

// Handler serves /pve?target=&module=&cluster=&node=[&debug=true]: one scrape of one PVE target into a fresh
// registry, like prometheus-pve-exporter and blackbox_exporter's /probe.
type Handler struct {
	opts   HandlerOpts
	drop   map[*prometheus.Desc]bool
	chunks chunkPool // text chunks of the expositions, see textExposition
}

// NewHandler returns the /pve handler.
func NewHandler(opts HandlerOpts) *Handler {
	if opts.TimeoutOffset == 0 {
		opts.TimeoutOffset = DefaultTimeoutOffset
	}
	if opts.Logger == nil {
		opts.Logger = log.NewNopLogger()
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(prometheus.NewRegistry(), nil)
	}
	h := &Handler{opts: opts}
	if len(opts.DropFamilies) > 0 {
		h.drop = make(map[*prometheus.Desc]bool, len(opts.DropFamilies))
		for _, d := range opts.DropFamilies {
			h.drop[d] = true
		}
	}
	return h
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	q := r.URL.Query()
	moduleName := paramOr(q.Get("module"), DefaultModule)
	module, ok := h.opts.Config().Module(moduleName)
	if !ok {
		h.opts.Metrics.moduleUnknown.Inc()
		level.Warn(h.opts.Logger).Log("msg", "unknown module", "module", moduleName)
		http.Error(w, fmt.Sprintf("Unknown module %q", moduleName), http.StatusBadRequest)
		return
	}
	target := paramOr(q.Get("target"), DefaultTarget)
	req := scrapeRequest{cluster: toggleParam(q, "cluster"), node: toggleParam(q, "node")}
	debug, _ := strconv.ParseBool(q.Get("debug"))

	var debugLog *syncBuffer
	logger := h.opts.Logger
	if debug {
		debugLog = &syncBuffer{}
		logger = teeLogger(logger, log.NewLogfmtLogger(debugLog))
	}
	logger = log.With(logger, "target", target, "module", moduleName)

	timeout := scrapeTimeout(r, h.opts.TimeoutOffset)
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	level.Debug(logger).Log("msg", "scrape started", "timeout_seconds", timeout.Seconds(), "cluster", req.cluster, "node", req.node)

	fetchStart := time.Now()
	inv, err := fetchInventory(ctx, h.opts.NewSource, target, module)
	fetchDuration := time.Since(fetchStart)
	if err != nil {
		h.opts.Metrics.requestErrors.WithLabelValues(moduleName).Inc()
		level.Error(logger).Log("msg", "fetching inventory failed", "duration_seconds", fetchDuration.Seconds(), "err", err)
	} else {
		for _, p := range inv.Partial {
			level.Warn(logger).Log("msg", "inventory is partial", "endpoint", p.Endpoint, "node", p.Node, "err", p.Err)
		}
	}

	if debug {
		h.serveDebug(w, moduleName, module, inv, h.registry(req, inv, err, fetchDuration, logger), debugLog)
	} else {
		h.serveExposition(w, r, h.collectors(req, inv, err, fetchDuration, logger), logger)
	}
	h.opts.Metrics.collectionDuration.WithLabelValues(moduleName).Observe(time.Since(start).Seconds())
}

// scrapeRequest is which collector scopes a /pve request asks for.
type scrapeRequest struct {
	cluster, node bool
}

// serveExposition writes the scrape in the text format, gzipped when the client accepts it. A large cluster's
// exposition is over 10 MB: klauspost/compress (which client_golang already requires) at its fastest level
// compresses it in about half the time of compress/gzip's, to the same size.
func (h *Handler) serveExposition(w http.ResponseWriter, r *http.Request, s scrapeParts, logger log.Logger) {
	e := newExposition()
	e.chunks = &h.chunks
	defer e.release()
	s.writeText(e)
	for _, err := range e.errs {
		level.Error(logger).Log("msg", "dropping a series", "err", err)
	}
	w.Header().Set("Content-Type", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	var out io.Writer = w
	if gzipAccepted(r.Header.Get("Accept-Encoding")) {
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Add("Vary", "Accept-Encoding")
		gz, _ := gzip.NewWriterLevel(w, gzip.BestSpeed) // a valid level cannot fail
		defer func() {
			if err := gz.Close(); err != nil {
				level.Debug(logger).Log("msg", "writing the exposition", "err", err)
			}
		}()
		out = gz
	}
	if err := e.writeTo(out); err != nil {
		// The client went away or the connection broke: nothing left to tell it.
		level.Debug(logger).Log("msg", "writing the exposition", "err", err)
	}
}

// gzipAccepted reports whether an Accept-Encoding header allows gzip.
func gzipAccepted(header string) bool {
	for _, part := range strings.Split(header, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			continue
		}
		q, ok := strings.CutPrefix(strings.ReplaceAll(params, " ", ""), "q=")
		if ok {
			if v, err := strconv.ParseFloat(q, 64); err == nil && v == 0 {
				return false
			}
		}
		return true
	}
	return false
}

// registry is the scrape's collectors in a registry, for the debug view and tests.
func (h *Handler) registry(req scrapeRequest, inv *pve.Inventory, fetchErr error, fetchDuration time.Duration, logger log.Logger) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(h.collectors(req, inv, fetchErr, fetchDuration, logger))
	return reg
}

// collectors is the scrape: the fetch outcome and every enabled collector in scope, one after the other.
func (h *Handler) collectors(req scrapeRequest, inv *pve.Inventory, fetchErr error, fetchDuration time.Duration, logger log.Logger) scrapeParts {
	s := scrapeParts{parts: []scrapePart{fetchCollector{duration: fetchDuration, err: fetchErr}}, drop: h.drop}
	for _, spec := range h.opts.Collectors {
		if (spec.Scope == ScopeCluster && !req.cluster) || (spec.Scope == ScopeNode && !req.node) {
			continue
		}
		s.parts = append(s.parts, namedCollector{name: spec.Name, c: spec.New(), inv: inv, logger: logger})
	}
	return s
}

// fetchInventory asks the target's source for a snapshot, giving up at ctx's deadline even when the source
// ignores ctx, so that a scrape always answers in time.
func fetchInventory(ctx context.Context, newSource SourceFactory, target string, module Module) (*pve.Inventory, error) {
	type result struct {
		inv *pve.Inventory
		err error
	}
	done := make(chan result, 1) // buffered: a late source must not block forever
	// The source gets a slightly earlier deadline than this wait, so that a source which returns what it has
	// at its deadline (the Snapshotter drops a slow node's calls) is heard before the scrape gives up on it.
	srcCtx, cancel := context.WithCancel(ctx)
	if d, ok := ctx.Deadline(); ok {
		srcCtx, cancel = context.WithDeadline(ctx, d.Add(-sourceDeadlineMargin(time.Until(d))))
	}
	defer cancel()
	go func() {
		src, err := newSource(srcCtx, target, module)
		if err != nil {
			done <- result{err: fmt.Errorf("opening source for %s: %w", target, err)}
			return
		}
		inv, err := src.Inventory(srcCtx)
		if err == nil && inv == nil {
			err = errors.New("source returned no inventory")
		}
		done <- result{inv, err}
	}()
	select {
	case res := <-done:
		if res.err != nil {
			return nil, res.err
		}
		return res.inv, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("fetching inventory of %s: %w", target, context.Cause(ctx))
	}
}

// sourceDeadlineMargin is how much earlier than the scrape's fetch deadline the source must answer: a tenth of
// the time left, at most 250ms.
func sourceDeadlineMargin(left time.Duration) time.Duration {
	return min(left/10, 250*time.Millisecond)
}

// scrapeTimeout is the scrape timeout Prometheus announces minus offset (blackbox_exporter's getTimeout).
func scrapeTimeout(r *http.Request, offset time.Duration) time.Duration {
	v := r.Header.Get("X-Prometheus-Scrape-Timeout-Seconds")
	if v == "" {
		return fallbackTimeout
	}
	seconds, err := strconv.ParseFloat(v, 64)
	if err != nil || seconds <= 0 || seconds > fallbackTimeout.Seconds()*100 {
		return fallbackTimeout
	}
	timeout := time.Duration(seconds * float64(time.Second))
	if timeout > offset {
		timeout -= offset
	}
	return timeout
}

// toggleParam reads cluster= and node= as prometheus-pve-exporter does: on unless "0", "false" or empty.
func toggleParam(q map[string][]string, name string) bool {
	vs, ok := q[name]
	if !ok || len(vs) == 0 {
		return true
	}
	switch strings.ToLower(vs[0]) {
	case "0", "false", "":
		return false
	}
	return true
}

func paramOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// serveDebug writes the effective module (secrets redacted), the log of this scrape, the inventory summary
// and the exposition, as plain text (blackbox_exporter's debug output).
func (h *Handler) serveDebug(w http.ResponseWriter, moduleName string, module Module, inv *pve.Inventory, reg *prometheus.Registry, logs *syncBuffer) {
	var b bytes.Buffer
	mfs, gatherErr := reg.Gather()
	b.WriteString("Module:\n")
	b.WriteString((&Config{Modules: map[string]Module{moduleName: module}}).Redacted())
	b.WriteString("\nLogs of this scrape:\n")
	b.WriteString(logs.String())
	if gatherErr != nil {
		fmt.Fprintf(&b, "gather errors: %v\n", gatherErr)
	}
	b.WriteString("\nInventory:\n")
	b.WriteString(inventorySummary(inv))
	b.WriteString("\nMetrics:\n")
	enc := expfmt.NewEncoder(&b, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			fmt.Fprintf(&b, "encoding %s: %v\n", mf.GetName(), err)
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write(b.Bytes())
}

// inventorySummary describes an inventory in a few lines.
func inventorySummary(inv *pve.Inventory) string {
	if inv == nil {
		return "none\n"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "fetched_at: %s\n", inv.FetchedAt.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "cluster: %q quorate=%t nodes=%d version=%s\n", inv.Cluster.Name, inv.Cluster.Quorate, inv.Cluster.NodeCount, inv.Cluster.PVEVersion)
	online, configs := 0, 0
	for _, n := range inv.Nodes {
		if n.Online {
			online++
		}
	}
	for _, g := range inv.Guests {
		if g.Config != nil {
			configs++
		}
	}
	fmt.Fprintf(&b, "nodes: %d (%d online)\n", len(inv.Nodes), online)
	fmt.Fprintf(&b, "guests: %d (%d with config)\n", len(inv.Guests), configs)
	fmt.Fprintf(&b, "storages: %d\ntasks: %d\nha resources: %d\nreplication jobs: %d\nnot backed up: %d\n",
		len(inv.Storages), len(inv.Tasks), len(inv.HA.Resources), len(inv.Replication), len(inv.NotBackedUp))
	fmt.Fprintf(&b, "partial: %d\n", len(inv.Partial))
	for _, p := range inv.Partial {
		fmt.Fprintf(&b, "  - %s (node %q): %v\n", p.Endpoint, p.Node, p.Err)
	}
	return b.String()
}

// syncBuffer is a bytes.Buffer safe for the concurrent collectors' loggers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// teeLogger logs to both loggers; the first may filter levels, the second (the debug view) sees everything.
func teeLogger(a, b log.Logger) log.Logger {
	return log.LoggerFunc(func(keyvals ...any) error {
		errA := a.Log(keyvals...)
		errB := b.Log(keyvals...)
		return errors.Join(errA, errB)
	})
}

// NewPromHTTPLogger adapts a go-kit logger to promhttp's error Logger.
func NewPromHTTPLogger(l log.Logger) promhttp.Logger { return promhttpLogger{l} }

type promhttpLogger struct{ l log.Logger }

func (p promhttpLogger) Println(v ...any) { p.l.Log("msg", fmt.Sprint(v...)) }
