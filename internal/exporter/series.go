package exporter

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

// presetSeries is a gauge or counter whose label pairs the collector built itself, so that series can share
// them: a guest's id pair serves its dozens of families, a one-hot state pair every guest. On a cluster of
// thousands of guests that saves most of what NewConstMetric allocates (label pairs per series) and the text
// exposition renders it without a Write. The pairs must be sorted by label name and match the Desc's variable
// labels, as NewConstMetric's are; label values are the exporter's own ids and state names, valid UTF-8.
type presetSeries struct {
	desc   *prometheus.Desc
	vt     prometheus.ValueType
	value  float64
	labels []*dto.LabelPair
}

func (s *presetSeries) Desc() *prometheus.Desc { return s.desc }

func (s *presetSeries) Write(out *dto.Metric) error {
	out.Label = s.labels
	switch s.vt {
	case prometheus.CounterValue:
		out.Counter = &dto.Counter{Value: proto.Float64(s.value)}
	case prometheus.GaugeValue:
		out.Gauge = &dto.Gauge{Value: proto.Float64(s.value)}
	default:
		out.Untyped = &dto.Untyped{Value: proto.Float64(s.value)}
	}
	return nil
}

// dtoType is the family type of the series.
func (s *presetSeries) dtoType() dto.MetricType {
	switch s.vt {
	case prometheus.CounterValue:
		return dto.MetricType_COUNTER
	case prometheus.GaugeValue:
		return dto.MetricType_GAUGE
	}
	return dto.MetricType_UNTYPED
}

func labelPair(name, value string) *dto.LabelPair {
	return &dto.LabelPair{Name: proto.String(name), Value: proto.String(value)}
}

// idSeries sends series of one object (labelled only by id) that share one label pair.
type idSeries struct {
	ch     chan<- prometheus.Metric
	labels []*dto.LabelPair
}

func newIDSeries(ch chan<- prometheus.Metric, id string) idSeries {
	return idSeries{ch: ch, labels: []*dto.LabelPair{labelPair("id", id)}}
}

func (s idSeries) gauge(desc *prometheus.Desc, v float64) {
	s.ch <- &presetSeries{desc: desc, vt: prometheus.GaugeValue, value: v, labels: s.labels}
}

func (s idSeries) counter(desc *prometheus.Desc, v float64) {
	s.ch <- &presetSeries{desc: desc, vt: prometheus.CounterValue, value: v, labels: s.labels}
}

// stateLabels are the {id, state} pairs of one-hot families: one "state" pair per state, shared by every object.
type stateLabels map[string]*dto.LabelPair

func newStateLabels(lists ...[]string) stateLabels {
	m := stateLabels{}
	for _, states := range lists {
		for _, s := range states {
			if m[s] == nil {
				m[s] = labelPair("state", s)
			}
		}
	}
	return m
}

// oneHot sends one series per state, 1 for current and 0 for the others. A current state outside the list
// yields only zeros, as in prometheus-pve-exporter. states must be sorted (the order of the exposition).
func (s idSeries) oneHot(desc *prometheus.Desc, pairs stateLabels, states []string, current string) {
	backing := make([]*dto.LabelPair, 2*len(states))
	for i, state := range states {
		labels := backing[2*i : 2*i+2 : 2*i+2]
		labels[0], labels[1] = s.labels[0], pairs[state]
		s.ch <- &presetSeries{desc: desc, vt: prometheus.GaugeValue, value: boolValue(state == current), labels: labels}
	}
}

// pressurePairs are the kind and resource label pairs of the PSI families, shared by every object.
type pressurePairs map[string]*dto.LabelPair

func newPressurePairs() pressurePairs {
	m := pressurePairs{}
	for _, s := range (&pressureView{}).series() {
		m["kind="+s.kind] = labelPair("kind", s.kind)
		m["resource="+s.resource] = labelPair("resource", s.resource)
	}
	return m
}

// pressure sends the six PSI series of p; labels in name order: id, kind, resource.
func (s idSeries) pressure(desc *prometheus.Desc, pairs pressurePairs, p *pressureView) {
	series := p.series()
	backing := make([]*dto.LabelPair, 3*len(series))
	for i, ps := range series {
		labels := backing[3*i : 3*i+3 : 3*i+3]
		labels[0], labels[1], labels[2] = s.labels[0], pairs["kind="+ps.kind], pairs["resource="+ps.resource]
		s.ch <- &presetSeries{desc: desc, vt: prometheus.GaugeValue, value: ps.value, labels: labels}
	}
}
