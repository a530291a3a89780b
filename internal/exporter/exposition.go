package exporter

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
)

// A /pve scrape of a large cluster is hundreds of thousands of series, written by collectors that this package
// tests. A registry's Gather validates and hashes every series and keeps all of them as protobuf structs until
// expfmt has encoded them, which costs several times the conversion itself and most of the exporter's memory.
// An exposition instead renders each series into its family's text as it is written and keeps only that text;
// a family whose series arrive in several sorted runs (pve_up and the usage families, which the node, guest and
// storage collectors share) has the runs merged as it is written. It checks what the registry would (label count,
// UTF-8 label values, one type per family) and drops, with an error, what the registry would refuse. The
// golden, lint and promtool tests (and the debug view, which still uses a registry) keep the output honest;
// TestExpositionMatchesRegistry pins it to the registry and expfmt byte for byte.

// textExposition is one scrape's output in the Prometheus text format (0.0.4).
type textExposition struct {
	byDesc map[*prometheus.Desc]*descLayout
	byName map[string]*textFamily
	last   *prometheus.Desc
	lastD  *descLayout
	errs   []error
	values []string // scratch: a series' label values in the order they are written
	// chunks, when set, recycles full-size chunks between scrapes: the text of a large cluster is over 10 MB,
	// most of a scrape's garbage otherwise.
	chunks *chunkPool
}

// descLayout is how the series of one Desc are written: into which family, with which label names (sorted, as
// the registry writes them) and where each value comes from.
type descLayout struct {
	f      *textFamily // nil when the Desc cannot be written (reported once in errs)
	names  []string
	from   []int    // index into the collector's label values, or -1 for a constant label
	consts []string // values of the constant labels (from is -1)
	vars   int      // number of variable labels
}

// Chunks of rendered text grow geometrically from minChunk to maxChunk per family and are never grown in place
// (which would copy them): a full chunk is followed by a new one. A chunk takes another line only while it has
// chunkSlack left; a longer line (a guest with very many tags) grows the chunk instead.
const (
	minChunk   = 1 << 10
	maxChunk   = 256 << 10
	chunkSlack = 4 << 10
)

// textFamily is the rendered series of one metric family.
type textFamily struct {
	name, help string
	vt         prometheus.ValueType
	chunks     [][]byte
	count      int
	// prev are the label values of the last series, to notice a series that sorts before it.
	prev []string
	// runs are where the sorted runs of lines after the first begin: a series that sorts before its predecessor
	// starts a run.
	runs []textPos
}

// textPos is a position in a family's text: a chunk and an offset in it.
type textPos struct{ chunk, offset int }

func newExposition() *textExposition {
	return &textExposition{byDesc: map[*prometheus.Desc]*descLayout{}, byName: map[string]*textFamily{}}
}

// add renders one series into its family; labelValues are in the Desc's order and are not kept.
func (e *textExposition) add(desc *prometheus.Desc, vt prometheus.ValueType, value float64, labelValues []string) {
	d := e.lastD
	// Collectors write a family's series together or alternate between a few: the map is consulted only when
	// the Desc changes.
	if desc != e.last {
		if d = e.byDesc[desc]; d == nil {
			d = e.layout(desc, vt, len(labelValues))
			e.byDesc[desc] = d
		}
		e.last, e.lastD = desc, d
	}
	f := d.f
	if f == nil {
		return
	}
	if len(labelValues) != d.vars {
		e.errs = append(e.errs, fmt.Errorf("%s: %d label values for %d labels", f.name, len(labelValues), d.vars))
		return
	}
	if vt != f.vt {
		e.errs = append(e.errs, fmt.Errorf("%s: a %s series in a %s family", f.name, typeName(vt), typeName(f.vt)))
		return
	}
	values := e.values[:0]
	for i, from := range d.from {
		v := d.consts[i]
		if from >= 0 {
			v = labelValues[from]
			if !utf8.ValidString(v) {
				e.errs = append(e.errs, fmt.Errorf("%s: label %s value %q is not valid UTF-8", f.name, d.names[i], v))
				return
			}
		}
		values = append(values, v)
	}
	e.values = values
	at := f.render(e.chunks, d.names, values, value)
	if f.count > 0 && compareLabelValues(f.prev, values) > 0 {
		f.runs = append(f.runs, at)
	}
	f.prev = append(f.prev[:0], values...)
	f.count++
}

