package placement

import (
	"encoding/json"
	"fmt"
	"math"
	"time"
)

// Action names what a plan is for.
type Action string

// The actions the planner knows.
const (
	// ActionRebalance moves guests off nodes above thresholds, cluster-wide.
	ActionRebalance Action = "rebalance"
	// ActionRelieve moves guests off Request.Node until it is under thresholds (alert-driven).
	ActionRelieve Action = "relieve"
	// ActionEvacuate moves every guest off Request.Node (maintenance). Tag gates (ignore, pin_, affinity_,
	// AllowHA) are bypassed; hardware, storage, memory and lock constraints never are.
	ActionEvacuate Action = "evacuate"
	// ActionRepairAntiAffinity moves guests until no node holds two guests of one exclude_<group>.
	ActionRepairAntiAffinity Action = "repair-anti-affinity"
	// ActionDistribute evens out the per-node counts of small guests.
	ActionDistribute Action = "distribute"
)

// Request asks for one plan.
type Request struct {
	Action Action
	// Node is the node to relieve or evacuate; empty for the other actions.
	Node string
	// Trigger says what caused the request (e.g. "alert:NodeCPUHigh pve1", "schedule", "api"); carried into
	// the Plan and its ID.
	Trigger string
}

// Plan is the planner's answer: moves in execution order, a decision for every guest considered, and the
// cluster's metrics before and after (as predicted by the simulation).
type Plan struct {
	// ID is a deterministic hash of the inputs and the request: the same inputs give the same ID.
	ID      string `json:"id"`
	Action  Action `json:"action"`
	Node    string `json:"node,omitempty"`
	Trigger string `json:"trigger,omitempty"`
	// At is State.Now.
	At time.Time `json:"at"`
	// Moves are in execution order: each is valid on the cluster as left by the moves before it.
	Moves []Move `json:"moves"`
	// Decisions has one record per guest considered, sorted by guest ID.
	Decisions []Decision `json:"decisions"`
	// Notes record guard clauses and stop conditions: why the plan is empty or ended.
	Notes []Note `json:"notes"`
	// Before and After are the cluster metrics now and after all Moves (simulated).
	Before ClusterMetrics `json:"before"`
	After  ClusterMetrics `json:"after"`
}

// Note is one plan-level remark with a reason code.
type Note struct {
	Reason  Reason `json:"reason"`
	Message string `json:"message"`
}

// Move is one guest migration.
type Move struct {
	// Guest is the guest ID ("qemu/105"); GuestName its name.
	Guest     string `json:"guest"`
	GuestName string `json:"guest_name"`
	Source    string `json:"source"`
	Target    string `json:"target"`
	// Group is the affinity group when the guest moves as part of one ("" otherwise); all moves of a group
	// are adjacent in Plan.Moves and share a target.
	Group string `json:"group,omitempty"`
	// Online is true for a live migration (running guest), false for an offline one.
	Online bool `json:"online"`
	// Reasons say why the move is proposed (e.g. CPUOverThreshold, Evacuate).
	Reasons []Reason `json:"reasons"`
	// Description is one human sentence, e.g. "move qemu/105 (web-3, 4 vCPU, 8 GiB) from pve1 to pve3:
	// pve1 CPU p95 92% → 71%; pve3 48% → 63%".
	Description string `json:"description"`
	// Scores of source and target nodes before and after the move, in points (lower is better).
	SourceBefore Score `json:"source_before"`
	SourceAfter  Score `json:"source_after"`
	TargetBefore Score `json:"target_before"`
	TargetAfter  Score `json:"target_after"`
	// Improvement is SourceBefore.Total − TargetAfter.Total, in points.
	Improvement float64 `json:"improvement"`
	// Confidence (0..100) blends data coverage, score margin, guest size and risk.
	Confidence int  `json:"confidence"`
	Cost       Cost `json:"cost"`
	// StorageCheck is the result of the storage filter on the chosen target.
	StorageCheck StorageCheck `json:"storage_check"`
	// Candidates lists every target considered, sorted by node name: feasible ones with their score after the
	// move, rejected ones with their filter statuses.
	Candidates []Candidate `json:"candidates"`
}

// Score is a node's score in points (0..100+, lower is better) with the per-plugin breakdown.
type Score struct {
	Total   float64       `json:"total"`
	Plugins []PluginScore `json:"plugins"`
}

// PluginScore is one scorer's contribution.
type PluginScore struct {
	// Plugin is the scorer's name: "cpu", "cpu-peak", "memory", "iowait", "cpu-balance", "memory-balance".
	Plugin string `json:"plugin"`
	// Value is the measured utilisation ratio the scorer looked at (e.g. 0.92 for a CPU p95 of 92 %).
	Value float64 `json:"value"`
	// Reference is what Value is compared with: the threshold for "cpu", "cpu-peak", "memory" and "iowait";
	// the cluster's ideal load ratio for "cpu-balance" and "memory-balance".
	Reference float64 `json:"reference"`
	// Points is the weighted penalty.
	Points float64 `json:"points"`
}

// Candidate is one target considered for a move.
type Candidate struct {
	Node string `json:"node"`
	// Feasible is true when every filter passed.
	Feasible bool `json:"feasible"`
	// Rejections are the failed filters' statuses (empty when Feasible).
	Rejections []Status `json:"rejections"`
	// After is the target's score with the guest on it (feasible candidates only); Improvement the move's.
	After       Score   `json:"after"`
	Improvement float64 `json:"improvement"`
}

