package placement

import (
	"errors"
	"fmt"
	"time"
)

// Thresholds are utilisation ratios (0..1) above which a node is overloaded and penalised.
type Thresholds struct {
	CPU    float64 `yaml:"cpu"`
	Memory float64 `yaml:"memory"`
	IOWait float64 `yaml:"iowait"`
}

// WindowWeights blend the current, 24 h and 7 d averages of a load; they must sum to 1.
type WindowWeights struct {
	Current float64 `yaml:"current"`
	Day     float64 `yaml:"day"`
	Week    float64 `yaml:"week"`
}

// ScoreWeights multiply each scorer's points before they are summed into a node score.
type ScoreWeights struct {
	// CPU scores the blended CPU load, CPUPeak the p95 of the CPU series, Memory max(current, p95) of memory,
	// IOWait the blended iowait.
	CPU     float64 `yaml:"cpu"`
	CPUPeak float64 `yaml:"cpu_peak"`
	Memory  float64 `yaml:"memory"`
	IOWait  float64 `yaml:"iowait"`
	// Balance multiplies the cpu-balance and memory-balance scorers (rebalance only): 100 points per unit of
	// a node's relative excess over the cluster's ideal load, so a node 15 % above its fair share scores
	// MinImprovement's default 15 points. 0 turns balancing below thresholds off.
	Balance float64 `yaml:"balance"`
}

// ImbalancePolicy mirrors the PVEClusterImbalanced alert (rules/alerts.yml): the cluster is imbalanced when,
// for CPU or memory, the coefficient of variation of the online nodes' current load ratios is above CV and the
// busiest node's is above MinBusiest. While it is, rebalance accepts any move that makes clear progress (the
// pair's score drops by MinImprovement/5) instead of asking for MinImprovement, so a rebalance the alert
// triggered ends with the alert's condition cleared or with no useful move left.
type ImbalancePolicy struct {
	CV         float64 `yaml:"cv"`
	MinBusiest float64 `yaml:"min_busiest"`
}

// DistributePolicy configures the distribute action.
type DistributePolicy struct {
	// SmallCPUs and SmallMemoryBytes bound a "small" guest (≤ both).
	SmallCPUs        int    `yaml:"small_cpus"`
	SmallMemoryBytes uint64 `yaml:"small_memory_bytes"`
	// MaxSpread is the largest allowed difference between the per-node counts of small guests.
	MaxSpread int `yaml:"max_spread"`
}

// Policy is every tunable of the planner. Start from DefaultPolicy and change fields; Validate reports the
// first field out of range.
type Policy struct {
	Thresholds Thresholds `yaml:"thresholds"`
	// Windows blends current, 24 h and 7 d for CPU and iowait.
	Windows WindowWeights `yaml:"windows"`
	Weights ScoreWeights  `yaml:"weights"`
	// CurrentWindow is how far back "current" reaches (5–15 minutes).
	CurrentWindow time.Duration `yaml:"current_window"`
	// PeakQuantile is the quantile used for peaks (0.95 = p95).
	PeakQuantile float64 `yaml:"peak_quantile"`
	// MemoryHeadroom is the share of a target's memory that must stay free at its peak after a move (0..1).
	MemoryHeadroom float64 `yaml:"memory_headroom"`
	// CPUOvercommit caps sum(vCPUs of running guests) / node CPUs on a target; 0 disables the cap.
	CPUOvercommit float64 `yaml:"cpu_overcommit"`
	// MinImprovement is the least improvement (source score before − target score after, in points, 1..100)
	// a move must bring.
	MinImprovement float64 `yaml:"min_improvement"`
	// MaxMoves bounds the moves of one plan (0 = no bound). Evacuation ignores it.
	MaxMoves int `yaml:"max_moves"`
	// MinCoverage is the least data coverage (0..1) of the cluster and of a moved guest for load-driven moves.
	MinCoverage float64 `yaml:"min_coverage"`
	// AllowHA lets HA-managed guests be moved (through ha-manager).
	AllowHA bool `yaml:"allow_ha"`
	// MoveStopped lets stopped guests be moved by rebalance, relieve and distribute (they free no CPU but may
	// be reserved memory). Evacuation always moves them.
	MoveStopped bool `yaml:"move_stopped"`
	// BandwidthBytesPerSecond estimates migration duration.
	BandwidthBytesPerSecond float64 `yaml:"bandwidth_bytes_per_second"`
	// Distribute configures the distribute action.
	Distribute DistributePolicy `yaml:"distribute"`
	// Imbalance is the alert's imbalance condition, under which rebalance lowers its bar.
	Imbalance ImbalancePolicy `yaml:"imbalance"`
}

