// Package planinput builds the planner's input: it joins the present (a PVE Inventory: where every guest is, its
// config, node capacities, storages, locks and running tasks) with the past (a history Snapshot from Prometheus)
// into a placement.State. It is pure: no I/O and no clock, so a State can be rebuilt from stored inputs.
package planinput

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/proxbalance/proxbalance/internal/history"
	"github.com/proxbalance/proxbalance/internal/placement"
	"github.com/proxbalance/proxbalance/internal/pve"
)

// DefaultHorizon is the history span the planner weighs (its longest window is 7 days).
const DefaultHorizon = 7 * 24 * time.Hour

// LockConfigUnread is the lock given to a guest whose config could not be read: without its disks, devices and
// mount points the planner cannot prove a move safe, so the guest stays where it is and the plan says why.
const LockConfigUnread = "config-unread"

// LockMigrating is the lock given to a guest with a running qmigrate/vzmigrate task or an HA migration. The task
// list does not name the target, so the planner cannot account for it as an in-flight migration; holding the
// guest still keeps it out of a second migration.
const LockMigrating = "migrate"

// Options are the facts that come from neither input.
type Options struct {
	// Maintenance holds the names of nodes in maintenance mode (the balancer's own state).
	Maintenance map[string]bool
	// Horizon is the span of history the planner expects; a Snapshot covering less gives each series a
	// proportionally lower coverage. Default DefaultHorizon.
	Horizon time.Duration
}

// Build returns the State for inv and snap (snap may be nil: no history, coverage 0, so the planner only makes
// moves that need no load data, such as evacuations) and notes on what was left out or held back. It fails only
// on a nil inventory.
//
// Coverage: the planner itself discounts missing samples (NaN) inside a series, so each Metric's Coverage here is
// only the share of the horizon the snapshot spans (1 for a 7-day snapshot), and 0 for a missing series.
func Build(inv *pve.Inventory, snap *history.Snapshot, opts Options) (placement.State, []string, error) {
	if inv == nil {
		return placement.State{}, nil, fmt.Errorf("building planner state: no inventory")
	}
	if opts.Horizon <= 0 {
		opts.Horizon = DefaultHorizon
	}
	b := builder{inv: inv, snap: snap, opts: opts, storages: map[string]map[string]pve.Storage{}}
	st := placement.State{Now: inv.FetchedAt, End: inv.FetchedAt}
	if snap != nil {
		st.End, st.Step = snap.Grid.End(), snap.Grid.Step
		b.horizonShare = math.Min(1, float64(snap.Grid.Window())/float64(opts.Horizon))
	}
	for _, s := range inv.Storages {
		if b.storages[s.Node] == nil {
			b.storages[s.Node] = map[string]pve.Storage{}
		}
		b.storages[s.Node][s.Storage] = s
	}
	quorate := inv.Cluster.Name == "" || inv.Cluster.Quorate
	if !quorate {
		b.notef("cluster %s is not quorate: every node counts as offline", inv.Cluster.Name)
	}
	nodes := map[string]bool{}
	for _, n := range sortedBy(inv.Nodes, func(n pve.Node) string { return n.Name }) {
		nodes[n.Name] = true
		st.Nodes = append(st.Nodes, b.node(n, quorate))
	}
	migrating := b.migrating()
	for _, g := range sortedBy(inv.Guests, pve.Guest.ID) {
		if !nodes[g.Node] {
			b.notef("guest %s is on node %q, which the inventory does not list: left out", g.ID(), g.Node)
			continue
		}
		st.Guests = append(st.Guests, b.guest(g, migrating[g.ID()]))
	}
	return st, b.notes, nil
}

type builder struct {
	inv          *pve.Inventory
	snap         *history.Snapshot
	opts         Options
	horizonShare float64
	storages     map[string]map[string]pve.Storage // node → storage id → storage
	notes        []string
}

func (b *builder) notef(format string, args ...any) {
	b.notes = append(b.notes, fmt.Sprintf(format, args...))
}

func (b *builder) node(n pve.Node, quorate bool) placement.Node {
	out := placement.Node{
		Name:        n.Name,
		Online:      n.Online && quorate,
		Maintenance: b.opts.Maintenance[n.Name],
		CPUs:        n.CPUs,
		MemoryBytes: n.MemTotal,
	}
	if out.Online && (n.CPUs <= 0 || n.MemTotal == 0) {
		// The planner cannot weigh a node without capacity (and rejects an online one): it takes no guests.
		out.Online = false
		b.notef("node %s: capacity unknown (%d CPUs, %d bytes of memory), treated as offline", n.Name, n.CPUs, n.MemTotal)
	}
	out.StoragesKnown = len(b.storages[n.Name]) > 0 && !b.storageFailed(n.Name)
	if !out.StoragesKnown && n.Online {
		b.notef("node %s: storages unknown, no guest with disks will be placed on it", n.Name)
	}
	for _, s := range sortedBy(mapValues(b.storages[n.Name]), func(s pve.Storage) string { return s.Storage }) {
		out.Storages = append(out.Storages, placement.StorageState{
			Name: s.Storage, Enabled: s.Enabled, Active: s.Active, Shared: s.Shared,
			AvailBytes: s.Avail, AvailKnown: s.Active && s.Total > 0,
		})
	}
	var e *history.Entity
	if b.snap != nil {
		e = b.snap.Nodes[n.Name]
	}
	out.Load = placement.NodeLoad{
		CPU:    b.metric(e.Get(history.CPU)),
		Memory: b.metric(e.Get(history.Memory)),
		IOWait: b.metric(e.Get(history.IOWait)),
	}
	return out
}

