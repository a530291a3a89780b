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

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/proto"
)

// A /pve scrape of a large cluster is hundreds of thousands of series, produced from a snapshot by collectors
// that this package tests. A registry's Gather validates and hashes every series and keeps all of them as
// protobuf structs until expfmt has encoded them, which costs several times the conversion itself and most of
// the exporter's memory. An exposition instead renders each series into its family's text as it arrives and
// keeps only that text; a family whose series arrive out of order (pve_up and the usage families, which the
// node, guest and storage collectors share) also gets an index of its lines to sort. The golden, lint and
// promtool tests (and the debug view, which still uses a registry) keep the output honest;
// TestExpositionMatchesRegistry pins it to the registry and expfmt byte for byte.

// textExposition is one scrape's output in the Prometheus text format (0.0.4), assembled from collected metrics.
type textExposition struct {
	byDesc map[*prometheus.Desc]*textFamily
	byName map[string]*textFamily
	last   *prometheus.Desc
	lastF  *textFamily
	errs   []error
	scrap  []byte
	out    dto.Metric
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
	typ        dto.MetricType
	typed      bool
	chunks     [][]byte
	count      int
	// prev are the labels of the last series, to notice a series that sorts before it.
	prev []*dto.LabelPair
	// lines exists once a series arrived out of order: it locates every rendered series with its sort key
	// (see sortKey), which orders like the registry's comparison of label values.
	lines []textLine
	// other holds the series the exposition does not render itself (summaries, histograms, names that need
	// quoting); expfmt encodes them.
	other *dto.MetricFamily
}

type textLine struct {
	key               string
	chunk, start, end int32
}

func newExposition() *textExposition {
	return &textExposition{byDesc: map[*prometheus.Desc]*textFamily{}, byName: map[string]*textFamily{}}
}

// collect runs c and adds every metric it sends.
func (e *textExposition) collect(c prometheus.Collector) {
	ch := make(chan prometheus.Metric, 1024)
	go func() {
		defer close(ch)
		c.Collect(ch)
	}()
	for m := range ch {
		e.add(m)
	}
}

// add renders one metric into its family. Metrics that fail to Write are dropped and recorded in errs.
func (e *textExposition) add(m prometheus.Metric) {
	desc := m.Desc()
	f := e.lastF
	// Collectors send a family's series together: the maps are consulted only when the family changes.
	if desc != e.last {
		var ok bool
		if f, ok = e.byDesc[desc]; !ok {
			name, help := descNameHelp(desc)
			if name == "" {
				// client_golang changed how a Desc prints, or the Desc carries an error: never emit a nameless
				// family; the tests that pin this writer to expfmt's output fail loudly on such an upgrade.
				e.errs = append(e.errs, fmt.Errorf("cannot read the metric name of %s", desc))
				e.byDesc[desc], e.last, e.lastF = nil, desc, nil // reported once, its series dropped
				return
			}
			if f, ok = e.byName[name]; !ok {
				f = &textFamily{name: name, help: help}
				e.byName[name] = f
			}
			e.byDesc[desc] = f
		}
		e.last, e.lastF = desc, f
	}
	if f == nil {
		return
	}
	out := &e.out
	out.Reset()
	if p, ok := m.(*presetSeries); ok {
		// No Write: that would allocate the value's message for nothing.
		if !f.typed {
			f.typ, f.typed = p.dtoType(), true
		}
		if f.other == nil && p.dtoType() == f.typ && (f.count > 0 || renderableNames(f.name, p.labels)) {
			e.addLine(f, p.labels, p.value, nil)
			return
		}
	}
	if err := m.Write(out); err != nil {
		e.errs = append(e.errs, fmt.Errorf("writing a series of %s: %w", f.name, err))
		return
	}
	if !f.typed {
		f.typ, f.typed = metricType(out), true
	}
	if f.other != nil || !renderable(f, out) {
		f.addOther(proto.Clone(out).(*dto.Metric))
		return
	}
	e.addLine(f, out.Label, sampleValue(f.typ, out), out.TimestampMs)
}

// addLine renders a series into the family's chunks. labels must stay unchanged until the next series (they
// belong to the metric, not to e.out).
func (e *textExposition) addLine(f *textFamily, labels []*dto.LabelPair, value float64, timestampMs *int64) {
	if f.lines == nil && f.count > 0 && compareLabelValues(f.prev, labels) > 0 {
		f.lines = f.index() // out of order: from now on every line is indexed
	}
	chunk, start, end := f.render(labels, value, timestampMs)
	if f.lines != nil {
		f.lines = append(f.lines, textLine{key: e.sortKey(labels), chunk: chunk, start: start, end: end})
	}
	f.prev = labels
	f.count++
}