// DefaultPolicy returns the documented defaults (see docs/placement.md).
func DefaultPolicy() Policy {
	return Policy{
		Thresholds:              Thresholds{CPU: 0.60, Memory: 0.70, IOWait: 0.30},
		Windows:                 WindowWeights{Current: 0.5, Day: 0.3, Week: 0.2},
		Weights:                 ScoreWeights{CPU: 1, CPUPeak: 1, Memory: 1, IOWait: 1, Balance: 1},
		CurrentWindow:           15 * time.Minute,
		PeakQuantile:            0.95,
		MemoryHeadroom:          0.10,
		CPUOvercommit:           0,
		MinImprovement:          15,
		MaxMoves:                10,
		MinCoverage:             0.5,
		AllowHA:                 true,
		MoveStopped:             false,
		BandwidthBytesPerSecond: 1e9 / 8 * 0.8, // 1 Gbit/s at 80 % efficiency
		Distribute: DistributePolicy{
			SmallCPUs:        2,
			SmallMemoryBytes: 4 * GiB,
			MaxSpread:        2,
		},
		Imbalance: ImbalancePolicy{CV: 0.30, MinBusiest: 0.50},
	}
}

// Validate reports the first out-of-range field, named as in YAML.
func (p Policy) Validate() error {
	var errs []error
	ratio := func(name string, v float64, lo, hi float64) {
		if !(v >= lo && v <= hi) {
			errs = append(errs, fmt.Errorf("%s: %v is outside [%v, %v]", name, v, lo, hi))
		}
	}
	ratio("thresholds.cpu", p.Thresholds.CPU, 0.01, 0.99)
	ratio("thresholds.memory", p.Thresholds.Memory, 0.01, 0.99)
	ratio("thresholds.iowait", p.Thresholds.IOWait, 0.01, 0.99)
	ratio("windows.current", p.Windows.Current, 0, 1)
	ratio("windows.day", p.Windows.Day, 0, 1)
	ratio("windows.week", p.Windows.Week, 0, 1)
	if s := p.Windows.Current + p.Windows.Day + p.Windows.Week; s < 0.999 || s > 1.001 {
		errs = append(errs, fmt.Errorf("windows: weights sum to %v, want 1", s))
	}
	ratio("weights.cpu", p.Weights.CPU, 0, 10)
	ratio("weights.cpu_peak", p.Weights.CPUPeak, 0, 10)
	ratio("weights.memory", p.Weights.Memory, 0, 10)
	ratio("weights.iowait", p.Weights.IOWait, 0, 10)
	ratio("weights.balance", p.Weights.Balance, 0, 10)
	ratio("imbalance.cv", p.Imbalance.CV, 0.01, 10)
	ratio("imbalance.min_busiest", p.Imbalance.MinBusiest, 0, 1)
	if p.CurrentWindow <= 0 || p.CurrentWindow > 24*time.Hour {
		errs = append(errs, fmt.Errorf("current_window: %v is outside (0, 24h]", p.CurrentWindow))
	}
	ratio("peak_quantile", p.PeakQuantile, 0.5, 1)
	ratio("memory_headroom", p.MemoryHeadroom, 0, 0.9)
	if p.CPUOvercommit != 0 {
		ratio("cpu_overcommit", p.CPUOvercommit, 0.1, 100)
	}
	ratio("min_improvement", p.MinImprovement, 1, 100)
	if p.MaxMoves < 0 {
		errs = append(errs, fmt.Errorf("max_moves: %d is negative", p.MaxMoves))
	}
	ratio("min_coverage", p.MinCoverage, 0, 1)
	if !(p.BandwidthBytesPerSecond > 0) {
		errs = append(errs, fmt.Errorf("bandwidth_bytes_per_second: %v must be positive", p.BandwidthBytesPerSecond))
	}
	if p.Distribute.SmallCPUs < 1 {
		errs = append(errs, fmt.Errorf("distribute.small_cpus: %d must be at least 1", p.Distribute.SmallCPUs))
	}
	if p.Distribute.SmallMemoryBytes == 0 {
		errs = append(errs, errors.New("distribute.small_memory_bytes: must be positive"))
	}
	if p.Distribute.MaxSpread < 1 {
		errs = append(errs, fmt.Errorf("distribute.max_spread: %d must be at least 1", p.Distribute.MaxSpread))
	}
	return errors.Join(errs...)
}
