package pvesim_test

import (
	"testing"
	"time"

	proxmox "github.com/luthermonson/go-proxmox"

	"github.com/proxbalance/proxbalance/internal/pvesim/pvesimtest"
)

// TestGoProxmoxClient drives the simulator with go-proxmox, the client internal/pve uses: if its decoders
// accept every answer and a migration completes through Task.Wait, a real client cannot tell the difference.
func TestGoProxmoxClient(t *testing.T) {
	srv := pvesimtest.Start(t)
	ctx := t.Context()
	c := proxmox.NewClient(srv.URL, proxmox.WithAPIToken(srv.TokenID, srv.TokenSecret), proxmox.WithHTTPClient(srv.Client))

	v, err := c.Version(ctx)
	if err != nil || v.Version != "9.2.11" || v.Release != "9.2" {
		t.Fatalf("Version: %+v, %v", v, err)
	}
	cl, err := c.Cluster(ctx)
	if err != nil {
		t.Fatalf("Cluster: %v", err)
	}
	if cl.Name != "demo" || cl.Quorate != 1 || len(cl.Nodes) != 5 {
		t.Errorf("cluster %q quorate %d with %d nodes", cl.Name, cl.Quorate, len(cl.Nodes))
	}
	rs, err := cl.Resources(ctx)
	if err != nil {
		t.Fatalf("Resources: %v", err)
	}
	types := map[string]int{}
	for _, r := range rs {
		types[r.Type]++
	}
	if types["qemu"]+types["lxc"] != 61 || types["node"] != 5 {
		t.Errorf("resource types %v", types)
	}
	vmsOnly, err := cl.Resources(ctx, "vm")
	if err != nil || len(vmsOnly) != 61 {
		t.Errorf("Resources(vm): %d entries, %v", len(vmsOnly), err)
	}
	// Before any migration: each node's boot "startall" and last night's backup job, all finished.
	tasks, err := cl.Tasks(ctx)
	if err != nil || len(tasks) != 10 {
		t.Errorf("Tasks before any migration: %d, %v", len(tasks), err)
	}
	for _, task := range tasks {
		if (task.Type != "startall" && task.Type != "vzdump") || task.EndTime.IsZero() || task.User != "root@pam" {
			t.Errorf("history task %+v", task)
		}
	}

	nodes, err := c.Nodes(ctx)
	if err != nil || len(nodes) != 5 {
		t.Fatalf("Nodes: %d, %v", len(nodes), err)
	}
	n, err := c.Node(ctx, "pve2")
	if err != nil {
		t.Fatalf("Node: %v", err)
	}
	if n.CPUInfo.CPUs != 32 || len(n.LoadAvg) != 3 || n.Memory.Total == 0 || n.PVEVersion == "" {
		t.Errorf("node status %+v", n)
	}
	vms, err := n.VirtualMachines(ctx)
	if err != nil || len(vms) == 0 {
		t.Fatalf("VirtualMachines: %d, %v", len(vms), err)
	}
	cts, err := n.Containers(ctx)
	if err != nil || len(cts) != 2 {
		t.Fatalf("Containers: %d, %v", len(cts), err)
	}
	ct, err := n.Container(ctx, 207)
	if err != nil || ct.Name != "proxy1" {
		t.Fatalf("Container: %+v, %v", ct, err)
	}
	vm, err := n.VirtualMachine(ctx, 203)
	if err != nil {
		t.Fatalf("VirtualMachine: %v", err)
	}
	if vm.Name != "monitoring" || vm.Status != "running" || vm.VirtualMachineConfig == nil || vm.VirtualMachineConfig.Cores == nil || *vm.VirtualMachineConfig.Cores != 4 {
		t.Errorf("vm %+v", vm)
	}
	if _, err := n.VirtualMachine(ctx, 100); err == nil {
		t.Error("VirtualMachine(100) on pve2 succeeded, want the 500 of a guest on another node")
	}
	// go-proxmox v0.8.2 decodes running/has-dbus-vmstate as JSON booleans (from its hand-written pve9x mock);
	// real PVE sends 0/1 integers (testdata/pve/qemu_migrate_precondition.json), so this call fails against
	// real PVE as it does here. internal/pve decodes the precondition itself.
	if _, err := vm.MigratePreconditions(ctx, "pve3"); err == nil {
		t.Error("MigratePreconditions decoded PVE's 0/1 flags; go-proxmox was fixed, update internal/pve and this test")
	}

	task, err := vm.Migrate(ctx, &proxmox.VirtualMachineMigrateOptions{Target: "pve3", Online: true})
	if err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if task.Type != "qmigrate" || task.Node != "pve2" || task.ID != "203" {
		t.Errorf("task %+v", task)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				srv.Clock.Advance(time.Second)
			}
		}
	}()
	if err := task.Wait(ctx, 10*time.Millisecond, 10*time.Second); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if !task.IsCompleted || !task.IsSuccessful || task.ExitStatus != "OK" {
		t.Errorf("task after Wait: %+v", task)
	}
	log, err := task.Log(ctx, 0, 1000)
	if err != nil || len(log) < 10 || log[len(log)-1] != "TASK OK" {
		t.Errorf("task log (%d lines, %v)", len(log), err)
	}
	moved, err := c.Node(ctx, "pve3")
	if err != nil {
		t.Fatal(err)
	}
	if vm, err := moved.VirtualMachine(ctx, 203); err != nil || vm.Name != "monitoring" {
		t.Errorf("VM on target: %+v, %v", vm, err)
	}

	audit := proxmox.NewClient(srv.URL, proxmox.WithAPIToken(srv.AuditTokenID, srv.AuditTokenSecret), proxmox.WithHTTPClient(srv.Client))
	an, err := audit.Node(ctx, "pve3")
	if err != nil {
		t.Fatal(err)
	}
	avm, err := an.VirtualMachine(ctx, 203)
	if err != nil {
		t.Fatalf("audit VirtualMachine: %v", err)
	}
	if _, err := avm.Migrate(ctx, &proxmox.VirtualMachineMigrateOptions{Target: "pve2", Online: true}); !proxmox.IsNotAuthorized(err) {
		t.Errorf("audit Migrate: %v, want not authorized", err)
	}
}
