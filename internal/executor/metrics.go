package executor

import "github.com/prometheus/client_golang/prometheus"

// The executor's series share the balancer's proxbalance_ namespace. Moves by outcome are counted once, by
// the server (proxbalance_moves_total), which also sees the moves a gate held back; the executor owns what
// only it knows: which migrations it is following and how long they took.
const namespace = "proxbalance"

type metrics struct {
	inFlight prometheus.Gauge
	duration *prometheus.HistogramVec
}

func newMetrics() *metrics {
	return &metrics{
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "migrations_in_flight",
			Help: "Migration tasks this balancer requested (or adopted at start) and is following to their end.",
		}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "migration_duration_seconds",
			Help:    "Duration of migration tasks from start to end, by final journal state.",
			Buckets: prometheus.ExponentialBuckets(5, 2, 10),
		}, []string{"state"}),
	}
}

// Collectors returns the executor's metrics for the caller to register.
func (e *Executor) Collectors() []prometheus.Collector {
	return []prometheus.Collector{e.metrics.inFlight, e.metrics.duration}
}

// Register registers the executor's metrics with reg.
func (e *Executor) Register(reg prometheus.Registerer) error {
	for _, c := range e.Collectors() {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
