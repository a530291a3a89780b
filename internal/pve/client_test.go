package pve

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestDecodeClusterFixtures(t *testing.T) {
	f := newStandardFakePVE(t)
	c := f.client()
	ctx := testContext(t)

	res, err := c.ClusterResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Nodes) != 4 || len(res.Guests) != 4 || len(res.Storages) != 12 {
		t.Fatalf("resources: %d nodes, %d guests, %d storages; want 4, 4, 12", len(res.Nodes), len(res.Guests), len(res.Storages))
	}
	g := res.Guests[0]
	want := Guest{
		Type: TypeQEMU, VMID: 100, Name: "server1", Node: "node2", Status: "running", CPUs: 1,
		CPU: 0.0249060195469461, MemMax: 1073741824, MemUsed: 842551296, DiskMax: 34359738368,
		NetIn: 2456116121, NetOut: 545248946, DiskRead: 4510777856, DiskWrite: 6059209728,
		Uptime: 874350 * time.Second,
	}
	if !reflect.DeepEqual(g, want) {
		t.Errorf("qemu/100:\n got %+v\nwant %+v", g, want)
	}
	if !res.Guests[1].Template || !reflect.DeepEqual(res.Guests[2].Tags, []string{"go-proxmox+cloud-init"}) {
		t.Errorf("template or tags lost: %+v %+v", res.Guests[1], res.Guests[2])
	}
	if n := res.Nodes[0]; n.Name != "node1" || !n.Online || n.CPUs != 8 || n.MemTotal != 65919459328 {
		t.Errorf("node1 = %+v", n)
	}
	if s := res.Storages[0]; s.ID() != "storage/node1/cloud-init" || s.Type != "dir" || !s.Active ||
		!reflect.DeepEqual(s.Content, []string{"snippets"}) {
		t.Errorf("first storage = %+v", s)
	}

	cs, err := c.ClusterStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantCluster := Cluster{Name: "clustername", Quorate: true, NodeCount: 4, ConfigVersion: 4}
	if cs.Cluster != wantCluster || len(cs.Members) != 4 {
		t.Errorf("cluster status = %+v", cs)
	}
	if m := cs.Members[0]; m != (ClusterMember{Name: "node1", NodeID: 1, Online: true, Local: true, IP: "192.168.1.1"}) {
		t.Errorf("node1 member = %+v", m)
	}

	v, err := c.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if *v != (Version{Version: "9.2.11", Release: "9.2", RepoID: "f6997e698c7933ea"}) {
		t.Errorf("version = %+v", v)
	}

	ha, err := c.HAResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ha, []HAResource{{SID: "vm:100", Type: "vm", VMID: 100, State: "started"}}) {
		t.Errorf("HA resources = %+v", ha)
	}
	hs, err := c.HAStatusCurrent(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !hs.Quorate || hs.Master != "node2" || hs.Services["vm:100"] != (HAService{Node: "node2", CRMState: "started", State: "started"}) {
		t.Errorf("HA status = %+v", hs)
	}

	tasks, err := c.Tasks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != 4 {
		t.Fatalf("got %d tasks, want 4", len(tasks))
	}
	if !tasks[0].Running() || tasks[0].Type != "qmigrate" || tasks[0].ID != "100" || tasks[0].StartTime.Unix() != 1721873091 {
		t.Errorf("running task = %+v", tasks[0])
	}
	if tasks[2].User != "root@pam" || tasks[2].TokenID != "backup" || tasks[2].Status != "OK" || tasks[2].Running() {
		t.Errorf("token task = %+v", tasks[2])
	}
	if tasks[3].ID != "" || tasks[3].Status != "WARNINGS: 1" {
		t.Errorf("startall task = %+v", tasks[3])
	}

	nodes, err := c.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 4 || nodes[0].Name != "node1" || nodes[0].CPUs != 12 || !nodes[0].Online {
		t.Errorf("nodes = %+v", nodes)
	}

	nb, err := c.NotBackedUp(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(nb, []string{"qemu/102", "qemu/200"}) {
		t.Errorf("not backed up = %v", nb)
	}
}

func TestDecodeNodeFixtures(t *testing.T) {
	f := newStandardFakePVE(t)
	c := f.client()
	ctx := testContext(t)

	st, err := c.NodeStatus(ctx, "node1")
	if err != nil {
		t.Fatal(err)
	}
	if st.CPUMHz != 3400 || st.CPUs != 8 || st.CPUSockets != 1 || st.CPUCores != 4 || st.MemTotal != 65919459328 ||
		st.HasMemAvailable || st.PVEVersion != "pve-manager/7.4-16/0f39f621" || st.Uptime != 2501631*time.Second {
		t.Errorf("node status = %+v", st)
	}
	f.set("GET", "/nodes/node2/status", 200, `{"data":{"cpu":0.5,"wait":"0.01","loadavg":["1.50","0.75","0.25"],
		"memory":{"total":100,"used":"60","free":40,"available":55},"cpuinfo":{"mhz":"2999.998","cpus":"16"}}}`)
	st, err = c.NodeStatus(ctx, "node2")
	if err != nil {
		t.Fatal(err)
	}
	if st.LoadAvg != [3]float64{1.5, 0.75, 0.25} || st.IOWait != 0.01 || !st.HasMemAvailable || st.MemAvailable != 55 ||
		st.MemUsed != 60 || st.CPUs != 16 || st.CPUMHz != 2999.998 {
		t.Errorf("PVE 9 node status = %+v", st)
	}

	rrd, err := c.NodeRRD(ctx, "node1", "hour")
	if err != nil {
		t.Fatal(err)
	}
	if len(rrd) != 60 {
		t.Fatalf("got %d RRD rows, want 60", len(rrd))
	}
	if r := rrd[0]; r.MemUsed != 2113265664 || r.MemTotal != 65919459328 || r.IOWait != 0.0031 || r.LoadAvg != 0.42 ||
		r.PSI == nil || r.PSI.CPUSome != 0.0012 || r.PSI.IOFull != 0.0001 {
		t.Errorf("first RRD row = %+v PSI %+v", r, r.PSI)
	}

	storages, err := c.NodeStorage(ctx, "node1")
	if err != nil {
		t.Fatal(err)
	}
	if len(storages) != 4 {
		t.Fatalf("got %d storages, want 4", len(storages))
	}
	nfs := storages[3]
	if nfs.Storage != "nfs-iso" || !nfs.Shared || nfs.Enabled || nfs.Active || nfs.Total != 0 ||
		!reflect.DeepEqual(nfs.Content, []string{"iso", "vztmpl"}) {
		t.Errorf("disabled storage = %+v", nfs)
	}
	if l := storages[0]; l.Storage != "cloud-init" || l.Avail != 940569395200 || !l.Enabled || !l.Active {
		t.Errorf("first storage = %+v", l)
	}

	sub, err := c.Subscription(ctx, "node1")
	if err != nil {
		t.Fatal(err)
	}
	if sub.Status != "active" || sub.Level != "c" || sub.NextDueDate != time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC) {
		t.Errorf("subscription = %+v", sub)
	}
	jobs, err := c.Replication(ctx, "node2")
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 2 || jobs[1].FailCount != 2 || jobs[1].Error == "" || jobs[0].Duration != 3517*time.Millisecond ||
		jobs[0].Source != "node2" || jobs[0].Target != "node3" || jobs[0].LastSync.Unix() != 1721872800 ||
		jobs[1].LastTry.Unix() != 1721872400 || jobs[1].GuestType != TypeQEMU {
		t.Errorf("replication = %+v", jobs)
	}
}