// layout learns how to write a Desc's series from a const metric whose label values are their own indexes:
// client_golang keeps a Desc's label names to itself, but writes a metric's labels sorted by name.
func (e *textExposition) layout(desc *prometheus.Desc, vt prometheus.ValueType, vars int) *descLayout {
	name, help := descNameHelp(desc)
	if name == "" {
		// client_golang changed how a Desc prints, or the Desc carries an error: never emit a nameless family;
		// the tests that pin this writer to expfmt's output fail loudly on such an upgrade.
		e.errs = append(e.errs, fmt.Errorf("cannot read the metric name of %s", desc))
		return &descLayout{}
	}
	probe := make([]string, vars)
	for i := range probe {
		probe[i] = probeValue(i)
	}
	var m dto.Metric
	pm, err := prometheus.NewConstMetric(desc, vt, 0, probe...)
	if err == nil {
		err = pm.Write(&m)
	}
	if err != nil {
		e.errs = append(e.errs, fmt.Errorf("%s: %w", name, err))
		return &descLayout{}
	}
	if !model.LegacyValidation.IsValidMetricName(name) {
		e.errs = append(e.errs, fmt.Errorf("metric name %q needs quoting, which this writer does not do", name))
		return &descLayout{}
	}
	d := &descLayout{vars: vars}
	for _, l := range m.GetLabel() {
		if !model.LegacyValidation.IsValidLabelName(l.GetName()) {
			e.errs = append(e.errs, fmt.Errorf("%s: label name %q needs quoting, which this writer does not do", name, l.GetName()))
			return &descLayout{}
		}
		from := slices.Index(probe, l.GetValue())
		d.names = append(d.names, l.GetName())
		d.from = append(d.from, from)
		if from >= 0 {
			d.consts = append(d.consts, "")
		} else {
			d.consts = append(d.consts, l.GetValue())
		}
	}
	f := e.byName[name]
	switch {
	case f == nil:
		f = &textFamily{name: name, help: help, vt: vt}
		e.byName[name] = f
	case f.vt != vt:
		e.errs = append(e.errs, fmt.Errorf("%s: a %s series in a %s family", name, typeName(vt), typeName(f.vt)))
		return &descLayout{}
	}
	d.f = f
	return d
}

// probeValue is the label value that marks label i in layout's probe: no real value starts with NUL.
func probeValue(i int) string { return "\x00" + strconv.Itoa(i) }

// compareLabelValues orders series of one family as the registry does: by label values in label-name order.
func compareLabelValues(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if c := strings.Compare(a[i], b[i]); c != 0 {
			return c
		}
	}
	return len(a) - len(b)
}

// render appends a series line to the family's last chunk, or to a new one when it has too little room, and
// returns where the line starts.
func (f *textFamily) render(pool *chunkPool, names, values []string, value float64) textPos {
	i := len(f.chunks) - 1
	if i < 0 || cap(f.chunks[i])-len(f.chunks[i]) < chunkSlack {
		size := minChunk + chunkSlack
		if i >= 0 {
			size = min(2*cap(f.chunks[i]), maxChunk)
		}
		f.chunks = append(f.chunks, newChunk(pool, size))
		i++
	}
	at := textPos{i, len(f.chunks[i])}
	f.chunks[i] = appendSeries(f.chunks[i], f.name, names, values, value)
	return at
}

// newChunk returns an empty chunk of capacity size, a recycled one for full-size chunks when there is one.
func newChunk(pool *chunkPool, size int) []byte {
	if size == maxChunk && pool != nil {
		if c := pool.get(); c != nil {
			return c
		}
	}
	return make([]byte, 0, size)
}

// release hands the full-size chunks to the pool for the next scrape; the exposition is empty afterwards.
func (e *textExposition) release() {
	for _, f := range e.byName {
		for _, c := range f.chunks {
			if cap(c) == maxChunk && e.chunks != nil {
				e.chunks.put(c)
			}
		}
		f.chunks, f.runs, f.count = nil, nil, 0
	}
}

// chunkPool keeps full-size text chunks between scrapes, up to maxPooledChunks (32 MiB). Unlike a sync.Pool it
// is not emptied by the garbage collector, which runs several times during a large scrape, mostly while the
// inventory is fetched: a sync.Pool had lost the chunks by the time the next scrape rendered.
type chunkPool struct {
	mu   sync.Mutex
	free [][]byte
}

const maxPooledChunks = 128

func (p *chunkPool) get() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.free)
	if n == 0 {
		return nil
	}
	c := p.free[n-1]
	p.free[n-1] = nil
	p.free = p.free[:n-1]
	return c[:0]
}

func (p *chunkPool) put(c []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.free) < maxPooledChunks {
		p.free = append(p.free, c)
	}
}

// lineCursor walks the lines of a family's text from one position to another.
type lineCursor struct {
	chunks  [][]byte
	at, end textPos
}

