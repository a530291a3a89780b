package exporter

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// RequestObserver is told about every request the PVE client makes; *Metrics implements it. The client calls it
// once per request, with the endpoint as a path template.
type RequestObserver interface {
	ObserveRequest(method, endpoint string, code int, d time.Duration, err error)
}

var _ RequestObserver = (*Metrics)(nil)

// Metrics are the exporter's own metrics on /metrics: requests to /pve and requests to the PVE API.
type Metrics struct {
	moduleUnknown      prometheus.Counter
	collectionDuration *prometheus.SummaryVec
	requestErrors      *prometheus.CounterVec
	apiDuration        *prometheus.HistogramVec
	apiErrors          *prometheus.CounterVec
}

// NewMetrics creates the exporter's metrics and registers them with reg. The series of every module in
// modules are initialised, as prometheus-pve-exporter does.
func NewMetrics(reg prometheus.Registerer, modules []string) *Metrics {
	m := &Metrics{
		moduleUnknown: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "exporter", Name: "module_unknown_total",
			Help: "Requests to /pve that named a module not in the configuration.",
		}),
		// Name, type, help and label of prometheus-pve-exporter's.
		collectionDuration: prometheus.NewSummaryVec(prometheus.SummaryOpts{
			Name: "pve_collection_duration_seconds", Help: "Duration of collections by the PVE exporter",
		}, []string{"module"}),
		requestErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pve_request_errors_total", Help: "Errors in requests to PVE exporter",
		}, []string{"module"}),
		apiDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "exporter", Name: "api_request_duration_seconds",
			Help:    "Duration of requests to the PVE API by endpoint template.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"endpoint"}),
		apiErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "exporter", Name: "api_request_errors_total",
			Help: "Failed requests to the PVE API by endpoint template and HTTP status (0: no response).",
		}, []string{"endpoint", "code"}),
	}
	reg.MustRegister(m.moduleUnknown, m.collectionDuration, m.requestErrors, m.apiDuration, m.apiErrors)
	for _, name := range modules {
		m.collectionDuration.WithLabelValues(name)
		m.requestErrors.WithLabelValues(name)
	}
	return m
}

// ObserveRequest records one request to the PVE API. endpoint must be a path template such as
// "/nodes/{node}/qemu/{vmid}/config", never a concrete path, to keep the label's cardinality bounded. A request
// counts as failed when err is non-nil or code is not 2xx; code is 0 when no response arrived. method is
// accepted for the client's convenience; every request the exporter makes is a GET, so it is not a label.
func (m *Metrics) ObserveRequest(method, endpoint string, code int, d time.Duration, err error) {
	_ = method
	m.apiDuration.WithLabelValues(endpoint).Observe(d.Seconds())
	if err != nil || code < 200 || code > 299 {
		m.apiErrors.WithLabelValues(endpoint, strconv.Itoa(code)).Inc()
	}
}