// storageFailed reports whether the inventory could not read the node's storage list.
func (b *builder) storageFailed(node string) bool {
	for _, p := range b.inv.Partial {
		if p.Node == node && strings.Contains(p.Endpoint, "/storage") {
			return true
		}
	}
	return false
}

func (b *builder) guest(g pve.Guest, migrating bool) placement.Guest {
	id := g.ID()
	out := placement.Guest{
		ID:          id,
		Type:        placement.GuestType(g.Type),
		Name:        g.Name,
		Node:        g.Node,
		Running:     g.Status == "running" || g.Status == "paused",
		Template:    g.Template,
		VCPUs:       int(math.Ceil(g.CPUs)),
		MemoryBytes: g.MemMax,
		HAManaged:   g.HAManaged,
		Lock:        g.Lock,
	}
	tags := slices.Clone(g.Tags)
	if c := g.Config; c != nil {
		out.VCPUs = c.VCPUs
		if c.Memory > 0 {
			out.MemoryBytes = c.Memory
		}
		tags = append(tags, c.Tags...)
		for _, d := range c.Disks {
			if d.CDROM || d.Storage == "" { // raw device paths are LocalDevices
				continue
			}
			out.Disks = append(out.Disks, placement.Disk{
				Key: d.Key, Storage: d.Storage, SizeBytes: d.Size, Shared: b.storages[g.Node][d.Storage].Shared,
			})
		}
		for _, d := range c.LocalDevices {
			out.LocalDevices = append(out.LocalDevices, d.Key)
		}
		for _, mp := range c.MountPoints {
			if mp.Bind {
				out.BindMounts = append(out.BindMounts, placement.BindMount{Key: mp.Key, Source: mp.Source, Shared: mp.Shared})
			}
		}
	} else if !g.Template {
		out.Lock = cmp.Or(out.Lock, LockConfigUnread)
		b.notef("guest %s: config not read, held in place", id)
	}
	if migrating {
		out.Lock = cmp.Or(out.Lock, LockMigrating)
	}
	out.Tags = normaliseTags(tags)

	var e *history.Entity
	if b.snap != nil {
		e = b.snap.Guests[id]
	}
	out.Demand = placement.Demand{
		CPU:    b.metric(e.Get(history.CPU)),
		Memory: b.metric(e.Get(history.Memory)),
		DiskIO: b.metric(sumSeries(e.Get(history.DiskRead), e.Get(history.DiskWrite))),
	}
	if out.Running && b.snap != nil && out.Demand.CPU.Series == nil && out.Demand.Memory.Series == nil {
		b.notef("guest %s: running but without history", id)
	}
	return out
}

// metric turns a history series into a planner metric. The values are shared, not copied: the planner never
// modifies its input (placement.Apply copies what it changes).
func (b *builder) metric(s history.Series) placement.Metric {
	if s.Values == nil || s.Present == 0 {
		return placement.Metric{}
	}
	return placement.Metric{Series: placement.Series(s.Values), Coverage: b.horizonShare}
}

// sumSeries adds two series point by point; a point missing in one counts as 0 when the other has it, and stays
// missing when neither has it.
func sumSeries(a, c history.Series) history.Series {
	switch {
	case a.Values == nil:
		return c
	case c.Values == nil:
		return a
	}
	out := history.Series{Values: make([]float32, len(a.Values))}
	for i := range out.Values {
		x, y := a.Values[i], c.Values[i]
		switch {
		case x != x && y != y:
			out.Values[i] = x
			continue
		case x != x:
			x = 0
		case y != y:
			y = 0
		}
		out.Values[i] = x + y
		out.Present++
	}
	return out
}

// migrating lists the guests with a running migration task or an HA migration in progress.
func (b *builder) migrating() map[string]bool {
	out := map[string]bool{}
	for _, t := range b.inv.Tasks {
		if !t.Running() {
			continue
		}
		var typ pve.GuestType
		switch t.Type {
		case "qmigrate":
			typ = pve.TypeQEMU
		case "vzmigrate":
			typ = pve.TypeLXC
		default:
			continue
		}
		if vmid, err := strconv.Atoi(t.ID); err == nil {
			out[string(typ)+"/"+strconv.Itoa(vmid)] = true
		}
	}
	for _, r := range b.inv.HA.Resources {
		if r.CRMState != "migrate" && r.CRMState != "relocate" {
			continue
		}
		switch r.Type {
		case "vm":
			out["qemu/"+strconv.Itoa(r.VMID)] = true
		case "ct":
			out["lxc/"+strconv.Itoa(r.VMID)] = true
		}
	}
	return out
}

// normaliseTags lower-cases, de-duplicates and sorts tags (PVE treats them case-insensitively).
func normaliseTags(tags []string) []string {
	if len(tags) == 0 {
		return nil
	}
	out := make([]string, 0, len(tags))
	for _, t := range tags {
		if t = strings.ToLower(strings.TrimSpace(t)); t != "" {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func sortedBy[T any](xs []T, key func(T) string) []T {
	out := slices.Clone(xs)
	slices.SortStableFunc(out, func(a, b T) int { return strings.Compare(key(a), key(b)) })
	return out
}

func mapValues[K comparable, V any](m map[K]V) []V {
	out := make([]V, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