func TestDecodeGuestFixtures(t *testing.T) {
	f := newStandardFakePVE(t)
	f.setFixture("GET", "/nodes/node1/qemu/101/status/current", "qemu_status_current.json")
	f.setFixture("GET", "/nodes/node1/qemu/102/status/current", "qemu_status_current_stopped.json")
	f.setFixture("GET", "/nodes/node1/lxc/101/status/current", "lxc_status_current.json")
	f.setFixture("GET", "/nodes/node1/lxc/105/status/current", "lxc_status_current_running.json")
	f.setFixture("GET", "/nodes/node1/lxc/101/config", "lxc_config.json")
	f.setFixture("GET", "/nodes/node1/lxc", "lxc_list.json")
	f.setFixture("GET", "/nodes/node1/qemu", "qemu_list.json")
	f.setFixture("GET", "/nodes/node1/qemu/101/rrddata", "qemu_rrddata.json")
	f.setFixture("GET", "/nodes/node2/qemu/100/rrddata", "qemu_rrddata_running.json")
	f.setFixture("GET", "/nodes/node2/qemu/100/migrate", "qemu_migrate_precondition.json")
	f.setFixture("GET", "/nodes/node1/lxc/105/migrate", "lxc_migrate_precondition.json")
	c := f.client()
	ctx := testContext(t)

	qs, err := c.GuestStatus(ctx, GuestRef{TypeQEMU, 101, "node1"})
	if err != nil {
		t.Fatal(err)
	}
	if qs.Status != "running" || qs.QMPStatus != "running" || qs.CPUs != 8 || qs.MemUsed != 1127792640 || qs.HasMemHost || qs.PSI != nil {
		t.Errorf("qemu status = %+v", qs)
	}
	qs, err = c.GuestStatus(ctx, GuestRef{TypeQEMU, 102, "node1"})
	if err != nil {
		t.Fatal(err)
	}
	if qs.Status != "stopped" || !qs.HasMemHost || qs.MemHost != 0 || !reflect.DeepEqual(qs.Tags, []string{"go-proxmox+cloud-init"}) {
		t.Errorf("stopped qemu status = %+v", qs)
	}
	ls, err := c.GuestStatus(ctx, GuestRef{TypeLXC, 105, "node1"})
	if err != nil {
		t.Fatal(err)
	}
	if ls.PSI == nil || *ls.PSI != (Pressure{IOSome: 0.0012, IOFull: 0.001}) || ls.Status != "running" {
		t.Errorf("running CT status = %+v PSI %+v", ls, ls.PSI)
	}
	ls, err = c.GuestStatus(ctx, GuestRef{TypeLXC, 101, "node1"})
	if err != nil {
		t.Fatal(err)
	}
	if ls.PSI != nil || ls.Status != "stopped" || !reflect.DeepEqual(ls.Tags, []string{"tag1", "tag2"}) {
		t.Errorf("stopped CT status = %+v", ls)
	}

	lc, err := c.GuestConfig(ctx, GuestRef{TypeLXC, 101, "node1"})
	if err != nil {
		t.Fatal(err)
	}
	if lc.Memory != 4096<<20 || lc.VCPUs != 2 || !lc.OnBoot || len(lc.Disks) != 1 || lc.Disks[0].Storage != "vmstore" ||
		len(lc.MountPoints) != 1 || !lc.MountPoints[0].Bind || len(lc.LocalDevices) != 5 {
		t.Errorf("lxc config = %+v", lc)
	}
	qc, err := c.GuestConfig(ctx, GuestRef{TypeQEMU, 100, "node2"})
	if err != nil {
		t.Fatal(err)
	}
	if q := f.lastQuery("GET /nodes/node2/qemu/100/config"); q != "current=1" {
		t.Errorf("config query %q, want current=1 (running values, not pending ones)", q)
	}
	if qc.Memory != 2048<<20 || qc.VCPUs != 2 || qc.Digest != "1c2f7d0e4b6a8c9d0e1f2a3b4c5d6e7f8091a2b3" || len(qc.Disks) != 2 {
		t.Errorf("qemu config = %+v", qc)
	}

	cts, err := c.NodeGuests(ctx, "node1", TypeLXC)
	if err != nil {
		t.Fatal(err)
	}
	if len(cts) != 3 || cts[0].VMID != 101 || !cts[0].Template || cts[2].VMID != 106 || cts[2].CPUs != 1 || cts[2].Node != "node1" {
		t.Errorf("PVE 7.4 LXC list (vmid as string) = %+v", cts)
	}
	vms, err := c.NodeGuests(ctx, "node1", TypeQEMU)
	if err != nil {
		t.Fatal(err)
	}
	if len(vms) != 2 || vms[0].CPUs != 1 || !vms[0].HasMemHost || vms[0].Type != TypeQEMU {
		t.Errorf("qemu list = %+v", vms)
	}

	rows, err := c.GuestRRD(ctx, GuestRef{TypeQEMU, 101, "node1"}, "hour")
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 70 || rows[0].MaxMem != 16777216000 || rows[0].CPU != 0 || rows[0].PSI != nil {
		t.Errorf("stopped VM RRD: %d rows, first %+v", len(rows), rows[0])
	}
	rows, err = c.GuestRRD(ctx, GuestRef{TypeQEMU, 100, "node2"}, "hour")
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) == 0 || rows[0].PSI == nil || rows[0].PSI.CPUSome != 0.0005 || rows[0].MemHost != 901234688 {
		t.Errorf("running VM RRD first row = %+v", rows[0])
	}

	qp, err := c.MigratePrecondition(ctx, GuestRef{TypeQEMU, 100, "node2"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if !qp.Running || !reflect.DeepEqual(qp.AllowedNodes, []string{"node1", "node3", "node4"}) || len(qp.NotAllowed) != 0 ||
		len(qp.LocalDisks) != 1 || qp.LocalDisks[0] != (LocalDiskInfo{VolID: "local-zfs:vm-100-disk-0", DriveName: "scsi0", Size: 34359738368, Replicate: true}) {
		t.Errorf("qemu precondition = %+v", qp)
	}
	lp, err := c.MigratePrecondition(ctx, GuestRef{TypeLXC, 105, "node1"}, "node2")
	if err != nil {
		t.Fatal(err)
	}
	if q := f.lastQuery("GET /nodes/node1/lxc/105/migrate"); q != "target=node2" {
		t.Errorf("precondition query %q", q)
	}
	if !lp.Running || !reflect.DeepEqual(lp.AllowedNodes, []string{"node2", "node3", "node4"}) {
		t.Errorf("lxc precondition (PVE 9 hyphen keys) = %+v", lp)
	}
}

func TestPreconditionBlockers(t *testing.T) {
	f := newFakePVE(t)
	f.set("GET", "/nodes/node1/qemu/300/migrate", 200, `{"data":{"running":0,"allowed_nodes":["node3"],
		"not_allowed_nodes":{"node2":{"unavailable_storages":["local-lvm"]},"node3":{},
		"node4":{"blocking-ha-resources":[{"sid":"vm:301","cause":"resource-affinity"}],"unavailable-resources":["hostpci0"]}},
		"local_resources":["hostpci0"],"mapped-resources":["usb0"],"local_disks":[]}}`)
	p, err := f.client().MigratePrecondition(testContext(t), GuestRef{TypeQEMU, 300, "node1"}, "")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]MigrateBlockers{
		"node2": {UnavailableStorages: []string{"local-lvm"}},
		"node4": {UnavailableResources: []string{"hostpci0"}, BlockingHAResources: []string{"vm:301"}},
	}
	if p.Running || !reflect.DeepEqual(p.NotAllowed, want) || !reflect.DeepEqual(p.LocalResources, []string{"hostpci0"}) ||
		!reflect.DeepEqual(p.MappedResources, []string{"usb0"}) {
		t.Errorf("precondition = %+v", p)
	}
}