// Cost is what a move costs.
type Cost struct {
	// MemoryBytes is memory copied by a live migration (0 offline); DiskBytes local (unshared) disks copied.
	MemoryBytes uint64 `json:"memory_bytes"`
	DiskBytes   uint64 `json:"disk_bytes"`
	// Duration is the estimate at Policy.BandwidthBytesPerSecond; JSON carries it as duration_seconds (a
	// number: 12.5), the unit Prometheus and most HTTP clients expect.
	Duration time.Duration `json:"-"`
}

// costJSON is Cost on the wire: the duration in seconds.
type costJSON struct {
	MemoryBytes     uint64  `json:"memory_bytes"`
	DiskBytes       uint64  `json:"disk_bytes"`
	DurationSeconds float64 `json:"duration_seconds"`
}

// MarshalJSON writes the duration as duration_seconds.
func (c Cost) MarshalJSON() ([]byte, error) {
	return json.Marshal(costJSON{MemoryBytes: c.MemoryBytes, DiskBytes: c.DiskBytes, DurationSeconds: c.Duration.Seconds()})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (c *Cost) UnmarshalJSON(b []byte) error {
	var w costJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return fmt.Errorf("decoding cost: %w", err)
	}
	if w.DurationSeconds < 0 || w.DurationSeconds > math.MaxInt64/float64(time.Second) {
		return fmt.Errorf("decoding cost: duration_seconds %v is out of range", w.DurationSeconds)
	}
	*c = Cost{MemoryBytes: w.MemoryBytes, DiskBytes: w.DiskBytes,
		Duration: time.Duration(math.Round(w.DurationSeconds * float64(time.Second)))}
	return nil
}

// GiB returns the total copied, in GiB.
func (c Cost) GiB() float64 { return float64(c.MemoryBytes+c.DiskBytes) / GiB }

// StorageCheck records the storage filter's result for the chosen target.
type StorageCheck struct {
	OK bool `json:"ok"`
	// Storages are the storages the guest uses, sorted.
	Storages []string `json:"storages"`
	// Status is the failing status when !OK.
	Status Status `json:"status"`
}

// Outcome is what happened to a guest considered for moving.
type Outcome string

// The outcomes of a Decision.
const (
	// OutcomeSelected: the guest moves (see Plan.Moves).
	OutcomeSelected Outcome = "selected"
	// OutcomeSkipped: the guest could move, but the planner chose not to (Reasons say why).
	OutcomeSkipped Outcome = "skipped"
	// OutcomeFiltered: no target passed the filters (Summary is the FitError-style summary).
	OutcomeFiltered Outcome = "filtered"
	// OutcomeManual: evacuation could not move the guest; an operator must act (Reasons say why).
	OutcomeManual Outcome = "manual"
)

// Decision records the planner's verdict on one guest.
type Decision struct {
	Guest string `json:"guest"`
	// Node is where the guest was when considered.
	Node    string   `json:"node"`
	Outcome Outcome  `json:"outcome"`
	Reasons []Reason `json:"reasons"`
	// Summary is a human sentence; for OutcomeFiltered it reads "0/5 nodes are available: 3 lack storage
	// local-zfs, 2 hold a guest of exclude_db".
	Summary string `json:"summary"`
}

// ClusterMetrics summarise cluster load, for "predicted gain" reports.
type ClusterMetrics struct {
	// HottestNode has the highest Load; HottestLoad is that Load.
	HottestNode string  `json:"hottest_node"`
	HottestLoad float64 `json:"hottest_load"`
	// LoadCV is the coefficient of variation (stddev/mean) of the online nodes' Load.
	LoadCV float64 `json:"load_cv"`
	// MaxScore is the highest node score, in points.
	MaxScore float64 `json:"max_score"`
	// CPUCurrentCV and MemoryCurrentCV are the coefficients of variation of the online nodes' current
	// (CurrentWindow) CPU and memory load ratios: the PVEClusterImbalanced alert's inputs.
	CPUCurrentCV    float64 `json:"cpu_current_cv"`
	MemoryCurrentCV float64 `json:"memory_current_cv"`
	// IdealCPU and IdealMemory are the p95 load ratios every online node would have if the cluster were one
	// node (the balance scorers' reference; moves do not change them).
	IdealCPU    float64 `json:"ideal_cpu"`
	IdealMemory float64 `json:"ideal_memory"`
	// Nodes are per-node metrics, sorted by name.
	Nodes []NodeMetrics `json:"nodes"`
}

// NodeMetrics are one node's load figures, ratios 0..1 (above 1 when overcommitted).
type NodeMetrics struct {
	Node string `json:"node"`
	// CPUP95 is the PeakQuantile of CPU use over the series, divided by the node's CPUs.
	CPUP95 float64 `json:"cpu_p95"`
	// MemoryP95 is the PeakQuantile of memory use divided by the node's memory.
	MemoryP95 float64 `json:"memory_p95"`
	// Load is max(CPUP95, MemoryP95).
	Load float64 `json:"load"`
	// Score is the node's score in points.
	Score float64 `json:"score"`
	// Guests counts the guests on the node (in-flight ones on both sides).
	Guests int `json:"guests"`
}
