package executor

import "github.com/prometheus/client_golang/prometheus"

// The balancer's metrics share the proxbalance_ prefix; the executor's carry their own subsystem so they never
// collide with the server's (which counts held moves and plans).
const (
	namespace = "proxbalance"
	subsystem = "executor"
)

type metrics struct {
	inFlight prometheus.Gauge
	moves    *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics() *metrics {
	return &metrics{
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: subsystem, Name: "migrations_in_flight",
			Help: "Migrations this balancer is following to their end.",
		}),
		moves: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: subsystem, Name: "moves_total",
			Help: "Moves handled by the executor, by outcome and reason.",
		}, []string{"outcome", "reason"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: subsystem, Name: "migration_duration_seconds",
			Help:    "Duration of migration tasks from start to end, by final journal state.",
			Buckets: prometheus.ExponentialBuckets(5, 2, 10),
		}, []string{"state"}),
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