// compareLabelValues orders series of one family as the registry does: by label values in label-name order.
func compareLabelValues(a, b []*dto.LabelPair) int {
	for i := range min(len(a), len(b)) {
		if c := strings.Compare(a[i].GetValue(), b[i].GetValue()); c != 0 {
			return c
		}
	}
	return len(a) - len(b)
}

// render appends a series line to the family's last chunk, or to a new one when it has too little room.
func (f *textFamily) render(labels []*dto.LabelPair, value float64, timestampMs *int64) (chunk, start, end int32) {
	i := len(f.chunks) - 1
	if i < 0 || cap(f.chunks[i])-len(f.chunks[i]) < chunkSlack {
		size := minChunk + chunkSlack
		if i >= 0 {
			size = min(2*cap(f.chunks[i]), maxChunk)
		}
		f.chunks = append(f.chunks, make([]byte, 0, size))
		i++
	}
	n := len(f.chunks[i])
	f.chunks[i] = appendSeries(f.chunks[i], f.name, labels, value, timestampMs)
	return int32(i), int32(n), int32(len(f.chunks[i]))
}

// index lists the lines rendered so far with their sort keys, read back from the text.
func (f *textFamily) index() []textLine {
	lines := make([]textLine, 0, 2*f.count)
	for ci, c := range f.chunks {
		for start := 0; start < len(c); {
			end := start + bytes.IndexByte(c[start:], '\n') + 1
			lines = append(lines, textLine{key: lineKey(c[start:end]), chunk: int32(ci), start: int32(start), end: int32(end)})
			start = end
		}
	}
	return lines
}

// lineKey is the sort key of a rendered series line: its label values, unescaped, joined by \x00.
func lineKey(line []byte) string {
	open := bytes.IndexByte(line, '{')
	space := bytes.IndexByte(line, ' ')
	if open < 0 || open > space {
		return ""
	}
	var key []byte
	labels := 0
	for i := open + 1; i < len(line) && line[i] != '}'; {
		eq := bytes.IndexByte(line[i:], '=') // label names contain no '=' or '"'
		i += eq + 2                          // past `="`
		if labels > 0 {
			key = append(key, 0, 0)
		}
		labels++
		for ; line[i] != '"'; i++ {
			c := line[i]
			if c == '\\' {
				i++
				if c = line[i]; c == 'n' {
					c = '\n'
				}
			}
			key = appendKeyByte(key, c)
		}
		i++ // past the closing quote
		if line[i] == ',' {
			i++
		}
	}
	if labels == 1 {
		return unescapeKey(key) // one value is its own key, as in sortKey
	}
	return string(key)
}

// appendKeyByte appends a byte of a label value to a multi-label sort key: NUL as \x00\x01, so that the
// separator \x00\x00 sorts before every value byte and keys compare like the value lists.
func appendKeyByte(key []byte, c byte) []byte {
	if c == 0 {
		return append(key, 0, 1)
	}
	return append(key, c)
}

func unescapeKey(key []byte) string {
	return strings.ReplaceAll(string(key), "\x00\x01", "\x00")
}

// sortKey joins label values with \x00\x00 (a NUL inside a value becomes \x00\x01), which sorts before every
// value byte, so that comparing keys compares label values one by one. A single label's value is used as is,
// without a copy.
func (e *textExposition) sortKey(labels []*dto.LabelPair) string {
	switch len(labels) {
	case 0:
		return ""
	case 1:
		return labels[0].GetValue()
	}
	e.scrap = e.scrap[:0]
	for i, l := range labels {
		if i > 0 {
			e.scrap = append(e.scrap, 0, 0)
		}
		v := l.GetValue()
		if strings.IndexByte(v, 0) < 0 {
			e.scrap = append(e.scrap, v...)
			continue
		}
		for j := 0; j < len(v); j++ {
			e.scrap = appendKeyByte(e.scrap, v[j])
		}
	}
	return string(e.scrap)
}

