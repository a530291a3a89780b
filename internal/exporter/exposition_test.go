package exporter

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
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

// testSeries is one series as a collector writes it.
type testSeries struct {
	desc   *prometheus.Desc
	vt     prometheus.ValueType
	value  float64
	labels []string
}

// writeSeries writes the series to w in the order given.
func writeSeries(w *SeriesWriter, series []testSeries) {
	for _, s := range series {
		w.add(s.desc, s.vt, s.value, s.labels)
	}
}

// registryText is what a registry and expfmt make of the series, and the registry's error.
func registryText(t testing.TB, series []testSeries) (string, error) {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectorFunc(func(ch chan<- prometheus.Metric) { writeSeries(&SeriesWriter{ch: ch}, series) }))
	mfs, err := reg.Gather()
	return expfmtText(t, mfs), err
}

// exposeText is what an exposition makes of the series.
func exposeText(t testing.TB, series []testSeries) (string, []error) {
	t.Helper()
	e := newExposition()
	writeSeries(&SeriesWriter{text: e}, series)
	var b bytes.Buffer
	if err := e.writeTo(&b); err != nil {
		t.Fatal(err)
	}
	return b.String(), e.errs
}

type collectorFunc func(chan<- prometheus.Metric)

func (f collectorFunc) Describe(chan<- *prometheus.Desc)    {}
func (f collectorFunc) Collect(ch chan<- prometheus.Metric) { f(ch) }