// line returns the line at the cursor, or nil at the end.
func (c *lineCursor) line() []byte {
	for c.at != c.end && c.at.offset == len(c.chunks[c.at.chunk]) {
		c.at = textPos{c.at.chunk + 1, 0} // lines never span chunks
	}
	if c.at == c.end {
		return nil
	}
	rest := c.chunks[c.at.chunk][c.at.offset:]
	return rest[:bytes.IndexByte(rest, '\n')+1]
}

func (c *lineCursor) next(line []byte) { c.at.offset += len(line) }

// compareLines orders two rendered series lines of one family as compareLabelValues orders their label values,
// reading the values from the escaped text without copying them.
func compareLines(a, b []byte) int {
	ra, rb := labelReader{line: a}, labelReader{line: b}
	ra.start()
	rb.start()
	for {
		ca, cb := ra.next(), rb.next()
		if ca != cb {
			return ca - cb
		}
		if ca == endOfLabels {
			return 0
		}
	}
}

// labelReader reads the label values of a rendered line as a stream of unescaped bytes (0-255), with
// endOfValue after each value and endOfLabels after the last: a value that is a prefix of another sorts first,
// and so does a line with fewer values.
type labelReader struct {
	line []byte
	i    int
	in   bool // inside a quoted value
}

const (
	endOfLabels = -2
	endOfValue  = -1
)

func (r *labelReader) start() {
	open := bytes.IndexByte(r.line, '{')
	if open < 0 || open > bytes.IndexByte(r.line, ' ') {
		r.i = len(r.line) // no labels
		return
	}
	r.i = open + 1
}

func (r *labelReader) next() int {
	if !r.in {
		if r.i >= len(r.line) || r.line[r.i] == '}' {
			return endOfLabels
		}
		r.i += bytes.IndexByte(r.line[r.i:], '"') + 1 // past name=" (label names contain no '"')
		r.in = true
	}
	c := r.line[r.i]
	r.i++
	switch c {
	case '"':
		r.in = false
		if r.line[r.i] == ',' {
			r.i++
		}
		return endOfValue
	case '\\':
		c = r.line[r.i]
		r.i++
		if c == 'n' {
			return '\n'
		}
	}
	return int(c)
}

// writeTo writes the families sorted by name, each family's series sorted by label values, as a registry
// orders them.
func (e *textExposition) writeTo(w io.Writer) error {
	families := make([]*textFamily, 0, len(e.byName))
	for _, f := range e.byName {
		if f.count > 0 {
			families = append(families, f)
		}
	}
	slices.SortFunc(families, func(a, b *textFamily) int { return strings.Compare(a.name, b.name) })
	bw := bufio.NewWriterSize(w, 64<<10)
	for _, f := range families {
		if err := f.writeTo(bw); err != nil {
			return err
		}
	}
	return bw.Flush()
}

func (f *textFamily) writeTo(bw *bufio.Writer) error {
	header := make([]byte, 0, 32+len(f.help))
	header = append(header, "# HELP "...)
	header = append(header, f.name...)
	header = append(header, ' ')
	header = appendEscaped(header, f.help, false)
	header = append(header, "\n# TYPE "...)
	header = append(header, f.name...)
	header = append(header, ' ')
	header = append(header, typeName(f.vt)...)
	header = append(header, '\n')
	if _, err := bw.Write(header); err != nil {
		return err
	}
	if len(f.runs) == 0 {
		for _, c := range f.chunks {
			if _, err := bw.Write(c); err != nil {
				return err
			}
		}
		return nil
	}
	return f.writeMerged(bw)
}

// writeMerged writes a family's sorted runs merged into one sorted list (stable: of equal lines, the earlier
// run's first).
func (f *textFamily) writeMerged(bw *bufio.Writer) error {
	end := textPos{len(f.chunks), 0}
	cursors := make([]lineCursor, 0, len(f.runs)+1)
	from := textPos{}
	for _, at := range f.runs {
		cursors = append(cursors, lineCursor{chunks: f.chunks, at: from, end: at})
		from = at
	}
	cursors = append(cursors, lineCursor{chunks: f.chunks, at: from, end: end})
	if len(cursors) > maxMergedRuns {
		return f.writeSorted(bw)
	}
	heads := make([][]byte, len(cursors))
	for i := range cursors {
		heads[i] = cursors[i].line()
	}
	for {
		best := -1
		for i, h := range heads {
			if h != nil && (best < 0 || compareLines(h, heads[best]) < 0) {
				best = i
			}
		}
		if best < 0 {
			return nil
		}
		if _, err := bw.Write(heads[best]); err != nil {
			return err
		}
		cursors[best].next(heads[best])
		heads[best] = cursors[best].line()
	}
}