func TestAPIErrors(t *testing.T) {
	var fixtures map[string]struct {
		Status int             `json:"status"`
		Body   json.RawMessage `json:"body"`
	}
	if err := json.Unmarshal(loadFixture(t, "errors.json").Body, &fixtures); err != nil {
		t.Fatal(err)
	}
	fromFixture := func(name string) string { return string(fixtures[name].Body) }
	tests := []struct {
		name   string
		status int
		reason string
		body   string
		check  func(error) bool
		msg    string
		params map[string]string
	}{
		{name: "400 parameter", status: 400, body: fromFixture("migrate_to_own_node_400"),
			msg: "Parameter verification failed.", params: map[string]string{"target": "target is local node."}},
		{name: "403", status: 403, body: `{"data":null,"message":"Permission check failed (/vms/100, VM.Audit)\n"}`,
			check: IsForbidden, msg: "Permission check failed (/vms/100, VM.Audit)"},
		{name: "404", status: 404, body: `{"data":null,"message":"no such resource\n"}`, check: IsNotFound, msg: "no such resource"},
		{name: "500 missing vmid", status: 500, body: fromFixture("nonexistent_vmid_500"),
			check: IsNotFound, msg: "Configuration file 'nodes/node1/qemu-server/999999.conf' does not exist"},
		{name: "501", status: 501, body: fromFixture("unknown_path_501"),
			check: IsNotImplemented, msg: "Method 'GET /nodes/node1/no-such-endpoint' not implemented"},
		{name: "503", status: 503, body: `{"data":null,"message":"service unavailable"}`, check: IsUnavailable, msg: "service unavailable"},
		{name: "595 node offline", status: 595, body: ``, check: IsUnavailable, msg: "Service Unavailable"},
		{name: "596 empty json", status: 596, body: `{"data":null}`, check: IsUnavailable, msg: "Service Unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakePVE(t)
			f.set("GET", "/nodes/node1/qemu/999999/config", tt.status, tt.body)
			c := f.client()
			_, err := c.GuestConfig(testContext(t), GuestRef{TypeQEMU, 999999, "node1"})
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("got %T %v, want *APIError", err, err)
			}
			if ae.StatusCode != tt.status || ae.Method != "GET" || ae.Path != "/nodes/node1/qemu/999999/config" {
				t.Errorf("got %+v", ae)
			}
			// PVE's 595/596 have no standard reason phrase; Go's test server writes none.
			if tt.status < 590 && ae.Message != tt.msg {
				t.Errorf("message %q, want %q", ae.Message, tt.msg)
			}
			if !reflect.DeepEqual(ae.Errors, tt.params) {
				t.Errorf("errors %v, want %v", ae.Errors, tt.params)
			}
			if tt.check != nil && !tt.check(err) {
				t.Errorf("classifier false for %v", err)
			}
			if IsUnauthorized(err) {
				t.Errorf("IsUnauthorized true for %v", err)
			}
		})
	}
}

