package exporter

import (
	"context"

	"github.com/proxbalance/proxbalance/internal/pve"
)

// Source yields inventory snapshots of one PVE target. Implementations decide how fresh a snapshot is (a
// caching snapshotter may hand out the same Inventory to several scrapes); the exporter never mutates it.
type Source interface {
	Inventory(ctx context.Context) (*pve.Inventory, error)
}

// SourceFunc adapts a function to Source.
type SourceFunc func(ctx context.Context) (*pve.Inventory, error)

// Inventory calls f.
func (f SourceFunc) Inventory(ctx context.Context) (*pve.Inventory, error) { return f(ctx) }

// SourceFactory returns the Source for a scrape target (host or host:port, as given in ?target=) using the
// credentials and connection settings of module. It is called once per /pve request; implementations that
// keep clients or caches per target do so themselves.
type SourceFactory func(ctx context.Context, target string, module Module) (Source, error)
