package pvesim_test

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/proxbalance/proxbalance/internal/pvesim"
	"github.com/proxbalance/proxbalance/internal/pvesim/pvesimtest"
)

type taskStatus struct {
	Status     string `json:"status"`
	ExitStatus string `json:"exitstatus"`
}

func getJSON(t *testing.T, srv *pvesimtest.Server, path string, v any) int {
	t.Helper()
	status, body := srv.Do(t, http.MethodGet, path, "")
	if status == http.StatusOK {
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	return status
}

func taskOf(t *testing.T, srv *pvesimtest.Server, upid string) (taskStatus, []string) {
	t.Helper()
	node := strings.Split(upid, ":")[1]
	var st struct{ Data taskStatus }
	if status := getJSON(t, srv, "/nodes/"+node+"/tasks/"+upid+"/status", &st); status != 200 {
		t.Fatalf("task status: %d", status)
	}
	var log struct {
		Data []struct {
			N int    `json:"n"`
			T string `json:"t"`
		}
		Total int
	}
	getJSON(t, srv, "/nodes/"+node+"/tasks/"+upid+"/log?start=0&limit=10000", &log)
	lines := make([]string, len(log.Data))
	for i, l := range log.Data {
		if l.N != i+1 {
			t.Fatalf("log line %d numbered %d", i+1, l.N)
		}
		lines[i] = l.T
	}
	if log.Total != len(lines) {
		t.Fatalf("log total %d, %d lines", log.Total, len(lines))
	}
	return st.Data, lines
}

func nodeMem(t *testing.T, srv *pvesimtest.Server, node string) float64 {
	t.Helper()
	var st struct {
		Data struct {
			Memory struct{ Used float64 }
		}
	}
	getJSON(t, srv, "/nodes/"+node+"/status", &st)
	return st.Data.Memory.Used
}

var transferredRE = regexp.MustCompile(`migration active, transferred ([0-9.]+) (MiB|GiB) of ([0-9.]+ GiB) VM-state, [0-9.]+ (MiB|GiB)/s$`)

func TestLiveMigration(t *testing.T) {
	srv := pvesimtest.Start(t)
	const vmid = 203 // monitoring: 16 GiB on pve2, disk on shared ceph-rbd
	memBefore := map[string]float64{"pve2": nodeMem(t, srv, "pve2"), "pve3": nodeMem(t, srv, "pve3")}
	upid := startMigration(t, srv, "pve2", "qemu", vmid, "target=pve3&online=1")
	if !strings.Contains(upid, ":qmigrate:203:root@pam!proxbalance:") || !strings.HasPrefix(upid, "UPID:pve2:") {
		t.Fatalf("UPID %q", upid)
	}

	// Locked while it runs, in config and resources; listed in /cluster/tasks without status.
	var cfg struct{ Data map[string]any }
	getJSON(t, srv, "/nodes/pve2/qemu/203/config", &cfg)
	if cfg.Data["lock"] != "migrate" {
		t.Errorf("config lock = %v, want migrate", cfg.Data["lock"])
	}
	_, body := srv.Do(t, http.MethodGet, "/cluster/resources?type=vm", "")
	if !strings.Contains(string(body), `"vmid":203,"name":"monitoring","node":"pve2"`) || !strings.Contains(string(body), `"lock":"migrate"`) {
		t.Errorf("resources do not show 203 locked on pve2")
	}
	var tasks struct{ Data []map[string]any }
	getJSON(t, srv, "/cluster/tasks", &tasks)
	if e := tasks.Data[0]; e["upid"] != upid || e["status"] != nil || e["endtime"] != nil {
		t.Errorf("running task entry %v", e)
	}

	// Progress: the transferred amount grows while the clock moves.
	var last float64
	progress, seen := 0, 0
	for range 20 {
		srv.Clock.Advance(time.Second)
		st, lines := taskOf(t, srv, upid)
		if st.Status == "stopped" {
			break
		}
		if len(lines) < seen {
			t.Fatalf("log shrank from %d to %d lines", seen, len(lines))
		}
		fresh := lines[seen:]
		seen = len(lines)
		for _, l := range fresh {
			if m := transferredRE.FindStringSubmatch(l); m != nil {
				v, _ := strconv.ParseFloat(m[1], 64)
				if m[2] == "GiB" {
					v *= 1024
				}
				if v < last {
					t.Errorf("transferred went back from %.1f to %.1f MiB", last, v)
				}
				last = v
				progress++
			}
		}
	}
	if progress == 0 {
		t.Fatal("no migration progress lines seen")
	}

	srv.Clock.Advance(time.Minute)
	st, lines := taskOf(t, srv, upid)
	if st.Status != "stopped" || st.ExitStatus != "OK" {
		t.Fatalf("task %+v, want stopped/OK", st)
	}
	if lines[len(lines)-1] != "TASK OK" || !strings.Contains(lines[len(lines)-2], "migration finished successfully") {
		t.Errorf("log ends %q", lines[len(lines)-2:])
	}
	if node, lock, _ := srv.Sim.GuestNode(vmid); node != "pve3" || lock != "" {
		t.Errorf("guest on %s lock %q, want pve3 unlocked", node, lock)
	}
	if status, _ := srv.Do(t, http.MethodGet, "/nodes/pve3/qemu/203/config", ""); status != 200 {
		t.Errorf("config on target: %d", status)
	}
	if status, _ := srv.Do(t, http.MethodGet, "/nodes/pve2/qemu/203/config", ""); status != 500 {
		t.Errorf("config on source: %d, want 500", status)
	}
	// The guest's memory moved with it (other guests' workloads wobble a little, hence the margin).
	if d := nodeMem(t, srv, "pve3") - memBefore["pve3"]; d < 6*float64(pvesim.GiB) {
		t.Errorf("pve3 memory grew by %.1f GiB, want the guest's ~9 GiB", d/float64(pvesim.GiB))
	}
	if d := memBefore["pve2"] - nodeMem(t, srv, "pve2"); d < 6*float64(pvesim.GiB) {
		t.Errorf("pve2 memory shrank by %.1f GiB, want the guest's ~9 GiB", d/float64(pvesim.GiB))
	}
	getJSON(t, srv, "/cluster/tasks", &tasks)
	if e := tasks.Data[0]; e["upid"] != upid || e["status"] != "OK" || e["endtime"] == nil {
		t.Errorf("finished task entry %v", e)
	}
}

func TestMigrationKinds(t *testing.T) {
	tests := []struct {
		name       string
		node, typ  string
		vmid       int
		form       string
		target     string
		wantInLog  []string
		wantStatus string // guest status afterwards
	}{
		{"live with local disks", "pve2", "qemu", 205, "target=pve3&online=1&with-local-disks=1", "pve3",
			[]string{"found local disk 'local-zfs:vm-205-disk-0' (attached)", "drive-scsi0: transferred", "(100.00%)", "all 'mirror' jobs are ready"}, "running"},
		{"offline VM", "pve3", "qemu", 302, "target=pve2", "pve2", []string{"starting migration of VM 302 to node 'pve2'"}, "stopped"},
		{"CT restart mode", "pve2", "lxc", 207, "target=pve3&restart=1", "pve3", []string{"shutdown CT 207", "start container on target node"}, "running"},
		{"CT with local volume", "pve5", "lxc", 500, "target=pve4&restart=1", "pve4", []string{"found local volume 'local-zfs:subvol-500-disk-0'"}, "running"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := pvesimtest.Start(t)
			upid := startMigration(t, srv, tc.node, tc.typ, tc.vmid, tc.form)
			srv.Clock.Advance(time.Second)
			if tc.typ == "lxc" {
				var st struct{ Data map[string]any }
				getJSON(t, srv, "/nodes/"+tc.node+"/lxc/"+strconv.Itoa(tc.vmid)+"/status/current", &st)
				if st.Data["status"] != "stopped" || st.Data["lock"] != "migrate" {
					t.Errorf("CT during restart migration: status %v lock %v", st.Data["status"], st.Data["lock"])
				}
			}
			srv.Clock.Advance(30 * time.Minute)
			st, lines := taskOf(t, srv, upid)
			if st.ExitStatus != "OK" {
				t.Fatalf("exit %q: %s", st.ExitStatus, strings.Join(lines, "\n"))
			}
			log := strings.Join(lines, "\n")
			for _, w := range tc.wantInLog {
				if !strings.Contains(log, w) {
					t.Errorf("log lacks %q:\n%s", w, log)
				}
			}
			var cur struct{ Data map[string]any }
			if status := getJSON(t, srv, "/nodes/"+tc.target+"/"+tc.typ+"/"+strconv.Itoa(tc.vmid)+"/status/current", &cur); status != 200 {
				t.Fatalf("guest not on target: %d", status)
			}
			if cur.Data["status"] != tc.wantStatus {
				t.Errorf("status on target %v, want %s", cur.Data["status"], tc.wantStatus)
			}
			if tc.wantStatus == "running" && cur.Data["uptime"].(float64) > 30*60 {
				t.Errorf("uptime %v did not restart with the new process", cur.Data["uptime"])
			}
		})
	}
}

