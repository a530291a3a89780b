package pvesim_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/proxbalance/proxbalance/internal/pvesim"
	"github.com/proxbalance/proxbalance/internal/pvesim/pvesimtest"
)

// TestConcurrentClients runs readers, migrations, fault changes and clock moves at once; under -race it
// proves the simulator's locking, and afterwards every migration has ended and the guests are consistent.
func TestConcurrentClients(t *testing.T) {
	srv := pvesimtest.Start(t)
	paths := []string{"/cluster/resources", "/cluster/tasks", "/nodes/pve1/status", "/nodes/pve2/qemu", "/nodes/pve5/lxc",
		"/nodes/pve1/rrddata?timeframe=hour", "/cluster/ha/status/current", "/nodes/pve3/storage"}
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Go(func() {
			for j := range 30 {
				srv.Do(t, http.MethodGet, paths[(i+j)%len(paths)], "")
			}
		})
	}
	vmids := []int{203, 204, 209}
	for _, vmid := range vmids {
		wg.Go(func() {
			status, body := srv.Do(t, http.MethodPost, fmt.Sprintf("/nodes/pve2/qemu/%d/migrate", vmid), "target=pve3&online=1")
			if status != 200 {
				t.Errorf("migrate %d: %d %s", vmid, status, body)
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			srv.Clock.Advance(5 * time.Second)
			_ = srv.Sim.SetFaults(pvesim.Faults{Latency: pvesim.Duration(time.Millisecond)})
			_ = srv.Sim.State()
		}
	})
	wg.Wait()
	srv.Clock.Advance(time.Hour)
	st := srv.Sim.State()
	for _, task := range st.Tasks {
		if task.Status != "stopped" || task.Exit != "OK" {
			t.Errorf("task %+v", task)
		}
	}
	for _, g := range st.Guests {
		for _, vmid := range vmids {
			if g.VMID == vmid && (g.Node != "pve3" || g.Lock != "") {
				t.Errorf("guest %d on %s lock %q", vmid, g.Node, g.Lock)
			}
		}
	}
}