func TestUnauthorized(t *testing.T) {
	f := newStandardFakePVE(t)
	cfg := f.config()
	cfg.TokenSecret = "wrong"
	c := f.clientWith(cfg)
	_, err := c.ClusterResources(testContext(t))
	if !IsUnauthorized(err) {
		t.Fatalf("got %v, want 401", err)
	}
	if strings.Contains(err.Error(), "wrong") {
		t.Errorf("error leaks the secret: %v", err)
	}
	if n := f.count("GET /cluster/resources"); n != 1 {
		t.Errorf("401 was tried %d times, want 1 (never retried)", n)
	}
}

func TestRetries(t *testing.T) {
	tests := []struct {
		name    string
		method  string
		status  int
		retries int
		want    int
	}{
		{"GET 503 retried", "GET", 503, 2, 3},
		{"GET 595 retried", "GET", 595, 1, 2},
		{"GET 500 not retried", "GET", 500, 2, 1},
		{"GET 403 not retried", "GET", 403, 2, 1},
		{"GET no retries configured", "GET", 503, -1, 1},
		{"POST 503 never retried", "POST", 503, 3, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakePVE(t)
			f.set(tt.method, "/nodes/node1/qemu/100/migrate", tt.status, `{"data":null,"message":"nope"}`)
			cfg := f.config()
			cfg.Retries = tt.retries
			var mu sync.Mutex
			var observed []int
			c := f.clientWith(cfg, WithObserver(ObserverFunc(func(method, endpoint string, status int, _ time.Duration, err error) {
				mu.Lock()
				defer mu.Unlock()
				if endpoint != "/nodes/{node}/qemu/{vmid}/migrate" || method != tt.method || err == nil {
					t.Errorf("observed %s %s %d %v", method, endpoint, status, err)
				}
				observed = append(observed, status)
			})))
			var err error
			if tt.method == "GET" {
				_, err = c.MigratePrecondition(testContext(t), GuestRef{TypeQEMU, 100, "node1"}, "")
			} else {
				_, err = c.Migrate(testContext(t), GuestRef{TypeQEMU, 100, "node1"}, "node2", MigrateOptions{Online: true})
			}
			if !statusIs(err, tt.status) {
				t.Fatalf("got %v, want status %d", err, tt.status)
			}
			if n := f.count(tt.method + " /nodes/node1/qemu/100/migrate"); n != tt.want {
				t.Errorf("%d requests, want %d", n, tt.want)
			}
			if len(observed) != tt.want {
				t.Errorf("observer saw %d requests, want %d", len(observed), tt.want)
			}
			if got := c.APICalls()["/nodes/{node}/qemu/{vmid}/migrate"]; got != uint64(tt.want) {
				t.Errorf("APICalls = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestRetryThenSuccess(t *testing.T) {
	f := newStandardFakePVE(t)
	c := f.client()
	blocked := &flakyHandler{fake: f, failures: 1}
	f.setOverride(blocked)
	if _, err := c.Version(testContext(t)); err != nil {
		t.Fatalf("one 503 then success: %v", err)
	}
	if n := f.count("GET /version"); n != 1 || blocked.seen != 2 {
		t.Errorf("served %d, saw %d; want 1 and 2", n, blocked.seen)
	}
}

// flakyHandler answers the first failures requests with 503, then hands over to the fake.
type flakyHandler struct {
	fake     *fakePVE
	mu       sync.Mutex
	failures int
	seen     int
}

func (h *flakyHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.seen++
	fail := h.seen <= h.failures
	h.mu.Unlock()
	if fail {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	h.fake.serveRoute(w, r)
}

func TestMigrate(t *testing.T) {
	const upid = "UPID:node2:000A3F2C:0855D1B3:66A1B2C3:qmigrate:100:root@pam:"
	tests := []struct {
		name string
		ref  GuestRef
		opts MigrateOptions
		want string
	}{
		{"qemu online with local disks", GuestRef{TypeQEMU, 100, "node2"}, MigrateOptions{Online: true, WithLocalDisks: true},
			`{"target":"node3","online":1,"with-local-disks":1}`},
		{"qemu offline", GuestRef{TypeQEMU, 100, "node2"}, MigrateOptions{}, `{"target":"node3"}`},
		{"lxc restart", GuestRef{TypeLXC, 105, "node2"}, MigrateOptions{Restart: true, Timeout: 2 * time.Minute, BandwidthLimitKiB: 51200},
			`{"target":"node3","bwlimit":51200,"restart":1,"timeout":120}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakePVE(t)
			path := fmt.Sprintf("/nodes/node2/%s/%d/migrate", tt.ref.Type, tt.ref.VMID)
			f.set("POST", path, 200, `{"data":"`+upid+`"}`)
			got, err := f.client().Migrate(testContext(t), tt.ref, "node3", tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if got != upid {
				t.Errorf("UPID %q", got)
			}
			if body := f.lastBody("POST " + path); body != tt.want {
				t.Errorf("body %s, want %s", body, tt.want)
			}
		})
	}

	f := newFakePVE(t)
	f.set("POST", "/nodes/node2/qemu/100/migrate", 400, `{"data":null,"message":"Parameter verification failed.\n","errors":{"target":"target is local node."}}`)
	_, err := f.client().Migrate(testContext(t), GuestRef{TypeQEMU, 100, "node2"}, "node2", MigrateOptions{})
	var ae *APIError
	if !errors.As(err, &ae) || ae.Errors["target"] != "target is local node." {
		t.Errorf("migrate to own node: %v", err)
	}
	if _, err := f.client().Migrate(testContext(t), GuestRef{"vm", 100, "node2"}, "node3", MigrateOptions{}); err == nil {
		t.Error("unknown guest type accepted")
	}
}

func TestEndpointTemplate(t *testing.T) {
	tests := map[string]string{
		"/cluster/resources":                          "/cluster/resources",
		"/nodes/pve1/status":                          "/nodes/{node}/status",
		"/nodes/pve1/qemu/100/config":                 "/nodes/{node}/qemu/{vmid}/config",
		"/nodes/pve-2/lxc/101/status/current":         "/nodes/{node}/lxc/{vmid}/status/current",
		"/nodes/pve1/tasks/UPID:pve1:0:0:0:x::u:/log": "/nodes/{node}/tasks/{upid}/log",
		"/nodes/pve1/storage/local/content":           "/nodes/{node}/storage/{storage}/content",
		"/nodes/pve1/rrddata?timeframe=hour":          "/nodes/{node}/rrddata",
		"/cluster/ha/resources/vm:100":                "/cluster/ha/resources/{sid}",
		"/nodes":                                      "/nodes",
	}
	for in, want := range tests {
		if got := EndpointTemplate(in); got != want {
			t.Errorf("EndpointTemplate(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRetryDelay(t *testing.T) {
	tr := &transport{backoff: 100 * time.Millisecond, maxBackoff: time.Second}
	tests := []struct {
		attempt  int
		min, max time.Duration
	}{
		{1, 50 * time.Millisecond, 100 * time.Millisecond},
		{2, 100 * time.Millisecond, 200 * time.Millisecond},
		{4, 400 * time.Millisecond, 800 * time.Millisecond},
		{5, 500 * time.Millisecond, time.Second},  // capped
		{70, 500 * time.Millisecond, time.Second}, // shift overflow
	}
	for _, tt := range tests {
		for i := 0; i < 50; i++ {
			if d := tr.delay(tt.attempt); d < tt.min || d >= tt.max {
				t.Fatalf("delay(%d) = %s, want [%s, %s)", tt.attempt, d, tt.min, tt.max)
			}
		}
	}
}

// TestQDevice reads /cluster/config/qdevice as PVE answers it (pve-cluster src/PVE/API2/ClusterConfig.pm): the
// kept "status verbose" keys when a QDevice is configured, {} when there is none (and on a standalone node),
// and an *APIError for a non-2xx answer, which the Snapshotter records in Inventory.Partial.
func TestQDevice(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		body    string
		want    *QDevice
		wantErr func(error) bool
	}{
		{name: "connected", status: 200, body: qdeviceBody, want: &QDevice{
			Model: "Net", Algorithm: "Fifty-Fifty split", QNetdHost: "10.0.0.9:5403",
			TieBreaker: "Node with lowest node ID", State: "Connected",
		}},
		{name: "connect failed, keys missing", status: 200,
			body: `{"data":{"Model":"Net","State":"Connect failed","Echo reply":"Disabled"}}`,
			want: &QDevice{Model: "Net", State: "Connect failed"}},
		{name: "only keys the exporter does not use", status: 200, body: `{"data":{"Echo reply":"Enabled"}}`, want: &QDevice{}},
		{name: "none configured", status: 200, body: `{"data":{}}`},
		{name: "null data", status: 200, body: `{"data":null}`},
		{name: "forbidden", status: 403, body: `{"data":null,"message":"Permission check failed (/, Sys.Audit)\n"}`, wantErr: IsForbidden},
		{name: "not implemented", status: 501, body: `{"data":null,"message":"Method 'GET /cluster/config/qdevice' not implemented\n"}`, wantErr: IsNotImplemented},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakePVE(t)
			f.set("GET", "/cluster/config/qdevice", tt.status, tt.body)
			got, err := f.client().QDevice(testContext(t))
			if tt.wantErr != nil {
				if got != nil || !tt.wantErr(err) {
					t.Fatalf("got %+v, %v; want a classified error", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if got != nil && got.Connected() != (got.State == "Connected") {
				t.Errorf("Connected() = %t for state %q", got.Connected(), got.State)
			}
		})
	}
}
