package executor

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/proxbalance/proxbalance/internal/pve"
)

var onlineOpts = pve.MigrateOptions{Online: true}

func guestRef(t *testing.T, id, node string) pve.GuestRef {
	t.Helper()
	gt, vmid, err := parseGuest(id)
	if err != nil {
		t.Fatal(err)
	}
	return pve.GuestRef{Type: gt, VMID: vmid, Node: node}
}

// warningsPVE reports every successful task as "WARNINGS: 2", as PVE does when a migration logged warnings.
type warningsPVE struct{ PVE }

func (w *warningsPVE) WaitTask(ctx context.Context, upid string, poll time.Duration) (*pve.TaskState, error) {
	st, err := w.PVE.WaitTask(ctx, upid, poll)
	if err == nil && st.Outcome == pve.TaskOK && strings.Contains(upid, "migrate:") {
		st.Outcome, st.ExitStatus, st.Warnings = pve.TaskWarnings, "WARNINGS: 2", 2
	}
	return st, err
}
