package exporter

import (
	"bytes"
	"errors"
	"math"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/proto"
)

// expfmtText is the reference: expfmt's text encoding of mfs.
func expfmtText(t testing.TB, mfs []*dto.MetricFamily) string {
	t.Helper()
	var b bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatalf("expfmt: %v", err)
		}
	}
	return b.String()
}

// exposeFamilies adds the series of mf to a new exposition, as a collector would send them.
func exposeFamilies(t testing.TB, mf *dto.MetricFamily) *textExposition {
	t.Helper()
	desc := prometheus.NewDesc(mf.GetName(), mf.GetHelp(), nil, nil)
	e := newExposition()
	for _, m := range mf.GetMetric() {
		e.add(dtoMetric{desc, m})
	}
	if len(e.errs) > 0 {
		t.Fatal(e.errs)
	}
	return e
}

// dtoMetric is a prometheus.Metric that writes a given dto.Metric.
type dtoMetric struct {
	desc *prometheus.Desc
	m    *dto.Metric
}

func (d dtoMetric) Desc() *prometheus.Desc { return d.desc }
func (d dtoMetric) Write(out *dto.Metric) error {
	proto.Merge(out, d.m)
	return nil
}

func TestExpositionMatchesExpfmt(t *testing.T) {
	gauge := dto.MetricType_GAUGE
	counter := dto.MetricType_COUNTER
	untyped := dto.MetricType_UNTYPED
	summary := dto.MetricType_SUMMARY
	series := func(value float64, labels ...string) *dto.Metric {
		m := &dto.Metric{Gauge: &dto.Gauge{Value: proto.Float64(value)}}
		for i := 0; i+1 < len(labels); i += 2 {
			m.Label = append(m.Label, &dto.LabelPair{Name: proto.String(labels[i]), Value: proto.String(labels[i+1])})
		}
		return m
	}
	tests := []struct {
		name string
		mf   *dto.MetricFamily
	}{
		{"gauge values", &dto.MetricFamily{Name: proto.String("g"), Help: proto.String("Plain help."), Type: &gauge, Metric: []*dto.Metric{
			series(0, "id", "a"), series(1, "id", "b"), series(-1, "id", "c"), series(0.25, "id", "d"), series(1e21, "id", "e"),
			series(math.NaN(), "id", "f"), series(math.Inf(1), "id", "g"), series(math.Inf(-1), "id", "h"), series(-3.5e-7, "id", "i"),
		}}},
		{"escaping", &dto.MetricFamily{Name: proto.String("e"), Help: proto.String(`back\slash "quoted"` + "\nnewline"), Type: &gauge, Metric: []*dto.Metric{
			series(2, "a", `q"uote`, "b", `back\slash`, "c", "new\nline", "d", "ünïcode"),
		}}},
		{"no labels, empty help", &dto.MetricFamily{Name: proto.String("n"), Help: proto.String(""), Type: &gauge, Metric: []*dto.Metric{series(3)}}},
		{"counter with timestamp", &dto.MetricFamily{Name: proto.String("c_total"), Help: proto.String("C."), Type: &counter, Metric: []*dto.Metric{
			{Counter: &dto.Counter{Value: proto.Float64(42)}, TimestampMs: proto.Int64(1700000000000)},
		}}},
		{"untyped", &dto.MetricFamily{Name: proto.String("u"), Help: proto.String(""), Type: &untyped, Metric: []*dto.Metric{
			{Untyped: &dto.Untyped{Value: proto.Float64(7)}},
		}}},
		{"summary falls back to expfmt", &dto.MetricFamily{Name: proto.String("s"), Help: proto.String("S."), Type: &summary, Metric: []*dto.Metric{
			{Summary: &dto.Summary{SampleCount: proto.Uint64(2), SampleSum: proto.Float64(3)}},
		}}},
		{"utf-8 name falls back to expfmt", &dto.MetricFamily{Name: proto.String("dotted.name"), Help: proto.String("D."), Type: &gauge, Metric: []*dto.Metric{series(1)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got bytes.Buffer
			if err := exposeFamilies(t, tt.mf).writeTo(&got); err != nil {
				t.Fatal(err)
			}
			if want := expfmtText(t, []*dto.MetricFamily{tt.mf}); got.String() != want {
				t.Errorf("exposition:\n%s\nexpfmt:\n%s", got.String(), want)
			}
		})
	}
}

// TestExpositionMatchesRegistry: an exposition writes what a registry's Gather and expfmt write, families and
// series in the same order, for a cluster with every kind of series the collectors emit.
func TestExpositionMatchesRegistry(t *testing.T) {
	// Over 2 MB of text: several chunks, lines moved to a fresh chunk at each boundary.
	inv := largeInventory(8, 1000)
	h := NewHandler(HandlerOpts{Collectors: Collectors(), Logger: log.NewNopLogger()})
	req := scrapeRequest{cluster: true, node: true}
	zeroDurations := func(text string) string {
		return regexp.MustCompile(`(?m)^(pve_exporter_scrape_collector_duration_seconds\{[^}]*\}) .*$`).ReplaceAllString(text, "$1 0")
	}
	mfs, err := h.registry(req, inv, nil, time.Millisecond, log.NewNopLogger()).Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := zeroDurations(expfmtText(t, mfs))
	e := newExposition()
	e.collect(h.collectors(req, inv, nil, time.Millisecond, log.NewNopLogger()))
	if len(e.errs) > 0 {
		t.Fatal(e.errs)
	}
	var b bytes.Buffer
	if err := e.writeTo(&b); err != nil {
		t.Fatal(err)
	}
	// The test must cover a family of several chunks and a family sorted through its line index.
	maxChunks, indexed := 0, 0
	for _, f := range e.byName {
		maxChunks = max(maxChunks, len(f.chunks))
		if f.lines != nil {
			indexed++
		}
	}
	if maxChunks < 3 || indexed == 0 {
		t.Errorf("largest family has %d chunks, %d families indexed: the test no longer covers both", maxChunks, indexed)
	}
	if got := zeroDurations(b.String()); got != want {
		t.Errorf("exposition differs from the registry's (%d vs %d bytes)", len(got), len(want))
	}
}

func TestExpositionSortsAndMergesFamilies(t *testing.T) {
	// Two Descs of one name (as two collectors may declare), series out of order, two labels.
	d1 := prometheus.NewDesc("x", "X.", []string{"id", "kind"}, nil)
	d2 := prometheus.NewDesc("x", "X.", []string{"id", "kind"}, nil)
	a := prometheus.NewDesc("a", "A.", nil, nil)
	e := newExposition()
	e.collect(collectorFunc(func(ch chan<- prometheus.Metric) {
		ch <- prometheus.MustNewConstMetric(d1, prometheus.GaugeValue, 3, "b", "x")
		ch <- prometheus.MustNewConstMetric(a, prometheus.CounterValue, 1)
		ch <- prometheus.MustNewConstMetric(d2, prometheus.GaugeValue, 2, "ab", "a")
		ch <- prometheus.MustNewConstMetric(d2, prometheus.GaugeValue, 1, "a", "z")
	}))
	var b bytes.Buffer
	if err := e.writeTo(&b); err != nil {
		t.Fatal(err)
	}
	want := "# HELP a A.\n# TYPE a counter\na 1\n# HELP x X.\n# TYPE x gauge\n" +
		"x{id=\"a\",kind=\"z\"} 1\nx{id=\"ab\",kind=\"a\"} 2\nx{id=\"b\",kind=\"x\"} 3\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

type collectorFunc func(chan<- prometheus.Metric)

func (f collectorFunc) Describe(chan<- *prometheus.Desc)    {}
func (f collectorFunc) Collect(ch chan<- prometheus.Metric) { f(ch) }

func TestGzipAccepted(t *testing.T) {
	for header, want := range map[string]bool{
		"":                             false,
		"gzip":                         true,
		"deflate, gzip;q=1.0, *;q=0.5": true,
		"GZIP":                         true,
		"gzip;q=0":                     false,
		"identity":                     false,
		"br, gzip ; q=0.8":             true,
	} {
		if got := gzipAccepted(header); got != want {
			t.Errorf("gzipAccepted(%q) = %t, want %t", header, got, want)
		}
	}
}

// FuzzExpositionMatchesExpfmt sends two series in the order given: when they are out of order, the exposition
// reads their sort keys back from the rendered (escaped) text.
func FuzzExpositionMatchesExpfmt(f *testing.F) {
	f.Add("Help.", "qemu/100", "lxc/101", 1.5)
	f.Add("back\\slash\nnew \"line\"", "va\"l\\ue\n", "va", math.Inf(-1))
	f.Add("", "", "", math.NaN())
	f.Add("h", "b\\\"", "b\\", 0.0)
	f.Fuzz(func(t *testing.T, help, first, second string, v float64) {
		gauge := dto.MetricType_GAUGE
		series := func(id, kind string) *dto.Metric {
			return &dto.Metric{
				Label: []*dto.LabelPair{{Name: proto.String("id"), Value: proto.String(id)}, {Name: proto.String("kind"), Value: proto.String(kind)}},
				Gauge: &dto.Gauge{Value: proto.Float64(v)},
			}
		}
		mf := &dto.MetricFamily{Name: proto.String("f"), Help: proto.String(help), Type: &gauge,
			Metric: []*dto.Metric{series(first, "a"), series(second, "b")}}
		var got bytes.Buffer
		if err := exposeFamilies(t, mf).writeTo(&got); err != nil {
			t.Fatal(err)
		}
		slices.SortStableFunc(mf.Metric, func(a, b *dto.Metric) int { return compareLabelValues(a.Label, b.Label) })
		if want := expfmtText(t, []*dto.MetricFamily{mf}); got.String() != want {
			t.Errorf("exposition:\n%q\nexpfmt:\n%q", got.String(), want)
		}
	})
}

func TestLineKey(t *testing.T) {
	for line, want := range map[string]string{
		"x 1\n":                              "",
		`x{id="a"} 1` + "\n":                 "a",
		`x{id="a",kind="b"} 1` + "\n":        "a\x00\x00b",
		`x{id="q\"u\\o\nte",k=""} 2` + "\n":  "q\"u\\o\nte\x00\x00",
		"x{id=\"\x00\",k=\"a\x00\"} 2\n":     "\x00\x01\x00\x00a\x00\x01",
		"x{id=\"a\x00b\"} 2\n":               "a\x00b",
		`x{id="{ }"} 1 1700000000000` + "\n": "{ }",
	} {
		if got := lineKey([]byte(line)); got != want {
			t.Errorf("lineKey(%q) = %q, want %q", line, got, want)
		}
	}
}

// TestUnreadableDescIsReportedOnceAndDropped: a Desc whose name cannot be read (an invalid Desc, or a future
// client_golang that prints Descs differently) must not yield a nameless family.
func TestUnreadableDescIsReportedOnceAndDropped(t *testing.T) {
	bad := prometheus.NewInvalidDesc(errors.New("broken"))
	good := prometheus.NewDesc("pve_test_value", "A test value.", nil, nil)
	e := newExposition()
	for range 3 {
		e.add(prometheus.MustNewConstMetric(good, prometheus.GaugeValue, 1))
		e.add(prometheus.NewInvalidMetric(bad, errors.New("broken")))
	}
	if len(e.errs) != 1 || !strings.Contains(e.errs[0].Error(), "cannot read the metric name") {
		t.Fatalf("errs = %v, want one unreadable-name error", e.errs)
	}
	var out bytes.Buffer
	if err := e.writeTo(&out); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); strings.Contains(got, "\n ") || strings.HasPrefix(got, " ") || !strings.Contains(got, "pve_test_value 1\n") {
		t.Fatalf("exposition:\n%s", got)
	}
}