// renderable reports whether appendSeries can write m: a gauge, counter or untyped series whose metric and
// label names need no quoting, of the family's type.
func renderable(f *textFamily, m *dto.Metric) bool {
	if metricType(m) != f.typ {
		return false
	}
	switch f.typ {
	case dto.MetricType_GAUGE, dto.MetricType_COUNTER, dto.MetricType_UNTYPED:
	default:
		return false
	}
	if f.count > 0 {
		return true // the name and, as a Desc fixes them, the label names were checked with the first series
	}
	return renderableNames(f.name, m.GetLabel())
}

// renderableNames reports whether the metric and label names of a family's first series need no quoting.
func renderableNames(name string, labels []*dto.LabelPair) bool {
	if !model.LegacyValidation.IsValidMetricName(name) {
		return false
	}
	for _, l := range labels {
		if !model.LegacyValidation.IsValidLabelName(l.GetName()) {
			return false
		}
	}
	return true
}

// addOther moves the family to expfmt's encoding: the series rendered so far are dropped and m kept. Only
// families that are not renderable from their first series get here in practice.
func (f *textFamily) addOther(m *dto.Metric) {
	if f.other == nil {
		name, help, typ := f.name, f.help, f.typ
		f.other = &dto.MetricFamily{Name: &name, Help: &help, Type: &typ}
		f.chunks, f.lines, f.prev, f.count = nil, nil, nil, 0
	}
	f.other.Metric = append(f.other.Metric, m)
}

// writeTo writes the families sorted by name, each family's series sorted by label values, as a registry
// orders them.
func (e *textExposition) writeTo(w io.Writer) error {
	families := make([]*textFamily, 0, len(e.byName))
	for _, f := range e.byName {
		families = append(families, f)
	}
	slices.SortFunc(families, func(a, b *textFamily) int { return strings.Compare(a.name, b.name) })
	bw := bufio.NewWriterSize(w, 64<<10)
	for _, f := range families {
		if f.other != nil {
			if err := bw.Flush(); err != nil {
				return err
			}
			if _, err := expfmt.MetricFamilyToText(bw, f.other); err != nil {
				return fmt.Errorf("encoding %s: %w", f.name, err)
			}
			continue
		}
		if f.count == 0 {
			continue
		}
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
	header = append(header, strings.ToLower(f.typ.String())...)
	header = append(header, '\n')
	if _, err := bw.Write(header); err != nil {
		return err
	}
	if f.lines == nil {
		for _, c := range f.chunks {
			if _, err := bw.Write(c); err != nil {
				return err
			}
		}
		return nil
	}
	slices.SortStableFunc(f.lines, func(a, b textLine) int { return strings.Compare(a.key, b.key) })
	for _, l := range f.lines {
		if _, err := bw.Write(f.chunks[l.chunk][l.start:l.end]); err != nil {
			return err
		}
	}
	return nil
}

// sampleValue is the value of a gauge, counter or untyped series.
func sampleValue(typ dto.MetricType, m *dto.Metric) float64 {
	switch typ {
	case dto.MetricType_GAUGE:
		return m.GetGauge().GetValue()
	case dto.MetricType_COUNTER:
		return m.GetCounter().GetValue()
	}
	return m.GetUntyped().GetValue()
}

// appendSeries renders one gauge, counter or untyped series line as expfmt does.
func appendSeries(buf []byte, name string, labels []*dto.LabelPair, value float64, timestampMs *int64) []byte {
	buf = append(buf, name...)
	if len(labels) > 0 {
		buf = append(buf, '{')
		for i, l := range labels {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, l.GetName()...)
			buf = append(buf, '=', '"')
			buf = appendEscaped(buf, l.GetValue(), true)
			buf = append(buf, '"')
		}
		buf = append(buf, '}')
	}
	buf = append(buf, ' ')
	buf = appendFloat(buf, value)
	if timestampMs != nil {
		buf = append(buf, ' ')
		buf = strconv.AppendInt(buf, *timestampMs, 10)
	}
	return append(buf, '\n')
}

func metricType(m *dto.Metric) dto.MetricType {
	switch {
	case m.Gauge != nil:
		return dto.MetricType_GAUGE
	case m.Counter != nil:
		return dto.MetricType_COUNTER
	case m.Summary != nil:
		return dto.MetricType_SUMMARY
	case m.Histogram != nil:
		return dto.MetricType_HISTOGRAM
	}
	return dto.MetricType_UNTYPED
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

// appendFloat formats a sample value as expfmt does.
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
	}
	return strconv.AppendFloat(buf, f, 'g', -1, 64)
}
