package executor

import "github.com/prometheus/client_golang/prometheus"

const namespace = "pb_balancer"

type metrics struct {
	inFlight prometheus.Gauge
	moves    *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics() *metrics {
	return &metrics{
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "migrations_in_flight",
			Help: "Migrations this balancer requested that have not ended.",
		}),
		moves: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "moves_total",
			Help: "Moves handled by the executor, by outcome and reason.",
		}, []string{"outcome", "reason"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "migration_duration_seconds",
			Help:    "Duration of migration tasks from start to end, by outcome.",
			Buckets: prometheus.ExponentialBuckets(5, 2, 10),
		}, []string{"outcome"}),
	}
}

// Collectors returns the executor's metrics for the caller to register.
func (e *Executor) Collectors() []prometheus.Collector {
	return []prometheus.Collector{e.metrics.inFlight, e.metrics.moves, e.metrics.duration}
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
