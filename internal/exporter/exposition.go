package exporter

import (
	"bufio"
	"cmp"
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
)

// A /pve scrape of a large cluster is hundreds of thousands of series, produced from a snapshot by collectors
// that this package tests: the registry's per-series validation (consistency hashing, duplicate detection) and
// expfmt's generic escaping cost several times the conversion itself. gatherUnchecked and writeText are the
// lean path for /pve; the golden, lint and promtool tests (and the debug view, which still uses a registry)
// keep the output honest, and TestWriteTextMatchesExpfmt pins the writer to expfmt's output byte for byte.

// gatherUnchecked collects c's metrics into families, as a registry's Gather does but without its checks:
// families sorted by name, series within a family sorted by label values (a no-op when collectors emit them in
// order, as ours do). Metrics that fail to Write are dropped and returned as errors.
func gatherUnchecked(c prometheus.Collector) ([]*dto.MetricFamily, []error) {
	ch := make(chan prometheus.Metric, 1024)
	go func() {
		defer close(ch)
		c.Collect(ch)
	}()
	byDesc := map[*prometheus.Desc]*dto.MetricFamily{}
	byName := map[string]*dto.MetricFamily{}
	var errs []error
	for m := range ch {
		desc := m.Desc()
		mf, ok := byDesc[desc]
		if !ok {
			name, help := descNameHelp(desc)
			if mf, ok = byName[name]; !ok {
				mf = &dto.MetricFamily{Name: &name, Help: &help}
				byName[name] = mf
			}
			byDesc[desc] = mf
		}
		out := &dto.Metric{}
		if err := m.Write(out); err != nil {
			errs = append(errs, fmt.Errorf("writing a series of %s: %w", mf.GetName(), err))
			continue
		}
		if mf.Type == nil {
			t := metricType(out)
			mf.Type = &t
		}
		mf.Metric = append(mf.Metric, out)
	}
	mfs := make([]*dto.MetricFamily, 0, len(byName))
	for _, mf := range byName {
		if !slices.IsSortedFunc(mf.Metric, compareLabelValues) {
			slices.SortStableFunc(mf.Metric, compareLabelValues)
		}
		mfs = append(mfs, mf)
	}
	slices.SortFunc(mfs, func(a, b *dto.MetricFamily) int { return strings.Compare(a.GetName(), b.GetName()) })
	return mfs, errs
}

// compareLabelValues orders series of one family as the registry does: by label values in label-name order.
func compareLabelValues(a, b *dto.Metric) int {
	la, lb := a.GetLabel(), b.GetLabel()
	for i := range min(len(la), len(lb)) {
		if c := strings.Compare(la[i].GetValue(), lb[i].GetValue()); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(la), len(lb))
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
	name = quotedAfter(s, "fqName: ")
	help = quotedAfter(s, "help: ")
	return name, help
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

// writeText writes families in the Prometheus text format (0.0.4). Gauges, counters and untyped series with
// legacy names, which is everything /pve exports, are written directly; other families go through expfmt.
func writeText(w io.Writer, mfs []*dto.MetricFamily) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	var buf []byte
	for _, mf := range mfs {
		if len(mf.GetMetric()) == 0 {
			continue
		}
		if !simpleFamily(mf) {
			if err := bw.Flush(); err != nil {
				return err
			}
			if _, err := expfmt.MetricFamilyToText(bw, mf); err != nil {
				return fmt.Errorf("encoding %s: %w", mf.GetName(), err)
			}
			continue
		}
		name := mf.GetName()
		buf = buf[:0]
		if mf.Help != nil {
			buf = append(buf, "# HELP "...)
			buf = append(buf, name...)
			buf = append(buf, ' ')
			buf = appendEscaped(buf, mf.GetHelp(), false)
			buf = append(buf, '\n')
		}
		buf = append(buf, "# TYPE "...)
		buf = append(buf, name...)
		buf = append(buf, ' ')
		buf = append(buf, strings.ToLower(mf.GetType().String())...)
		buf = append(buf, '\n')
		for _, m := range mf.GetMetric() {
			buf = append(buf, name...)
			if labels := m.GetLabel(); len(labels) > 0 {
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
			buf = appendFloat(buf, sampleValue(mf.GetType(), m))
			if m.TimestampMs != nil {
				buf = append(buf, ' ')
				buf = strconv.AppendInt(buf, m.GetTimestampMs(), 10)
			}
			buf = append(buf, '\n')
			if len(buf) > 32<<10 {
				if _, err := bw.Write(buf); err != nil {
					return err
				}
				buf = buf[:0]
			}
		}
		if _, err := bw.Write(buf); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// simpleFamily reports whether writeText can write mf itself: a gauge, counter or untyped family whose metric
// and label names need no quoting.
func simpleFamily(mf *dto.MetricFamily) bool {
	switch mf.GetType() {
	case dto.MetricType_GAUGE, dto.MetricType_COUNTER, dto.MetricType_UNTYPED:
	default:
		return false
	}
	if !model.LegacyValidation.IsValidMetricName(mf.GetName()) {
		return false
	}
	for _, m := range mf.GetMetric() {
		if sampleMissing(mf.GetType(), m) {
			return false // let expfmt report the malformed series
		}
		for _, l := range m.GetLabel() {
			if !model.LegacyValidation.IsValidLabelName(l.GetName()) {
				return false
			}
		}
	}
	return true
}

func sampleMissing(t dto.MetricType, m *dto.Metric) bool {
	switch t {
	case dto.MetricType_GAUGE:
		return m.Gauge == nil
	case dto.MetricType_COUNTER:
		return m.Counter == nil
	default:
		return m.Untyped == nil
	}
}

func sampleValue(t dto.MetricType, m *dto.Metric) float64 {
	switch t {
	case dto.MetricType_GAUGE:
		return m.GetGauge().GetValue()
	case dto.MetricType_COUNTER:
		return m.GetCounter().GetValue()
	default:
		return m.GetUntyped().GetValue()
	}
}

// appendEscaped escapes a help text (backslash, newline) or a label value (also the double quote) as the text
// format requires.
func appendEscaped(buf []byte, s string, quote bool) []byte {
	if !strings.ContainsAny(s, "\\\n\"") {
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
