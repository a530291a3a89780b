package placement

import (
	"slices"
	"strings"
)

// filterInput is one (unit, target) pair under evaluation. view is the target with the unit added, computed
// lazily because only the resource filters need it.
type filterInput struct {
	m      *model
	u      *unitM
	target *nodeM
	view   *nodeView
}

func (in *filterInput) after() nodeView {
	if in.view == nil {
		v := in.m.viewWith(in.target, in.u, 1, false)
		in.view = &v
	}
	return *in.view
}

// filter is a hard constraint on a target: a Status with a Reason code when the unit may not go there.
type filter interface {
	Name() string
	Filter(in *filterInput) Status
}

type nodeAvailable struct{}
type storageAvailable struct{}
type antiAffinity struct{}
type pinned struct{}
type nodeCoverage struct{}
type memoryFit struct{}
type cpuOvercommit struct{}

var (
	_ filter = nodeAvailable{}
	_ filter = storageAvailable{}
	_ filter = antiAffinity{}
	_ filter = pinned{}
	_ filter = nodeCoverage{}
	_ filter = memoryFit{}
	_ filter = cpuOvercommit{}
)

func (nodeAvailable) Name() string { return "node-available" }
func (nodeAvailable) Filter(in *filterInput) Status {
	switch {
	case !in.target.online:
		return Status{Code: ReasonNodeOffline}
	case in.target.spec.Maintenance:
		return Status{Code: ReasonNodeMaintenance}
	}
	return Status{}
}

// storageAvailable fails closed: a target whose storage list is unknown takes no guest with disks, and a local
// disk is copied only onto a storage whose free space is known to suffice.
func (storageAvailable) Name() string { return "storage" }
func (storageAvailable) Filter(in *filterInput) Status {
	for _, gi := range in.u.members {
		if st := in.m.storageStatus(in.m.guests[gi], in.target); !st.OK() {
			return st
		}
	}
	return Status{}
}

func (m *model) storageStatus(g *guestM, n *nodeM) Status {
	if len(g.storages) == 0 {
		return Status{}
	}
	if n.storages == nil {
		return Status{Code: ReasonStorageUnknown}
	}
	for _, name := range g.storages {
		s, ok := n.storages[name]
		switch {
		case !ok:
			return Status{Code: ReasonStorageMissing, Detail: name}
		case !s.Enabled:
			return Status{Code: ReasonStorageDisabled, Detail: name}
		case !s.Active:
			return Status{Code: ReasonStorageInactive, Detail: name}
		}
	}
	for _, ld := range g.localDisk {
		s := n.storages[ld.storage]
		if s.Shared {
			continue // the volume is already there
		}
		if !s.AvailKnown || s.AvailBytes < ld.bytes {
			return Status{Code: ReasonStorageFull, Detail: ld.storage}
		}
	}
	return Status{}
}

// antiAffinity: after the move no node may hold two guests of one exclude_<group>.
func (antiAffinity) Name() string { return "anti-affinity" }
func (antiAffinity) Filter(in *filterInput) Status {
	if g := in.m.excludeConflict(in.u, in.target); g != "" {
		return Status{Code: ReasonAntiAffinity, Detail: g}
	}
	return Status{}
}

// excludeConflict names the first exclude group the unit shares with guests on n ("" when none).
func (m *model) excludeConflict(u *unitM, n *nodeM) string {
	for _, gi := range u.members {
		for _, x := range m.guests[gi].excludes {
			if n.groups[x] > 0 {
				return x
			}
		}
	}
	return ""
}

// pinned: a guest tagged pin_<node> (one or more) may only be on a named node.
func (pinned) Name() string { return "pin" }
func (pinned) Filter(in *filterInput) Status {
	for _, gi := range in.u.members {
		g := in.m.guests[gi]
		if len(g.pins) > 0 && !slices.Contains(g.pins, in.target.name) {
			return Status{Code: ReasonPinned, Detail: "pin_" + strings.Join(g.pins, ",pin_")}
		}
	}
	return Status{}
}

