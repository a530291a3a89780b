package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/proxbalance/proxbalance/internal/history"
	"github.com/proxbalance/proxbalance/internal/placement"
	"github.com/proxbalance/proxbalance/internal/planinput"
	"github.com/proxbalance/proxbalance/internal/pve"
)

// InventorySource reads the live cluster; *pve.Client satisfies it.
type InventorySource interface {
	Inventory(ctx context.Context, opts pve.InventoryOptions) (*pve.Inventory, error)
}

// HistorySource reads Prometheus' history; *history.Client satisfies it.
type HistorySource interface {
	Fetch(ctx context.Context, at time.Time) (*history.Snapshot, error)
}

var (
	_ InventorySource = (*pve.Client)(nil)
	_ HistorySource   = (*history.Client)(nil)
)

// LivePlanner is the production Planner: a fresh inventory (cluster status and tasks always re-read) plus
// history, built into a placement.State and planned.
type LivePlanner struct {
	PVE     InventorySource
	History HistorySource
	// PrometheusReady pings Prometheus (e.g. its /-/ready or a buildinfo call).
	PrometheusReady func(ctx context.Context) error
	Now             func() time.Time
	// Horizon is the history span the planner expects (default planinput.DefaultHorizon).
	Horizon time.Duration
	// HistoryTimeout bounds one history fetch (0: only the caller's context).
	HistoryTimeout time.Duration
}

const plannerParts = pve.PartClusterStatus | pve.PartHA | pve.PartTasks | pve.PartStorage | pve.PartConfigs

// Plan implements Planner. Missing history is an error, not an empty plan: acting on partial data is worse than
// not acting, and the caller says why.
func (p *LivePlanner) Plan(ctx context.Context, req placement.Request, maintenance map[string]bool, pol placement.Policy) (Planning, error) {
	inv, err := p.PVE.Inventory(ctx, pve.InventoryOptions{Parts: plannerParts, Fresh: pve.PartClusterStatus | pve.PartTasks})
	if err != nil {
		return Planning{}, fmt.Errorf("reading the PVE inventory: %w", err)
	}
	hctx, cancel := ctx, context.CancelFunc(func() {})
	if p.HistoryTimeout > 0 {
		hctx, cancel = context.WithTimeout(ctx, p.HistoryTimeout)
	}
	snap, err := p.History.Fetch(hctx, p.Now())
	cancel()
	if err != nil {
		return Planning{}, fmt.Errorf("reading history from Prometheus: %w", err)
	}
	st, _, err := planinput.Build(inv, snap, planinput.Options{Maintenance: maintenance, Horizon: p.Horizon})
	if err != nil {
		return Planning{}, err
	}
	plan, err := placement.Compute(st, pol, req)
	if err != nil {
		return Planning{}, fmt.Errorf("planning: %w", err)
	}
	out := Planning{Plan: plan, Quorate: inv.Cluster.Name == "" || inv.Cluster.Quorate, Tags: map[string][]string{}}
	for _, t := range inv.Tasks {
		if t.Running() && (t.Type == "qmigrate" || t.Type == "vzmigrate") {
			out.RunningMigrations++
		}
	}
	for _, g := range inv.Guests {
		out.Tags[g.ID()] = g.Tags
	}
	return out, nil
}

// Ready implements Planner: both PVE and Prometheus must answer.
func (p *LivePlanner) Ready(ctx context.Context) error {
	var errs []error
	if _, err := p.PVE.Inventory(ctx, pve.InventoryOptions{Parts: pve.PartClusterStatus, Fresh: pve.PartClusterStatus}); err != nil {
		errs = append(errs, fmt.Errorf("PVE: %w", err))
	}
	if p.PrometheusReady != nil {
		if err := p.PrometheusReady(ctx); err != nil {
			errs = append(errs, fmt.Errorf("prometheus: %w", err))
		}
	}
	return errors.Join(errs...)
}
