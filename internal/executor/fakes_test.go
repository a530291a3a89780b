package executor

import (
	"context"
	"errors"
	"strings"
	"sync"
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

// faultyPVE injects failures the simulator cannot: answers lost on the way back, transient errors.
type faultyPVE struct {
	PVE
	mu sync.Mutex
	// statusFailures is how many ClusterStatus calls fail with a 503 before the real answer.
	statusFailures int
	// migrate replaces Migrate; real calls the simulator.
	migrate func(real func() (string, error)) (string, error)
}

func (f *faultyPVE) ClusterStatus(ctx context.Context) (*pve.ClusterStatus, error) {
	f.mu.Lock()
	fail := f.statusFailures > 0
	f.statusFailures--
	f.mu.Unlock()
	if fail {
		return nil, &pve.APIError{Method: "GET", Path: "/cluster/status", StatusCode: 503, Message: "Service Unavailable"}
	}
	return f.PVE.ClusterStatus(ctx)
}

func (f *faultyPVE) Migrate(ctx context.Context, g pve.GuestRef, target string, o pve.MigrateOptions) (string, error) {
	real := func() (string, error) { return f.PVE.Migrate(ctx, g, target, o) }
	if f.migrate == nil {
		return real()
	}
	return f.migrate(real)
}

var errConnReset = errors.New("read tcp 127.0.0.1:50000->127.0.0.1:8006: read: connection reset by peer")
