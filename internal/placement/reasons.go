package placement

import (
	"fmt"
	"slices"
	"strings"
)

// Reason is a stable, machine-readable code (usable as a metric label) for a filter rejection, a move's cause,
// a skip or a plan note.
type Reason string

// Filter reasons about the target node.
const (
	ReasonNodeOffline     Reason = "NodeOffline"
	ReasonNodeMaintenance Reason = "NodeMaintenance"
	// ReasonStorageUnknown: the target's storage list is unknown; storage checks fail closed.
	ReasonStorageUnknown  Reason = "StorageUnknown"
	ReasonStorageMissing  Reason = "StorageMissing"
	ReasonStorageDisabled Reason = "StorageDisabled"
	ReasonStorageInactive Reason = "StorageInactive"
	// ReasonStorageFull: a local disk to copy does not fit (or free space is unknown: fail closed).
	ReasonStorageFull Reason = "StorageFull"
	// ReasonAntiAffinity: the target holds (or is receiving) a guest of one of the guest's exclude_<group>s.
	ReasonAntiAffinity Reason = "AntiAffinity"
	// ReasonPinned: the guest carries pin_<node> tags that do not name the target.
	ReasonPinned Reason = "Pinned"
	// ReasonInsufficientMemory: the target's peak memory after the move would exceed 1 − MemoryHeadroom.
	ReasonInsufficientMemory Reason = "InsufficientMemory"
	// ReasonCPUOvercommit: the target's vCPU/CPU ratio after the move would exceed CPUOvercommit.
	ReasonCPUOvercommit Reason = "CPUOvercommit"
)

// Filter reasons about the guest itself (no target can help).
const (
	ReasonLocalDevice       Reason = "LocalDevice"
	ReasonUnsharedBindMount Reason = "UnsharedBindMount"
	ReasonIgnored           Reason = "Ignored"
	ReasonHAManaged         Reason = "HAManaged"
	ReasonLocked            Reason = "Locked"
	ReasonTemplate          Reason = "Template"
	ReasonStopped           Reason = "Stopped"
	ReasonInFlight          Reason = "MigrationInFlight"
	// ReasonAffinitySplit: the guest's affinity_<group> members are on several nodes; the group is left alone
	// (rebalance never moves part of a group).
	ReasonAffinitySplit Reason = "AffinityGroupSplit"
)

// Reasons for a move.
const (
	ReasonCPUOverThreshold     Reason = "CPUOverThreshold"
	ReasonCPUPeakOverThreshold Reason = "CPUPeakOverThreshold"
	ReasonMemoryOverThreshold  Reason = "MemoryOverThreshold"
	ReasonIOWaitOverThreshold  Reason = "IOWaitOverThreshold"
	// ReasonCPUImbalance and ReasonMemoryImbalance: the source's p95 is above the cluster's ideal load
	// (rebalance's balance scorers).
	ReasonCPUImbalance       Reason = "CPUAboveClusterIdeal"
	ReasonMemoryImbalance    Reason = "MemoryAboveClusterIdeal"
	ReasonRelieve            Reason = "Relieve"
	ReasonEvacuate           Reason = "Evacuate"
	ReasonAntiAffinityRepair Reason = "AntiAffinityRepair"
	ReasonDistribute         Reason = "Distribute"
	// ReasonAffinityGroup: the guest moves with the rest of its affinity_<group>.
	ReasonAffinityGroup Reason = "AffinityGroup"
	// ReasonSwap: the guest is exchanged with a guest of another node in one refinement step (rebalance);
	// both moves say what they were moved together with.
	ReasonSwap Reason = "Swap"
)

// Reasons for skipping a guest and plan notes.
const (
	ReasonBelowMinImprovement Reason = "BelowMinImprovement"
	ReasonMaxMoves            Reason = "MaxMovesReached"
	ReasonLowCoverage         Reason = "LowCoverage"
	ReasonNoFeasibleTarget    Reason = "NoFeasibleTarget"
	ReasonNoOverload          Reason = "NoNodeOverThresholds"
	ReasonNoViolation         Reason = "NoAntiAffinityViolation"
	ReasonBalanced            Reason = "CountsBalanced"
	ReasonNoTargets           Reason = "NoTargetNodes"
	ReasonUnknownNode         Reason = "UnknownNode"
	ReasonRelieved            Reason = "NodeRelieved"
	ReasonUnresolved          Reason = "Unresolved"
)

// Status is a filter's verdict: Code is empty when the filter passed; Detail names what failed (a storage,
// a group, a node).
type Status struct {
	Code   Reason `json:"code"`
	Detail string `json:"detail,omitempty"`
}

// OK reports whether the filter passed.
func (s Status) OK() bool { return s.Code == "" }

// phrase is the status as a plural predicate, for FitError-style summaries ("3 lack storage local-zfs").
func (s Status) phrase() string {
	switch s.Code {
	case ReasonNodeOffline:
		return "are offline"
	case ReasonNodeMaintenance:
		return "are in maintenance"
	case ReasonStorageUnknown:
		return "have unknown storage"
	case ReasonStorageMissing:
		return "lack storage " + s.Detail
	case ReasonStorageDisabled:
		return "have storage " + s.Detail + " disabled"
	case ReasonStorageInactive:
		return "have storage " + s.Detail + " inactive"
	case ReasonStorageFull:
		return "lack free space on " + s.Detail
	case ReasonAntiAffinity:
		return "hold a guest of " + s.Detail
	case ReasonPinned:
		return "are not named by " + s.Detail
	case ReasonInsufficientMemory:
		return "lack memory"
	case ReasonCPUOvercommit:
		return "exceed the vCPU overcommit cap"
	case ReasonLowCoverage:
		return "have too little load data"
	case ReasonLocalDevice:
		return "cannot take local device " + s.Detail
	case ReasonUnsharedBindMount:
		return "cannot take unshared bind mount " + s.Detail
	}
	if s.Detail != "" {
		return string(s.Code) + " (" + s.Detail + ")"
	}
	return string(s.Code)
}

// String renders the status for logs.
func (s Status) String() string {
	if s.OK() {
		return "ok"
	}
	if s.Detail == "" {
		return string(s.Code)
	}
	return string(s.Code) + ": " + s.Detail
}

// fitSummary renders kube-scheduler's FitError summary: "0/5 nodes are available: 3 lack storage local-zfs,
// 2 hold a guest of exclude_db". Counts are per distinct phrase, sorted by count (desc) then phrase. A node
// with several failures counts once per failure, as in kube-scheduler.
func fitSummary(total int, cands []Candidate) string {
	counts := map[string]int{}
	avail := 0
	for _, c := range cands {
		if c.Feasible {
			avail++
			continue
		}
		for _, st := range c.Rejections {
			counts[st.phrase()]++
		}
	}
	phrases := make([]string, 0, len(counts))
	for p := range counts {
		phrases = append(phrases, p)
	}
	slices.SortFunc(phrases, func(a, b string) int {
		if counts[a] != counts[b] {
			return counts[b] - counts[a]
		}
		return strings.Compare(a, b)
	})
	var b strings.Builder
	fmt.Fprintf(&b, "%d/%d nodes are available", avail, total)
	for i, p := range phrases {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%d %s", counts[p], p)
	}
	return b.String()
}