func TestExpositionMatchesRegistryEncoding(t *testing.T) {
	g := prometheus.NewDesc("g", "Plain help.", []string{"id"}, nil)
	esc := prometheus.NewDesc("e", `back\slash "quoted"`+"\nnewline", []string{"a", "b", "c", "d"}, nil)
	bare := prometheus.NewDesc("n", "", nil, nil)
	unsorted := prometheus.NewDesc("p", "Labels declared out of name order.", []string{"id", "resource", "kind"}, nil)
	constant := prometheus.NewDesc("k", "A constant label.", []string{"id"}, prometheus.Labels{"cluster": "c1", "zone": "z"})
	tests := []struct {
		name   string
		series []testSeries
	}{
		{"gauge values", []testSeries{
			{g, prometheus.GaugeValue, 0, []string{"a"}}, {g, prometheus.GaugeValue, 1, []string{"b"}},
			{g, prometheus.GaugeValue, -1, []string{"c"}}, {g, prometheus.GaugeValue, 0.25, []string{"d"}},
			{g, prometheus.GaugeValue, 1e21, []string{"e"}}, {g, prometheus.GaugeValue, math.NaN(), []string{"f"}},
			{g, prometheus.GaugeValue, math.Inf(1), []string{"g"}}, {g, prometheus.GaugeValue, math.Inf(-1), []string{"h"}},
			{g, prometheus.GaugeValue, -3.5e-7, []string{"i"}},
		}},
		{"escaping", []testSeries{{esc, prometheus.GaugeValue, 2, []string{`q"uote`, `back\slash`, "new\nline", "ünïcode"}}}},
		{"no labels, empty help", []testSeries{{bare, prometheus.GaugeValue, 3, nil}}},
		{"counter", []testSeries{{prometheus.NewDesc("c_total", "C.", nil, nil), prometheus.CounterValue, 42, nil}}},
		{"untyped", []testSeries{{prometheus.NewDesc("u", "", nil, nil), prometheus.UntypedValue, 7, nil}}},
		{"labels written by name", []testSeries{
			{unsorted, prometheus.GaugeValue, 0.5, []string{"node/b", "cpu", "some"}},
			{unsorted, prometheus.GaugeValue, 0.25, []string{"node/a", "io", "full"}},
		}},
		{"constant labels", []testSeries{
			{constant, prometheus.GaugeValue, 1, []string{"y"}}, {constant, prometheus.GaugeValue, 2, []string{"x"}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, err := registryText(t, tt.series)
			if err != nil {
				t.Fatal(err)
			}
			got, errs := exposeText(t, tt.series)
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			if got != want {
				t.Errorf("exposition:\n%s\nregistry:\n%s", got, want)
			}
		})
	}
}

// What the registry refuses, the exposition drops with an error, keeping the rest.
func TestExpositionDropsWhatTheRegistryRefuses(t *testing.T) {
	good := prometheus.NewDesc("pve_good", "Good.", []string{"id"}, nil)
	tests := []struct {
		name    string
		bad     testSeries
		wantErr string
	}{
		{"too few label values", testSeries{good, prometheus.GaugeValue, 1, nil}, "0 label values for 1 labels"},
		{"invalid UTF-8", testSeries{good, prometheus.GaugeValue, 1, []string{"a\xffb"}}, "not valid UTF-8"},
		{"type change", testSeries{good, prometheus.CounterValue, 1, []string{"c"}}, "a counter series in a gauge family"},
		{"name needs quoting", testSeries{prometheus.NewDesc("dotted.name", "D.", nil, nil), prometheus.GaugeValue, 1, nil}, "needs quoting"},
		{"invalid Desc", testSeries{prometheus.NewDesc("pve_bad", "B.", []string{"__reserved"}, nil), prometheus.GaugeValue, 1, []string{"x"}}, "pve_bad"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			series := []testSeries{{good, prometheus.GaugeValue, 1, []string{"a"}}, tt.bad, tt.bad, {good, prometheus.GaugeValue, 2, []string{"b"}}}
			if _, err := registryText(t, series); err == nil {
				t.Fatal("the registry accepts the bad series: the case tests nothing")
			}
			got, errs := exposeText(t, series)
			if len(errs) == 0 || !strings.Contains(errs[0].Error(), tt.wantErr) {
				t.Fatalf("errors %v, want one containing %q", errs, tt.wantErr)
			}
			want := "# HELP pve_good Good.\n# TYPE pve_good gauge\npve_good{id=\"a\"} 1\npve_good{id=\"b\"} 2\n"
			if got != want {
				t.Errorf("exposition:\n%s\nwant:\n%s", got, want)
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
	h.collectors(req, inv, nil, time.Millisecond, log.NewNopLogger()).writeText(e)
	if len(e.errs) > 0 {
		t.Fatal(e.errs)
	}
	var b bytes.Buffer
	if err := e.writeTo(&b); err != nil {
		t.Fatal(err)
	}
	// The test must cover a family of several chunks and a family written in several runs.
	maxChunks, merged := 0, 0
	for _, f := range e.byName {
		maxChunks = max(maxChunks, len(f.chunks))
		if len(f.runs) > 0 {
			merged++
		}
	}
	if maxChunks < 3 || merged == 0 {
		t.Errorf("largest family has %d chunks, %d families merged: the test no longer covers both", maxChunks, merged)
	}
	if got := zeroDurations(b.String()); got != want {
		t.Errorf("exposition differs from the registry's (%d vs %d bytes)", len(got), len(want))
	}
}

// A second scrape renders into the first one's full-size chunks, with the same output.
func TestExpositionRecyclesChunks(t *testing.T) {
	inv := largeInventory(8, 2000)
	h := NewHandler(HandlerOpts{Collectors: Collectors(), Logger: log.NewNopLogger()})
	pool := &chunkPool{}
	durations := regexp.MustCompile(`(?m)^(pve_exporter_scrape_collector_duration_seconds\{[^}]*\}) .*$`)
	render := func() string {
		e := newExposition()
		e.chunks = pool
		h.collectors(scrapeRequest{cluster: true, node: true}, inv, nil, time.Millisecond, log.NewNopLogger()).writeText(e)
		var b bytes.Buffer
		if err := e.writeTo(&b); err != nil {
			t.Fatal(err)
		}
		e.release()
		return durations.ReplaceAllString(b.String(), "$1 0")
	}
	first := render()
	pooled := len(pool.free)
	if pooled == 0 {
		t.Fatal("no full-size chunk was pooled")
	}
	if second := render(); second != first {
		t.Error("the second scrape's exposition differs")
	}
	if len(pool.free) != pooled {
		t.Errorf("%d chunks pooled after the second scrape, %d after the first: chunks were not reused", len(pool.free), pooled)
	}
}

func TestExpositionSortsAndMergesFamilies(t *testing.T) {
	// Two Descs of one name (as two collectors may declare), series out of order, two labels.
	d1 := prometheus.NewDesc("x", "X.", []string{"id", "kind"}, nil)
	d2 := prometheus.NewDesc("x", "X.", []string{"id", "kind"}, nil)
	a := prometheus.NewDesc("a", "A.", nil, nil)
	got, errs := exposeText(t, []testSeries{
		{d1, prometheus.GaugeValue, 3, []string{"b", "x"}},
		{a, prometheus.CounterValue, 1, nil},
		{d2, prometheus.GaugeValue, 2, []string{"ab", "a"}},
		{d2, prometheus.GaugeValue, 1, []string{"a", "z"}},
	})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	want := "# HELP a A.\n# TYPE a counter\na 1\n# HELP x X.\n# TYPE x gauge\n" +
		"x{id=\"a\",kind=\"z\"} 1\nx{id=\"ab\",kind=\"a\"} 2\nx{id=\"b\",kind=\"x\"} 3\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

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

// FuzzExpositionMatchesRegistry writes two series in the order given: when they are out of order, the
// exposition reads their sort keys back from the rendered (escaped) text.
func FuzzExpositionMatchesRegistry(f *testing.F) {
	f.Add("Help.", "qemu/100", "lxc/101", 1.5)
	f.Add("back\\slash\nnew \"line\"", "va\"l\\ue\n", "va", math.Inf(-1))
	f.Add("", "", "", math.NaN())
	f.Add("h", "b\\\"", "b\\", 0.0)
	f.Fuzz(func(t *testing.T, help, first, second string, v float64) {
		desc := prometheus.NewDesc("f", help, []string{"id", "kind"}, nil)
		series := []testSeries{{desc, prometheus.GaugeValue, v, []string{first, "a"}}, {desc, prometheus.GaugeValue, v, []string{second, "b"}}}
		want, err := registryText(t, series)
		got, errs := exposeText(t, series)
		if (err != nil) != (len(errs) > 0) {
			t.Fatalf("registry error %v, exposition errors %v", err, errs)
		}
		if err == nil && got != want {
			t.Errorf("exposition:\n%q\nregistry:\n%q", got, want)
		}
	})
}

func TestCompareLines(t *testing.T) {
	tests := []struct {
		a, b string
		want int // sign
	}{
		{"x 1\n", "x 2\n", 0},
		{`x{id="a"} 1` + "\n", `x{id="b"} 1` + "\n", -1},
		{`x{id="a"} 1` + "\n", `x{id="ab"} 1` + "\n", -1},
		{`x{id="a",kind="z"} 1` + "\n", `x{id="ab",kind="a"} 1` + "\n", -1}, // value by value, not the joined text
		{`x{id="a",kind="b"} 1` + "\n", `x{id="a",kind="b"} 2` + "\n", 0},
		{`x{id="q\"u"} 1` + "\n", `x{id="q\\u"} 1` + "\n", -1}, // unescaped: '"' < '\\'
		{`x{id="a\n"} 1` + "\n", `x{id="a\\n"} 1` + "\n", -1},  // newline < backslash
		{"x{id=\"a\"} 1\n", "x{id=\"a\x00\"} 1\n", -1},         // a prefix sorts first, even before NUL
		{`x{id="a"} 1` + "\n", `x{id="a",k=""} 1` + "\n", -1},  // fewer values first
		{`x{id="{ }"} 1` + "\n", `x{id="{ }"} 1` + "\n", 0},
	}
	sign := func(v int) int { return min(max(v, -1), 1) }
	for _, tt := range tests {
		if got := sign(compareLines([]byte(tt.a), []byte(tt.b))); got != tt.want {
			t.Errorf("compareLines(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := sign(compareLines([]byte(tt.b), []byte(tt.a))); got != -tt.want {
			t.Errorf("compareLines(%q, %q) = %d, want %d", tt.b, tt.a, got, -tt.want)
		}
	}
}

// A family written in many runs (here each series sorts before the previous one) is sorted whole.
func TestExpositionSortsManyRuns(t *testing.T) {
	desc := prometheus.NewDesc("r", "R.", []string{"id"}, nil)
	var series []testSeries
	for i := 40; i > 0; i-- {
		series = append(series, testSeries{desc, prometheus.GaugeValue, float64(i), []string{fmt.Sprintf("g%03d", i)}})
	}
	want, err := registryText(t, series)
	if err != nil {
		t.Fatal(err)
	}
	if got, errs := exposeText(t, series); len(errs) > 0 || got != want {
		t.Errorf("exposition (errors %v):\n%s\nregistry:\n%s", errs, got, want)
	}
}

// TestUnreadableDescIsReportedOnceAndDropped: a Desc whose name cannot be read (an invalid Desc, or a future
// client_golang that prints Descs differently) must not yield a nameless family.
func TestUnreadableDescIsReportedOnceAndDropped(t *testing.T) {
	bad := prometheus.NewInvalidDesc(errors.New("broken"))
	good := prometheus.NewDesc("pve_test_value", "A test value.", nil, nil)
	var series []testSeries
	for range 3 {
		series = append(series, testSeries{good, prometheus.GaugeValue, 1, nil}, testSeries{bad, prometheus.GaugeValue, 1, nil})
	}
	got, errs := exposeText(t, series)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "cannot read the metric name") {
		t.Fatalf("errs = %v, want one unreadable-name error", errs)
	}
	if strings.Contains(got, "\n ") || strings.HasPrefix(got, " ") || !strings.Contains(got, "pve_test_value 1\n") {
		t.Fatalf("exposition:\n%s", got)
	}
}

func TestAppendFloatMatchesStrconv(t *testing.T) {
	for _, f := range []float64{0, 1, -1, 7, 999999, 1e6, -1e6, 1234567, 842551296, 4294967296, 1 << 52, 1<<53 - 1, 1 << 53,
		1e15, 1e20, 1e21, 0.5, -2.5e6, 123456.5, 1e-7, math.MaxFloat64, math.SmallestNonzeroFloat64} {
		if got, want := string(appendFloat(nil, f)), strconv.FormatFloat(f, 'g', -1, 64); got != want {
			t.Errorf("appendFloat(%v) = %s, want %s", f, got, want)
		}
	}
}

func FuzzAppendFloatMatchesStrconv(f *testing.F) {
	f.Add(842551296.0)
	f.Add(-1e6)
	f.Add(0.1)
	f.Fuzz(func(t *testing.T, v float64) {
		if math.IsNaN(v) || math.IsInf(v, 0) || v == 0 {
			return // written by name: NaN, +Inf, -Inf; expfmt writes -0 as 0 too
		}
		for _, x := range []float64{v, math.Trunc(v), math.Trunc(v * 1e6)} {
			if got, want := string(appendFloat(nil, x)), strconv.FormatFloat(x, 'g', -1, 64); got != want && x != 0 {
				t.Fatalf("appendFloat(%v) = %s, want %s", x, got, want)
			}
		}
	})
}
