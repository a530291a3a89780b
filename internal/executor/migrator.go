package executor

import (
	"context"
	"fmt"
	"sync"

	"github.com/proxbalance/proxbalance/internal/pve"
)

// MigrateCall is one migration a DryRunMigrator was asked for.
type MigrateCall struct {
	Guest   pve.GuestRef
	Target  string
	Options pve.MigrateOptions
}

// String is the request PVE would have received.
func (c MigrateCall) String() string {
	o := c.Options
	return fmt.Sprintf("POST /nodes/%s/%s/%d/migrate target=%s online=%d with-local-disks=%d restart=%d",
		c.Guest.Node, c.Guest.Type, c.Guest.VMID, c.Target, b01(o.Online), b01(o.WithLocalDisks), b01(o.Restart))
}

func b01(b bool) int {
	if b {
		return 1
	}
	return 0
}

// DryRunMigrator records migrations instead of requesting them; it returns an empty UPID.
type DryRunMigrator struct {
	mu    sync.Mutex
	calls []MigrateCall
}

var _ Migrator = (*DryRunMigrator)(nil)

// Migrate records the call.
func (d *DryRunMigrator) Migrate(_ context.Context, g pve.GuestRef, target string, o pve.MigrateOptions) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = append(d.calls, MigrateCall{Guest: g, Target: target, Options: o})
	return "", nil
}

// Calls returns the recorded calls, oldest first.
func (d *DryRunMigrator) Calls() []MigrateCall {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]MigrateCall(nil), d.calls...)
}