// nodeCoverage keeps load-driven moves off nodes whose load is mostly unknown: an empty-looking node without
// data is not an invitation.
func (nodeCoverage) Name() string { return "node-coverage" }
func (nodeCoverage) Filter(in *filterInput) Status {
	if in.target.coverage < in.m.pol.MinCoverage {
		return Status{Code: ReasonLowCoverage, Detail: "node " + in.target.name}
	}
	return Status{}
}

// memoryFit: the target's p95 memory after the move leaves MemoryHeadroom free.
func (memoryFit) Name() string { return "memory" }
func (memoryFit) Filter(in *filterInput) Status {
	if in.after().memPeak > 1-in.m.pol.MemoryHeadroom {
		return Status{Code: ReasonInsufficientMemory}
	}
	return Status{}
}

// cpuOvercommit: Σ vCPUs of running guests / CPUs stays within Policy.CPUOvercommit (0 disables).
func (cpuOvercommit) Name() string { return "cpu-overcommit" }
func (cpuOvercommit) Filter(in *filterInput) Status {
	if c := in.m.pol.CPUOvercommit; c > 0 && (in.target.vcpus+in.u.vcpus)/in.target.cpus > c {
		return Status{Code: ReasonCPUOvercommit}
	}
	return Status{}
}

// filtersFor returns the filters of an action. Evacuation drops the tag gates (pin, anti-affinity becomes a
// preference) and the data-coverage gate; hardware, storage, memory and overcommit always apply.
func filtersFor(evacuation bool) []filter {
	if evacuation {
		return []filter{nodeAvailable{}, storageAvailable{}, memoryFit{}, cpuOvercommit{}}
	}
	return []filter{nodeAvailable{}, storageAvailable{}, antiAffinity{}, pinned{}, nodeCoverage{}, memoryFit{}, cpuOvercommit{}}
}

// runFilters evaluates the filters; with all false it stops at the first failure.
func (m *model) runFilters(fs []filter, u *unitM, target *nodeM, all bool) ([]Status, *filterInput) {
	in := &filterInput{m: m, u: u, target: target}
	var out []Status
	for _, f := range fs {
		if st := f.Filter(in); !st.OK() {
			out = append(out, st)
			if !all {
				break
			}
		}
	}
	return out, in
}

// gate checks the guest-level constraints that no target can satisfy; the empty Status when the guest may move.
// Evacuation bypasses the tag and policy gates (ignore, HA, stopped, affinity) but never locks, templates,
// running migrations or host-bound hardware; an unshared bind mount makes an evacuated guest a manual task.
func (m *model) gate(g *guestM) Status {
	s := g.spec
	switch {
	case s.Template:
		return Status{Code: ReasonTemplate}
	case s.Lock != "":
		return Status{Code: ReasonLocked, Detail: s.Lock}
	case g.inflight >= 0:
		return Status{Code: ReasonInFlight, Detail: "to " + m.nodes[g.inflight].name}
	case len(s.LocalDevices) > 0:
		return Status{Code: ReasonLocalDevice, Detail: strings.Join(s.LocalDevices, ",")}
	}
	for _, b := range s.BindMounts {
		if !b.Shared {
			return Status{Code: ReasonUnsharedBindMount, Detail: b.Key + "=" + b.Source}
		}
	}
	if m.evacuation {
		return Status{}
	}
	switch {
	case g.ignore:
		return Status{Code: ReasonIgnored}
	case s.HAManaged && !m.pol.AllowHA:
		return Status{Code: ReasonHAManaged}
	case !s.Running && !m.pol.MoveStopped:
		return Status{Code: ReasonStopped}
	case m.units[g.unit].split:
		return Status{Code: ReasonAffinitySplit, Detail: m.units[g.unit].group}
	}
	return Status{}
}

// unitGate is the first failing gate of any member (the unit moves whole or not at all).
func (m *model) unitGate(u *unitM) (Status, *guestM) {
	for _, gi := range u.members {
		if st := m.gate(m.guests[gi]); !st.OK() {
			return st, m.guests[gi]
		}
	}
	return Status{}, nil
}