func TestMigrationFailures(t *testing.T) {
	tests := []struct {
		name      string
		setup     func(t *testing.T, srv *pvesimtest.Server)
		node, typ string
		vmid      int
		form      string
		// Synchronous refusal: status and message.
		status int
		msg    string
		// Or a task that fails: a log line and the exit status.
		logLine string
		exit    string
	}{
		{name: "target is source", node: "pve1", typ: "qemu", vmid: 100, form: "target=pve1&online=1", status: 400, msg: "Parameter verification failed.\n"},
		{name: "running VM without online", node: "pve1", typ: "qemu", vmid: 100, form: "target=pve2", status: 500, msg: "can't migrate running VM without --online\n"},
		{name: "running CT without restart", node: "pve2", typ: "lxc", vmid: 207, form: "target=pve3", status: 500, msg: "running container can only be migrated in restart mode\n"},
		{name: "CT online", node: "pve2", typ: "lxc", vmid: 207, form: "target=pve3&online=1", status: 500, msg: "lxc live migration is currently not implemented\n"},
		{name: "local disks without with-local-disks", node: "pve2", typ: "qemu", vmid: 205, form: "target=pve3&online=1", status: 500, msg: "can't live migrate attached local disks without with-local-disks option\n"},
		{name: "nonexistent guest", node: "pve1", typ: "qemu", vmid: 999, form: "target=pve2&online=1", status: 500, msg: "Configuration file 'nodes/pve1/qemu-server/999.conf' does not exist\n"},
		{name: "unknown target", node: "pve1", typ: "qemu", vmid: 100, form: "target=pve9&online=1", status: 500, msg: "no such cluster node 'pve9'\n"},
		{name: "locked guest", node: "pve2", typ: "qemu", vmid: 203, form: "target=pve3&online=1", status: 500, msg: "VM is locked (migrate)\n",
			setup: func(t *testing.T, srv *pvesimtest.Server) {
				startMigration(t, srv, "pve2", "qemu", 203, "target=pve1&online=1")
			}},
		{name: "no quorum", node: "pve2", typ: "qemu", vmid: 203, form: "target=pve3&online=1", status: 500, msg: "cluster not ready - no quorum?\n",
			setup: func(t *testing.T, srv *pvesimtest.Server) { mustFaults(t, srv, pvesim.Faults{NoQuorum: true}) }},
		{name: "target lacks storage", node: "pve1", typ: "qemu", vmid: 100, form: "target=pve4&online=1",
			logLine: "storage 'ceph-rbd' is not available on node 'pve4'", exit: "migration aborted"},
		{name: "PCI passthrough", node: "pve1", typ: "qemu", vmid: 110, form: "target=pve2&online=1&with-local-disks=1",
			logLine: "can't migrate VM which uses local devices: hostpci0", exit: "migration aborted"},
		{name: "unshared bind mount", node: "pve3", typ: "lxc", vmid: 300, form: "target=pve2&restart=1",
			logLine: "cannot migrate local bind mount point 'mp0'", exit: "migration aborted"},
		{name: "target offline", node: "pve2", typ: "qemu", vmid: 203, form: "target=pve5&online=1",
			setup: func(t *testing.T, srv *pvesimtest.Server) {
				mustFaults(t, srv, pvesim.Faults{OfflineNodes: []string{"pve5"}})
			},
			logLine: "No route to host", exit: "migration aborted"},
		{name: "injected failure mid-way", node: "pve2", typ: "qemu", vmid: 203, form: "target=pve3&online=1",
			setup: func(t *testing.T, srv *pvesimtest.Server) {
				mustFaults(t, srv, pvesim.Faults{FailMigrations: []pvesim.MigrationFault{{VMID: 203}}})
			},
			logLine: "ERROR: online migrate failure - aborting", exit: "migration aborted"},
		{name: "injected failure, any guest, offline copy", node: "pve3", typ: "qemu", vmid: 302, form: "target=pve2",
			setup: func(t *testing.T, srv *pvesimtest.Server) {
				mustFaults(t, srv, pvesim.Faults{FailMigrations: []pvesim.MigrationFault{{}}})
			},
			logLine: "ERROR: migration aborted", exit: "migration aborted"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := pvesimtest.Start(t)
			if tc.setup != nil {
				tc.setup(t, srv)
			}
			path := "/nodes/" + tc.node + "/" + tc.typ + "/" + strconv.Itoa(tc.vmid) + "/migrate"
			status, body := srv.Do(t, http.MethodPost, path, tc.form)
			if tc.status != 0 {
				if status != tc.status {
					t.Fatalf("status %d, want %d: %s", status, tc.status, body)
				}
				if m, _ := decode(t, body).(map[string]any)["message"].(string); m != tc.msg {
					t.Errorf("message %q, want %q", m, tc.msg)
				}
				return
			}
			if status != 200 {
				t.Fatalf("status %d: %s", status, body)
			}
			var resp struct{ Data string }
			if err := json.Unmarshal(body, &resp); err != nil {
				t.Fatal(err)
			}
			srv.Clock.Advance(time.Hour)
			st, lines := taskOf(t, srv, resp.Data)
			log := strings.Join(lines, "\n")
			if st.Status != "stopped" || st.ExitStatus != tc.exit {
				t.Errorf("task %+v, want exit %q", st, tc.exit)
			}
			if !strings.Contains(log, tc.logLine) || lines[len(lines)-1] != "TASK ERROR: "+tc.exit {
				t.Errorf("log lacks %q or TASK ERROR:\n%s", tc.logLine, log)
			}
			node, lock, _ := srv.Sim.GuestNode(tc.vmid)
			if node != tc.node || lock != "" {
				t.Errorf("after a failed migration the guest is on %s (lock %q), want %s unlocked", node, lock, tc.node)
			}
			var cur struct{ Data map[string]any }
			getJSON(t, srv, "/nodes/"+tc.node+"/"+tc.typ+"/"+strconv.Itoa(tc.vmid)+"/status/current", &cur)
			if tc.vmid != 302 && cur.Data["status"] != "running" {
				t.Errorf("guest status %v after failed migration, want running", cur.Data["status"])
			}
		})
	}
}

