package exporter

import (
	"slices"

	"github.com/prometheus/client_golang/prometheus"
)

// SeriesWriter is where collectors write their series. For /pve it renders each series straight into the
// scrape's text exposition; for a registry (the debug view, and the tests that hold the exposition to
// client_golang's output) it sends each as a const metric on the Collect channel. A 5,000-guest scrape is
// 260,000 series: writing them directly, rather than as one prometheus.Metric each through a channel, saves an
// allocation and a goroutine hand-off per series, which were most of a scrape's CPU and garbage.
type SeriesWriter struct {
	text *textExposition
	ch   chan<- prometheus.Metric
	drop map[*prometheus.Desc]bool // families of disabled compatibility groups
}

// gauge writes a gauge series; labelValues are in the order of the Desc's variable labels.
func (w *SeriesWriter) gauge(desc *prometheus.Desc, v float64, labelValues ...string) {
	w.add(desc, prometheus.GaugeValue, v, labelValues)
}

// counter writes a counter series; labelValues are in the order of the Desc's variable labels.
func (w *SeriesWriter) counter(desc *prometheus.Desc, v float64, labelValues ...string) {
	w.add(desc, prometheus.CounterValue, v, labelValues)
}

func (w *SeriesWriter) add(desc *prometheus.Desc, vt prometheus.ValueType, v float64, labelValues []string) {
	if w.drop[desc] {
		return
	}
	if w.text != nil {
		w.text.add(desc, vt, v, labelValues)
		return
	}
	// The clone keeps labelValues on the caller's stack in the exposition path.
	w.ch <- constMetric(desc, vt, v, slices.Clone(labelValues))
}

// oneHot writes one {id, state} series per state, 1 for current and 0 for the others. A current state outside
// the list yields only zeros, as in prometheus-pve-exporter.
func (w *SeriesWriter) oneHot(desc *prometheus.Desc, id string, states []string, current string) {
	for _, s := range states {
		w.gauge(desc, boolValue(s == current), id, s)
	}
}

// pressure writes the six PSI series of p, labelled id, resource and kind.
func (w *SeriesWriter) pressure(desc *prometheus.Desc, id string, p *pressureView) {
	for _, s := range p.series() {
		w.gauge(desc, s.value, id, s.resource, s.kind)
	}
}

// constMetric builds a series, or an invalid metric that the registry reports (and promhttp skips) when a
// label value from PVE cannot be a label value: one bad name must not cost the whole collector its output.
func constMetric(desc *prometheus.Desc, vt prometheus.ValueType, v float64, labelValues []string) prometheus.Metric {
	m, err := prometheus.NewConstMetric(desc, vt, v, labelValues...)
	if err != nil {
		return prometheus.NewInvalidMetric(desc, err)
	}
	return m
}
