package pve_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/proxbalance/proxbalance/internal/pve"
	"github.com/proxbalance/proxbalance/internal/pvesim"
	"github.com/proxbalance/proxbalance/internal/pvesim/pvesimtest"
)

// These tests point the real client at the simulator over TLS with the simulator's CA, as a user points it at a
// cluster: they prove that what internal/pve decodes from fixtures it also decodes from a live, stateful API.

func newSimClient(t testing.TB, srv *pvesimtest.Server) *pve.Client {
	t.Helper()
	c, err := pve.New(pve.Config{
		URL:         srv.URL,
		TokenID:     srv.TokenID,
		TokenSecret: pve.Secret(srv.TokenSecret),
		CAFile:      srv.CAFile(t),
		Timeout:     10 * time.Second,
	})
	if err != nil {
		t.Fatalf("pve.New: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func findGuest(t *testing.T, inv *pve.Inventory, vmid int) pve.Guest {
	t.Helper()
	for _, g := range inv.Guests {
		if g.VMID == vmid {
			return g
		}
	}
	t.Fatalf("guest %d not in inventory", vmid)
	return pve.Guest{}
}

func TestSimInventoryTellsTheDefaultStory(t *testing.T) {
	srv := pvesimtest.Start(t)
	c := newSimClient(t, srv)
	inv, err := c.Inventory(t.Context(), pve.InventoryOptions{})
	if err != nil {
		t.Fatalf("Inventory: %v", err)
	}
	if len(inv.Partial) != 0 {
		t.Fatalf("Partial = %v, want none on a healthy cluster", inv.Partial)
	}
	if !inv.Cluster.Quorate || inv.Cluster.Name == "" || inv.Cluster.PVEVersion == "" {
		t.Errorf("Cluster = %+v, want a quorate named cluster with a version", inv.Cluster)
	}
	if len(inv.Nodes) != 5 {
		t.Fatalf("nodes = %d, want 5", len(inv.Nodes))
	}
	locals := 0
	for _, n := range inv.Nodes {
		if !n.Online || !n.StatusFetched || n.CPUs == 0 || n.MemTotal == 0 || n.NodeID == 0 {
			t.Errorf("node %s = %+v, want online with status, CPUs, memory and a node id", n.Name, n)
		}
		if n.Local {
			locals++
		}
	}
	if locals != 1 {
		t.Errorf("%d local nodes, want exactly 1", locals)
	}
	if len(inv.Guests) < 50 {
		t.Errorf("guests = %d, want about 60", len(inv.Guests))
	}
	for _, g := range inv.Guests {
		if g.Config == nil {
			t.Errorf("guest %s has no config facts", g.ID())
		}
	}

	if gpu := findGuest(t, inv, 110); len(gpu.Config.LocalDevices) == 0 || gpu.Config.LocalDevices[0].Kind != pve.DevicePCI {
		t.Errorf("gpu-worker 110 local devices = %+v, want a hostpci device", gpu.Config.LocalDevices)
	}
	media := findGuest(t, inv, 300)
	if !slices.ContainsFunc(media.Config.MountPoints, func(m pve.MountPoint) bool { return m.Bind && !m.Shared }) {
		t.Errorf("media-ct 300 mount points = %+v, want an unshared bind mount", media.Config.MountPoints)
	}
	if db := findGuest(t, inv, 100); !slices.Contains(db.Tags, "exclude_db") {
		t.Errorf("db-primary 100 tags = %v, want exclude_db", db.Tags)
	}
	if legacy := findGuest(t, inv, 201); !slices.Contains(legacy.Tags, "ignore") {
		t.Errorf("legacy-app 201 tags = %v, want ignore", legacy.Tags)
	}
	if tmpl := findGuest(t, inv, 202); !tmpl.Template {
		t.Errorf("tmpl-debian12 202 is not a template")
	}
	if web := findGuest(t, inv, 106); !web.HAManaged || web.HAState == "" {
		t.Errorf("web1 106 HA = %t %q, want HA-managed with a state", web.HAManaged, web.HAState)
	}
	hasCeph := func(node string) bool {
		return slices.ContainsFunc(inv.Storages, func(s pve.Storage) bool { return s.Node == node && s.Storage == "ceph-rbd" })
	}
	if hasCeph("pve4") || !hasCeph("pve1") {
		t.Errorf("ceph-rbd on pve4 = %t, on pve1 = %t; want only the latter", hasCeph("pve4"), hasCeph("pve1"))
	}
	if len(inv.Tasks) == 0 {
		t.Error("no tasks: the simulator starts with a task history")
	}
}

func TestSimEveryReadEndpointDecodes(t *testing.T) {
	srv := pvesimtest.Start(t)
	c := newSimClient(t, srv)
	ctx := t.Context()
	vm := pve.GuestRef{Type: pve.TypeQEMU, VMID: 100, Node: "pve1"}
	ct := pve.GuestRef{Type: pve.TypeLXC, VMID: 300, Node: "pve3"}

	calls := []struct {
		name string
		call func() error
	}{
		{"ClusterStatus", func() error { _, err := c.ClusterStatus(ctx); return err }},
		{"Version", func() error { _, err := c.Version(ctx); return err }},
		{"HAResources", func() error { _, err := c.HAResources(ctx); return err }},
		{"HAStatusCurrent", func() error { _, err := c.HAStatusCurrent(ctx); return err }},
		{"Tasks", func() error { _, err := c.Tasks(ctx); return err }},
		{"NotBackedUp", func() error { _, err := c.NotBackedUp(ctx); return err }},
		{"Nodes", func() error { _, err := c.Nodes(ctx); return err }},
		{"NodeStatus", func() error { _, err := c.NodeStatus(ctx, "pve1"); return err }},
		{"NodeRRD", func() error {
			pts, err := c.NodeRRD(ctx, "pve1", "hour")
			if err == nil && len(pts) == 0 {
				t.Error("NodeRRD: empty")
			}
			return err
		}},
		{"NodeStorage", func() error { _, err := c.NodeStorage(ctx, "pve1"); return err }},
		{"Subscription", func() error { _, err := c.Subscription(ctx, "pve1"); return err }},
		{"NodeGuests qemu", func() error { _, err := c.NodeGuests(ctx, "pve1", pve.TypeQEMU); return err }},
		{"NodeGuests lxc", func() error { _, err := c.NodeGuests(ctx, "pve5", pve.TypeLXC); return err }},
		{"GuestConfig qemu", func() error { _, err := c.GuestConfig(ctx, vm); return err }},
		{"GuestConfig lxc", func() error { _, err := c.GuestConfig(ctx, ct); return err }},
		{"GuestStatus qemu", func() error { _, err := c.GuestStatus(ctx, vm); return err }},
		{"GuestStatus lxc", func() error { _, err := c.GuestStatus(ctx, ct); return err }},
		{"GuestRRD", func() error {
			pts, err := c.GuestRRD(ctx, vm, "day")
			if err == nil && len(pts) == 0 {
				t.Error("GuestRRD: empty")
			}
			return err
		}},
		{"MigratePrecondition qemu", func() error { _, err := c.MigratePrecondition(ctx, vm, "pve2"); return err }},
		{"MigratePrecondition lxc", func() error { _, err := c.MigratePrecondition(ctx, ct, "pve2"); return err }},
	}
	for _, tc := range calls {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestSimErrorsAreTyped(t *testing.T) {
	srv := pvesimtest.Start(t)
	c := newSimClient(t, srv)
	ctx := t.Context()

	_, err := c.GuestConfig(ctx, pve.GuestRef{Type: pve.TypeQEMU, VMID: 999999, Node: "pve1"})
	if !pve.IsNotFound(err) {
		t.Errorf("config of a missing guest: err = %v, want IsNotFound", err)
	}
	_, err = c.Migrate(ctx, pve.GuestRef{Type: pve.TypeQEMU, VMID: 100, Node: "pve1"}, "pve1", pve.MigrateOptions{Online: true})
	var apiErr *pve.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Errors["target"] == "" {
		t.Errorf("migrate to own node: err = %v, want 400 with errors.target", err)
	}

	if err := srv.Sim.SetFaults(pvesim.Faults{OfflineNodes: []string{"pve3"}, ForbiddenNodes: []string{"pve2"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.NodeStatus(ctx, "pve3"); !pve.IsUnavailable(err) {
		t.Errorf("status of an offline node: err = %v, want IsUnavailable (595)", err)
	}
	if _, err := c.NodeStatus(ctx, "pve2"); !pve.IsForbidden(err) {
		t.Errorf("status of a node answering 403: err = %v, want IsForbidden", err)
	}
	inv, err := c.Inventory(ctx, pve.InventoryOptions{})
	if err != nil {
		t.Fatalf("Inventory with one node offline and one forbidden: %v (only /cluster/resources may fail it)", err)
	}
	// An offline node is a fact, not a fetch error: it is reported offline and not asked for its status.
	for _, n := range inv.Nodes {
		if n.Name == "pve3" && (n.Online || n.StatusFetched) {
			t.Errorf("pve3 = online %t, status fetched %t; want offline, not fetched", n.Online, n.StatusFetched)
		}
	}
	if !slices.ContainsFunc(inv.Partial, func(e pve.FetchError) bool { return e.Node == "pve2" && pve.IsForbidden(e.Err) }) {
		t.Errorf("Partial = %v, want a 403 entry for pve2", inv.Partial)
	}
	if len(inv.Guests) < 50 {
		t.Errorf("guests = %d with two nodes failing, want the rest still listed", len(inv.Guests))
	}

	bad, err := pve.New(pve.Config{URL: srv.URL, TokenID: srv.TokenID, TokenSecret: "wrong", CAFile: srv.CAFile(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	if _, err := bad.Version(ctx); !pve.IsUnauthorized(err) {
		t.Errorf("bad token: err = %v, want IsUnauthorized", err)
	}
}

// TestSimLiveMigration follows a migration through the client: the UPID, the lock while it runs, progress in the
// log, success, and the guest on the target afterwards.
func TestSimLiveMigration(t *testing.T) {
	srv := pvesimtest.Start(t)
	c := newSimClient(t, srv)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	// web2 or any running, non-HA qemu guest on pve1 that can go to pve2.
	inv, err := c.Inventory(ctx, pve.InventoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var g pve.Guest
	for _, cand := range inv.Guests {
		if cand.Node == "pve1" && cand.Type == pve.TypeQEMU && cand.Status == "running" && !cand.HAManaged &&
			len(cand.Config.LocalDevices) == 0 && !slices.ContainsFunc(cand.Config.Disks, func(d pve.Disk) bool { return d.Storage == "local-zfs" }) {
			g = cand
			break
		}
	}
	if g.VMID == 0 {
		t.Fatal("no movable running VM on pve1 in the default scenario")
	}
	pre, err := c.MigratePrecondition(ctx, g.Ref(), "pve2")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(pre.AllowedNodes, "pve2") {
		t.Fatalf("precondition for %s → pve2 = %+v, want pve2 allowed", g.ID(), pre)
	}
	upid, err := c.Migrate(ctx, g.Ref(), "pve2", pve.MigrateOptions{Online: true})
	if err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	parsed, err := pve.ParseUPID(upid)
	if err != nil || parsed.Type != "qmigrate" || parsed.Node != "pve1" {
		t.Fatalf("UPID %q = %+v, %v; want a qmigrate on pve1", upid, parsed, err)
	}
	if _, lock, _ := srv.Sim.GuestNode(g.VMID); lock != "migrate" {
		t.Errorf("lock while migrating = %q, want migrate", lock)
	}

	// Simulated time moves only when the test says so: advance it while WaitTask polls.
	go func() {
		for ctx.Err() == nil {
			srv.Clock.Advance(2 * time.Second)
			time.Sleep(5 * time.Millisecond)
		}
	}()
	state, err := c.WaitTask(ctx, upid, 20*time.Millisecond)
	if err != nil {
		t.Fatalf("WaitTask: %v", err)
	}
	if !state.Succeeded() {
		t.Fatalf("task ended %q, want success", state.ExitStatus)
	}
	log, err := c.TaskLog(ctx, upid, 0, 500)
	if err != nil {
		t.Fatal(err)
	}
	var sawProgress bool
	for _, l := range log {
		sawProgress = sawProgress || strings.Contains(l.Text, "migration active, transferred")
	}
	if !sawProgress || !strings.Contains(log[len(log)-1].Text, "TASK OK") {
		t.Errorf("log lacks progress lines or does not end TASK OK:\n%v", log)
	}
	if node, lock, _ := srv.Sim.GuestNode(g.VMID); node != "pve2" || lock != "" {
		t.Errorf("after migration guest is on %q with lock %q, want pve2 unlocked", node, lock)
	}
}

// TestSimSnapshotterSteadyStateCost measures the exporter's cost goal on the simulator: after the first round,
// a round costs /cluster/resources plus one status call per online node.
func TestSimSnapshotterSteadyStateCost(t *testing.T) {
	srv := pvesimtest.Start(t)
	c := newSimClient(t, srv)
	s := pve.NewSnapshotter(c, pve.SnapshotterConfig{})
	ctx := t.Context()
	if _, err := s.Inventory(ctx, pve.InventoryOptions{}); err != nil {
		t.Fatal(err)
	}
	before := total(c.APICalls())
	const rounds = 5
	for range rounds {
		srv.Clock.Advance(15 * time.Second)
		if _, err := s.Inventory(ctx, pve.InventoryOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	perRound := float64(total(c.APICalls())-before) / rounds
	if limit := float64(1 + 5); perRound > limit {
		t.Errorf("steady state: %.1f API calls per round, want ≤ %.0f (1 + nodes); calls: %v", perRound, limit, c.APICalls())
	}
}

func total(m map[string]uint64) uint64 {
	var n uint64
	for _, v := range m {
		n += v
	}
	return n
}

// BenchmarkSimInventoryLarge is a full, uncached inventory of the 64-node, 5,000-guest scenario over loopback TLS:
// every endpoint an inventory reads, every guest config. It reports API calls per inventory.
func BenchmarkSimInventoryLarge(b *testing.B) {
	srv := pvesimtest.Start(b, pvesimtest.WithBuiltin("large"))
	c := newSimClient(b, srv)
	ctx := context.Background()
	b.ReportAllocs()
	before := total(c.APICalls())
	for b.Loop() {
		if _, err := c.Inventory(ctx, pve.InventoryOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(total(c.APICalls())-before)/float64(b.N), "calls/op")
}

// BenchmarkSimSnapshotterLarge is the steady-state round on the same scenario: cached configs and slow parts,
// so /cluster/resources plus one status call per node.
func BenchmarkSimSnapshotterLarge(b *testing.B) {
	srv := pvesimtest.Start(b, pvesimtest.WithBuiltin("large"))
	c := newSimClient(b, srv)
	s := pve.NewSnapshotter(c, pve.SnapshotterConfig{})
	ctx := context.Background()
	if _, err := s.Inventory(ctx, pve.InventoryOptions{}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	before := total(c.APICalls())
	for b.Loop() {
		srv.Clock.Advance(15 * time.Second)
		if _, err := s.Inventory(ctx, pve.InventoryOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(total(c.APICalls())-before)/float64(b.N), "calls/op")
}