func mustFaults(t *testing.T, srv *pvesimtest.Server, f pvesim.Faults) {
	t.Helper()
	if err := srv.Sim.SetFaults(f); err != nil {
		t.Fatal(err)
	}
}

func TestMigratePrecondition(t *testing.T) {
	srv := pvesimtest.Start(t)
	var pre struct {
		Data struct {
			Running        int                       `json:"running"`
			AllowedNodes   []string                  `json:"allowed_nodes"`
			NotAllowed     map[string]map[string]any `json:"not_allowed_nodes"`
			LocalDisks     []map[string]any          `json:"local_disks"`
			LocalResources []string                  `json:"local_resources"`
		}
	}
	getJSON(t, srv, "/nodes/pve1/qemu/110/migrate", &pre)
	if pre.Data.Running != 1 || len(pre.Data.LocalResources) != 1 || pre.Data.LocalResources[0] != "hostpci0" {
		t.Errorf("gpu-worker precondition %+v", pre.Data)
	}
	if len(pre.Data.LocalDisks) != 1 || pre.Data.LocalDisks[0]["volid"] != "local-zfs:vm-110-disk-0" {
		t.Errorf("local disks %v", pre.Data.LocalDisks)
	}
	getJSON(t, srv, "/nodes/pve1/qemu/100/migrate", &pre)
	if strings.Join(pre.Data.AllowedNodes, ",") != "pve2,pve3,pve5" || pre.Data.NotAllowed["pve4"]["unavailable_storages"] == nil {
		t.Errorf("db-primary precondition %+v", pre.Data)
	}
	var lxc struct{ Data map[string]any }
	getJSON(t, srv, "/nodes/pve2/lxc/207/migrate", &lxc)
	if lxc.Data["allowed-nodes"] == nil || lxc.Data["not-allowed-nodes"].(map[string]any)["pve4"] == nil {
		t.Errorf("CT precondition %v", lxc.Data)
	}
}

