package exporter

import (
	"bytes"
	"math"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/proto"
)

// expfmtText is the reference: expfmt's text encoding of mfs.
func expfmtText(t *testing.T, mfs []*dto.MetricFamily) string {
	t.Helper()
	var b bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatalf("expfmt: %v", err)
		}
	}
	return b.String()
}

func TestWriteTextMatchesExpfmt(t *testing.T) {
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
		{"no labels, no help", &dto.MetricFamily{Name: proto.String("n"), Type: &gauge, Metric: []*dto.Metric{series(3)}}},
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
			if err := writeText(&got, []*dto.MetricFamily{tt.mf}); err != nil {
				t.Fatal(err)
			}
			if want := expfmtText(t, []*dto.MetricFamily{tt.mf}); got.String() != want {
				t.Errorf("writeText:\n%s\nexpfmt:\n%s", got.String(), want)
			}
		})
	}
}

// TestGatherUncheckedMatchesRegistry: the lean gather yields what the registry's Gather does, families and
// series in the same order, for a cluster with every kind of series the collectors emit.
func TestGatherUncheckedMatchesRegistry(t *testing.T) {
	inv := largeInventory(4, 200)
	h := NewHandler(HandlerOpts{Collectors: Collectors(), Logger: log.NewNopLogger()})
	req := scrapeRequest{cluster: true, node: true}
	want, err := h.registry(req, inv, nil, time.Millisecond, log.NewNopLogger()).Gather()
	if err != nil {
		t.Fatal(err)
	}
	got, errs := gatherUnchecked(h.collectors(req, inv, nil, time.Millisecond, log.NewNopLogger()))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	// Collector durations differ between the two runs.
	for _, mfs := range [][]*dto.MetricFamily{want, got} {
		for _, mf := range mfs {
			if mf.GetName() == "pve_exporter_scrape_collector_duration_seconds" {
				for _, m := range mf.GetMetric() {
					m.Gauge.Value = proto.Float64(0)
				}
			}
		}
	}
	if a, b := expfmtText(t, want), expfmtText(t, got); a != b {
		t.Errorf("gatherUnchecked differs from the registry (%d vs %d bytes)", len(b), len(a))
	}
}

func TestGatherUncheckedSortsAndMergesFamilies(t *testing.T) {
	// Two Descs of one name (as two collectors may declare), series out of order.
	d1 := prometheus.NewDesc("x", "X.", []string{"id"}, nil)
	d2 := prometheus.NewDesc("x", "X.", []string{"id"}, nil)
	a := prometheus.NewDesc("a", "A.", nil, nil)
	c := collectorFunc(func(ch chan<- prometheus.Metric) {
		ch <- prometheus.MustNewConstMetric(d1, prometheus.GaugeValue, 2, "b")
		ch <- prometheus.MustNewConstMetric(a, prometheus.CounterValue, 1)
		ch <- prometheus.MustNewConstMetric(d2, prometheus.GaugeValue, 1, "a")
	})
	mfs, errs := gatherUnchecked(c)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	var b bytes.Buffer
	if err := writeText(&b, mfs); err != nil {
		t.Fatal(err)
	}
	want := "# HELP a A.\n# TYPE a counter\na 1\n# HELP x X.\n# TYPE x gauge\nx{id=\"a\"} 1\nx{id=\"b\"} 2\n"
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