// maxMergedRuns bounds the runs writeMerged merges by picking the least head line: collectors write a family in
// a few runs; a family in many more is sorted whole instead.
const maxMergedRuns = 16

// writeSorted writes a family's lines sorted (stable).
func (f *textFamily) writeSorted(bw *bufio.Writer) error {
	var lines [][]byte
	c := lineCursor{chunks: f.chunks, end: textPos{len(f.chunks), 0}}
	for l := c.line(); l != nil; l = c.line() {
		lines = append(lines, l)
		c.next(l)
	}
	slices.SortStableFunc(lines, compareLines)
	for _, l := range lines {
		if _, err := bw.Write(l); err != nil {
			return err
		}
	}
	return nil
}

// typeName is a value type as the text format's TYPE line names it.
func typeName(vt prometheus.ValueType) string {
	switch vt {
	case prometheus.CounterValue:
		return "counter"
	case prometheus.GaugeValue:
		return "gauge"
	}
	return "untyped"
}

// appendSeries renders one series line as expfmt does.
func appendSeries(buf []byte, name string, labelNames, labelValues []string, value float64) []byte {
	buf = append(buf, name...)
	if len(labelNames) > 0 {
		buf = append(buf, '{')
		for i, l := range labelNames {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, l...)
			buf = append(buf, '=', '"')
			buf = appendEscaped(buf, labelValues[i], true)
			buf = append(buf, '"')
		}
		buf = append(buf, '}')
	}
	buf = append(buf, ' ')
	buf = appendFloat(buf, value)
	return append(buf, '\n')
}

// descNameHelp reads the name and help of a Desc, which client_golang only exposes through String:
// `Desc{fqName: "…", help: "…", …}` with Go-quoted strings.
func descNameHelp(d *prometheus.Desc) (name, help string) {
	s := d.String()
	return quotedAfter(s, "fqName: "), quotedAfter(s, "help: ")
}

func quotedAfter(s, key string) string {
	_, rest, ok := strings.Cut(s, key)
	if !ok {
		return ""
	}
	q, err := strconv.QuotedPrefix(rest)
	if err != nil {
		return ""
	}
	v, _ := strconv.Unquote(q) // QuotedPrefix returned a valid quoted string
	return v
}

// appendEscaped escapes a help text (backslash, newline) or a label value (also the double quote) as the text
// format requires.
func appendEscaped(buf []byte, s string, quote bool) []byte {
	// A byte loop: strings.ContainsAny is several times slower for three ASCII characters, and nearly every value
	// needs no escaping.
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '\\' || c == '\n' || c == '"' {
			clean = false
			break
		}
	}
	if clean {
		return append(buf, s...)
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			buf = append(buf, '\\', '\\')
		case c == '\n':
			buf = append(buf, '\\', 'n')
		case c == '"' && quote:
			buf = append(buf, '\\', '"')
		default:
			buf = append(buf, c)
		}
	}
	return buf
}

// appendFloat formats a sample value as expfmt does (strconv's 'g' with the shortest precision).
func appendFloat(buf []byte, f float64) []byte {
	switch {
	case f == 1:
		return append(buf, '1')
	case f == 0:
		return append(buf, '0')
	case f == -1:
		return append(buf, '-', '1')
	case math.IsNaN(f):
		return append(buf, "NaN"...)
	case math.IsInf(f, +1):
		return append(buf, "+Inf"...)
	case math.IsInf(f, -1):
		return append(buf, "-Inf"...)
	case f == math.Trunc(f) && math.Abs(f) < 1<<53:
		return appendInteger(buf, int64(f))
	}
	return strconv.AppendFloat(buf, f, 'g', -1, 64)
}

// appendInteger formats an integral float below 2^53 in magnitude as strconv's shortest 'g' does, from its
// integer digits: byte counts and the like are most of a scrape's values, and this is several times faster.
// Below 2^53 every integer is a float of its own, so its digits without trailing zeros are the shortest that
// round-trip; 'g' writes them plainly below 1e6 and as d.ddde+XX from there on.
func appendInteger(buf []byte, v int64) []byte {
	if v < 0 {
		buf = append(buf, '-')
		v = -v
	}
	if v < 1e6 {
		return strconv.AppendInt(buf, v, 10)
	}
	var digits [20]byte
	d := strconv.AppendInt(digits[:0], v, 10)
	exp := len(d) - 1
	for d[len(d)-1] == '0' {
		d = d[:len(d)-1]
	}
	buf = append(buf, d[0])
	if len(d) > 1 {
		buf = append(buf, '.')
		buf = append(buf, d[1:]...)
	}
	buf = append(buf, 'e', '+')
	if exp < 10 {
		buf = append(buf, '0')
	}
	return strconv.AppendInt(buf, int64(exp), 10)
}