// TestHAMigration follows PVE's two steps for an HA-managed guest: the API's hamigrate task only queues the
// request; the cluster resource manager then runs the real migration as root@pam.
func TestHAMigration(t *testing.T) {
	srv := pvesimtest.Start(t)
	status, body := srv.Do(t, http.MethodPost, "/nodes/pve1/qemu/106/migrate", "target=pve2&online=1")
	if status != 200 {
		t.Fatalf("migrate: %d %s", status, body)
	}
	var resp struct{ Data string }
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(resp.Data, ":hamigrate:106:root@pam!proxbalance:") {
		t.Fatalf("UPID %q is not an hamigrate task", resp.Data)
	}
	srv.Clock.Advance(2 * time.Second)
	st, lines := taskOf(t, srv, resp.Data)
	if st.ExitStatus != "OK" || lines[0] != "Requesting HA migration for VM 106 to node pve2" {
		t.Fatalf("hamigrate %+v %q", st, lines)
	}
	if node, _, _ := srv.Sim.GuestNode(106); node != "pve1" {
		t.Fatalf("guest moved before the CRM acted")
	}
	srv.Clock.Advance(15 * time.Second)
	if _, body := srv.Do(t, http.MethodGet, "/cluster/resources?type=vm", ""); !strings.Contains(string(body), `"lock":"migrate","hastate":"migrate"`) {
		t.Errorf("HA guest not shown migrating in resources")
	}
	var tasks struct{ Data []map[string]any }
	getJSON(t, srv, "/cluster/tasks", &tasks)
	var crm string
	for _, e := range tasks.Data {
		if e["type"] == "qmigrate" && e["id"] == "106" {
			crm, _ = e["upid"].(string)
			if e["user"] != "root@pam" || e["tokenid"] != nil || e["status"] != nil {
				t.Errorf("CRM task entry %v", e)
			}
		}
	}
	if !strings.HasSuffix(crm, ":qmigrate:106:root@pam:") {
		t.Fatalf("no running qmigrate task by root@pam in %v", tasks.Data)
	}
	srv.Clock.Advance(time.Minute)
	if st, _ := taskOf(t, srv, crm); st.ExitStatus != "OK" {
		t.Errorf("CRM migration %+v", st)
	}
	if node, lock, _ := srv.Sim.GuestNode(106); node != "pve2" || lock != "" {
		t.Errorf("guest on %s lock %q after HA migration", node, lock)
	}
}

func TestStopMigrationTask(t *testing.T) {
	srv := pvesimtest.Start(t)
	upid := startMigration(t, srv, "pve2", "qemu", 203, "target=pve3&online=1")
	srv.Clock.Advance(5 * time.Second)
	if status, body := srv.DoAuth(t, srv.AuditAuthHeader(), http.MethodDelete, "/nodes/pve2/tasks/"+upid, ""); status != 403 ||
		!strings.Contains(string(body), "Permission check failed (/nodes/pve2, Sys.Modify)") {
		t.Errorf("audit token stopped a task: %d %s", status, body)
	}
	if status, body := srv.Do(t, http.MethodDelete, "/nodes/pve2/tasks/"+upid, ""); status != 200 || string(body) != "{\"data\":null}\n" {
		t.Fatalf("DELETE task: %d %s", status, body)
	}
	st, lines := taskOf(t, srv, upid)
	if st.Status != "stopped" || st.ExitStatus != "migration aborted" || !strings.Contains(lines[len(lines)-2], "interrupted by signal") {
		t.Errorf("stopped task %+v, log ends %q", st, lines[len(lines)-2:])
	}
	srv.Clock.Advance(time.Hour)
	if node, lock, _ := srv.Sim.GuestNode(203); node != "pve2" || lock != "" {
		t.Errorf("guest on %s lock %q after a stopped migration", node, lock)
	}
}
