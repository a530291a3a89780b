package pve

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable time source.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTestSnapshotter(c *Client, cfg SnapshotterConfig) (*Snapshotter, *fakeClock) {
	clock := &fakeClock{t: time.Date(2026, 11, 27, 4, 0, 0, 0, time.UTC)}
	s := NewSnapshotter(c, cfg)
	s.now = clock.Now
	return s, clock
}

// resourcesWith returns the cluster_resources fixture with textual replacements (old, new, old, new, ...).
func resourcesWith(t testing.TB, replacements ...string) string {
	body := string(loadFixture(t, "cluster_resources.json").Body)
	for i := 0; i+1 < len(replacements); i += 2 {
		if !strings.Contains(body, replacements[i]) {
			t.Fatalf("fixture has no %q", replacements[i])
		}
		body = strings.Replace(body, replacements[i], replacements[i+1], 1)
	}
	return body
}

func TestInventoryAssemblesEveryPart(t *testing.T) {
	f := newStandardFakePVE(t)
	inv, err := f.client().Inventory(testContext(t), InventoryOptions{Parts: AllParts})
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Partial) != 0 {
		t.Fatalf("partial: %v", inv.Partial)
	}
	wantCluster := Cluster{Name: "clustername", Quorate: true, NodeCount: 4, ConfigVersion: 4, PVEVersion: "9.2.11", Release: "9.2", RepoID: "f6997e698c7933ea"}
	if inv.Cluster != wantCluster {
		t.Errorf("cluster = %+v", inv.Cluster)
	}
	if len(inv.Nodes) != 4 {
		t.Fatalf("%d nodes", len(inv.Nodes))
	}
	n := inv.Nodes[0]
	if n.Name != "node1" || n.NodeID != 1 || !n.Local || n.IP != "192.168.1.1" || !n.StatusFetched || n.CPUMHz != 3400 ||
		n.CPUModel == "" || n.Subscription == nil || n.Subscription.Level != "c" || n.PSI == nil || n.PSI.CPUSome == 0 {
		t.Errorf("node1 = %+v", n)
	}
	if len(inv.Guests) != 4 {
		t.Fatalf("%d guests", len(inv.Guests))
	}
	for _, g := range inv.Guests {
		if g.Config == nil || g.Config.Memory != 2048<<20 {
			t.Errorf("%s config = %+v", g.ID(), g.Config)
		}
		if g.HAManaged != (g.VMID == 100) {
			t.Errorf("%s HAManaged = %v", g.ID(), g.HAManaged)
		}
		// Only the running qemu/100 has PSI, from node2's VM list (percent → ratio).
		if wantPSI := g.VMID == 100; (g.PSI != nil) != wantPSI || (wantPSI && g.PSI.CPUSome != 0.015) {
			t.Errorf("%s PSI = %+v", g.ID(), g.PSI)
		}
	}
	// 3 storages per node from /cluster/resources plus the disabled nfs-iso only /nodes/{node}/storage lists.
	if len(inv.Storages) != 16 {
		t.Errorf("%d storages, want 16", len(inv.Storages))
	}
	for _, s := range inv.Storages {
		if s.Storage == "nfs-iso" && (s.Enabled || s.Active) {
			t.Errorf("nfs-iso = %+v", s)
		}
		if s.Storage == "local-zfs" && s.Node == "node1" && (!s.Enabled || s.Avail != 940569473024) {
			t.Errorf("node1 local-zfs = %+v", s)
		}
	}
	wantHA := HAStatus{Quorate: true, Master: "node2", Resources: []HAResource{{SID: "vm:100", Type: "vm", VMID: 100, State: "started", CRMState: "started", Node: "node2"}}}
	if !reflect.DeepEqual(inv.HA, wantHA) {
		t.Errorf("HA = %+v", inv.HA)
	}
	if len(inv.Tasks) != 4 || len(inv.Replication) != 2 || !reflect.DeepEqual(inv.NotBackedUp, []string{"qemu/102", "qemu/200"}) {
		t.Errorf("tasks %d, replication %d, not backed up %v", len(inv.Tasks), len(inv.Replication), inv.NotBackedUp)
	}
	if q := inv.QDevice; q == nil || q.State != "Connected" || q.QNetdHost != "10.0.0.9:5403" {
		t.Errorf("QDevice = %+v", inv.QDevice)
	}
	if inv.FetchedAt.IsZero() {
		t.Error("FetchedAt not set")
	}
}

func TestInventoryPartialFailures(t *testing.T) {
	f := newStandardFakePVE(t)
	f.set("GET", "/nodes/node3/status", 595, "")
	f.set("GET", "/nodes/node4/storage", 403, `{"data":null,"message":"Permission check failed (/storage/local, Datastore.Audit)\n"}`)
	hang := make(chan struct{})
	defer close(hang)
	f.setRoute("GET", "/nodes/node1/qemu/200/config", route{status: 200, body: `{"data":{}}`, block: hang})
	cfg := f.config()
	cfg.Timeout = 3 * time.Second
	cfg.Retries = -1
	inv, err := f.clientWith(cfg).Inventory(testContext(t), InventoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]error{}
	for _, p := range inv.Partial {
		got[p.Endpoint] = p.Err
	}
	if len(got) != 3 {
		t.Fatalf("partial = %v", inv.Partial)
	}
	if !IsUnavailable(got["/nodes/node3/status"]) || !IsForbidden(got["/nodes/node4/storage"]) ||
		!errors.Is(got["/nodes/node1/qemu/200/config"], context.DeadlineExceeded) {
		t.Errorf("partial = %v", inv.Partial)
	}
	for _, n := range inv.Nodes {
		if n.StatusFetched == (n.Name == "node3") {
			t.Errorf("%s StatusFetched = %v", n.Name, n.StatusFetched)
		}
	}
	for _, g := range inv.Guests {
		if (g.Config == nil) != (g.VMID == 200) {
			t.Errorf("%s config = %v", g.ID(), g.Config)
		}
	}
	if len(inv.Storages) != 15 { // node4's disabled nfs-iso is unknown without its storage list
		t.Errorf("%d storages, want 15", len(inv.Storages))
	}

	f.set("GET", "/cluster/resources", 500, `{"data":null,"message":"cluster not ready - no quorum?\n"}`)
	if _, err := f.client().Inventory(testContext(t), InventoryOptions{}); err == nil || !strings.Contains(err.Error(), "no quorum") {
		t.Errorf("resources failure: %v", err)
	}
}

func TestSnapshotterSteadyStateCost(t *testing.T) {
	f := newStandardFakePVE(t)
	c := f.client()
	s, clock := newTestSnapshotter(c, SnapshotterConfig{})
	ctx := testContext(t)
	if _, err := s.Inventory(ctx, InventoryOptions{}); err != nil {
		t.Fatal(err)
	}
	// 1 resources + 4 statuses + cluster status, version, 2 HA, tasks, backup, qdevice + 4×(storage,
	// subscription, replication) + 4 configs. The QDevice part added one cluster-wide call to the first round
	// (28, was 27); steady-state rounds still read only resources and statuses.
	if n := f.total(); n != 1+4+7+12+4 {
		t.Errorf("first round made %d calls, want 28", n)
	}
	for i := 0; i < 3; i++ {
		f.resetCounts()
		clock.Advance(5 * time.Second) // every TTL is longer than the 15s these rounds span
		inv, err := s.Inventory(ctx, InventoryOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n := f.total(); n != 1+4 {
			t.Errorf("steady-state round %d made %d calls, want 1+4", i, n)
		}
		if f.count("GET /cluster/resources") != 1 || f.count("GET /nodes/node1/status") != 1 {
			t.Errorf("round %d did not read resources and node status", i)
		}
		if inv.Guests[0].Config == nil || inv.Cluster.Name == "" || len(inv.Tasks) == 0 || len(inv.Storages) != 16 {
			t.Errorf("round %d lost cached parts: %+v", i, inv.Cluster)
		}
	}
	calls := c.APICalls()
	if calls["/cluster/resources"] != 4 || calls["/nodes/{node}/status"] != 16 || calls["/nodes/{node}/qemu/{vmid}/config"] != 4 {
		t.Errorf("APICalls = %v", calls)
	}
}

func TestSnapshotterRefetchesConfigOnChangeAndTTL(t *testing.T) {
	f := newStandardFakePVE(t)
	hour := time.Hour
	s, clock := newTestSnapshotter(f.client(), SnapshotterConfig{TTLs: TTLs{
		ClusterStatus: hour, Version: hour, HA: hour, Tasks: hour, Storage: hour, Configs: time.Minute,
		Subscription: hour, Replication: hour, Backup: hour, QDevice: hour,
	}})
	ctx := testContext(t)
	if _, err := s.Inventory(ctx, InventoryOptions{}); err != nil {
		t.Fatal(err)
	}
	configCalls := func() int {
		n := 0
		for _, g := range []string{"node2/qemu/100", "node1/qemu/101", "node1/qemu/102", "node1/qemu/200"} {
			n += f.count("GET /nodes/" + g + "/config")
		}
		return n
	}

	tests := []struct {
		name      string
		resources string
		advance   time.Duration
		want      []string // configs fetched in the round
	}{
		{"memory of qemu/100 changed", resourcesWith(t, `"maxmem": 1073741824`, `"maxmem": 2147483648`), 0, []string{"node2/qemu/100"}},
		{"nothing changed", resourcesWith(t, `"maxmem": 1073741824`, `"maxmem": 2147483648`), 0, nil},
		{"qemu/102 locked", resourcesWith(t, `"maxmem": 1073741824`, `"maxmem": 2147483648`, `"id": "qemu/102",`, `"id": "qemu/102", "lock": "backup",`), 0, []string{"node1/qemu/102"}},
		{"qemu/200 tagged and qemu/101 started", resourcesWith(t, `"maxmem": 1073741824`, `"maxmem": 2147483648`, `"id": "qemu/102",`, `"id": "qemu/102", "lock": "backup",`,
			`"id": "qemu/200",`, `"id": "qemu/200", "tags": "db",`, `"status": "stopped",
        "diskread": 0,
        "template": 1`, `"status": "running",
        "diskread": 0,
        "template": 1`), 0, []string{"node1/qemu/101", "node1/qemu/200"}},
		{"TTL ran out", "", 2 * time.Minute, []string{"node2/qemu/100", "node1/qemu/101", "node1/qemu/102", "node1/qemu/200"}},
	}
	for _, tt := range tests {
		if tt.resources != "" {
			f.set("GET", "/cluster/resources", 200, tt.resources)
		}
		clock.Advance(tt.advance + time.Second)
		f.resetCounts()
		if _, err := s.Inventory(ctx, InventoryOptions{}); err != nil {
			t.Fatal(err)
		}
		for _, g := range tt.want {
			if f.count("GET /nodes/"+g+"/config") != 1 {
				t.Errorf("%s: config of %s not refetched", tt.name, g)
			}
		}
		if configCalls() != len(tt.want) {
			t.Errorf("%s: %d config calls, want %d", tt.name, configCalls(), len(tt.want))
		}
		if f.total() != 1+4+len(tt.want) {
			t.Errorf("%s: %d calls, want %d", tt.name, f.total(), 1+4+len(tt.want))
		}
	}

	// A guest that disappears takes its cached config with it; an offline node is not asked for its guests'
	// configs, and for its status only in the round that finds it offline (a round asks the nodes online in
	// the last one before /cluster/resources answers, then cancels the request to a node now offline).
	f.set("GET", "/cluster/resources", 200, resourcesWith(t, `"id": "qemu/100"`, `"id": "qemu/999"`, `"vmid": 100`, `"vmid": 999`,
		`"id": "node/node1",
        "level": "",`, `"id": "node/node1",
        "level": "", "status": "offline",`))
	f.resetCounts()
	inv, err := s.Inventory(ctx, InventoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if f.count("GET /nodes/node1/status") > 1 || configCalls() != 0 || f.count("GET /nodes/node2/qemu/999/config") != 1 {
		t.Errorf("offline node1 or new qemu/999 handled wrong: %d calls", f.total())
	}
	for _, p := range inv.Partial {
		if p.Node == "node1" {
			t.Errorf("the offline node's cancelled status request is reported: %+v", p)
		}
	}
	s.mu.Lock()
	_, kept := s.cache.configs["qemu/100"]
	s.mu.Unlock()
	if kept {
		t.Error("config of vanished qemu/100 still cached")
	}
	for _, g := range inv.Guests {
		if g.Node == "node1" && g.Config == nil {
			t.Errorf("%s on offline node lost its cached config", g.ID())
		}
	}

	// The next round knows node1 is offline: no status request at all.
	clock.Advance(time.Second)
	f.resetCounts()
	if _, err := s.Inventory(ctx, InventoryOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := f.count("GET /nodes/node1/status"); n != 0 {
		t.Errorf("offline node1 asked for its status %d times in the next round", n)
	}
}

func TestSnapshotterFreshAndStale(t *testing.T) {
	f := newStandardFakePVE(t)
	s, clock := newTestSnapshotter(f.client(), SnapshotterConfig{MaxAge: 5 * time.Second})
	ctx := testContext(t)
	first, err := s.Inventory(ctx, InventoryOptions{})
	if err != nil {
		t.Fatal(err)
	}

	f.resetCounts()
	clock.Advance(time.Second)
	again, err := s.Inventory(ctx, InventoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if again != first || f.total() != 0 {
		t.Errorf("within MaxAge: new snapshot %v, %d calls", again != first, f.total())
	}

	fresh, err := s.Inventory(ctx, InventoryOptions{Fresh: PartTasks | PartClusterStatus})
	if err != nil {
		t.Fatal(err)
	}
	if fresh == first || f.total() != 1+4+2 || f.count("GET /cluster/tasks") != 1 || f.count("GET /cluster/status") != 1 {
		t.Errorf("fresh tasks and quorum: %d calls", f.total())
	}

	// A failing refresh keeps the last good value and says so.
	f.set("GET", "/cluster/status", 500, `{"data":null,"message":"cfs read error\n"}`)
	clock.Advance(10 * time.Second)
	inv, err := s.Inventory(ctx, InventoryOptions{Fresh: PartClusterStatus})
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Partial) != 1 || !inv.Partial[0].Stale || inv.Partial[0].Endpoint != "/cluster/status" || inv.Cluster.Name != "clustername" {
		t.Errorf("stale cluster status: %+v, partial %v", inv.Cluster, inv.Partial)
	}
	if !strings.Contains(inv.Partial[0].Error(), "using older data") {
		t.Errorf("FetchError text %q", inv.Partial[0].Error())
	}
}

func TestSnapshotterSharesOneRound(t *testing.T) {
	f := newStandardFakePVE(t)
	release := make(chan struct{})
	f.setRoute("GET", "/cluster/resources", route{status: 200, body: string(loadFixture(t, "cluster_resources.json").Body), block: release})
	s, _ := newTestSnapshotter(f.client(), SnapshotterConfig{MaxAge: time.Hour})
	ctx := testContext(t)

	const callers = 16
	results := make(chan *Inventory, callers)
	errs := make(chan error, callers)
	var wg sync.WaitGroup
	for i := 0; i < callers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			inv, err := s.Inventory(ctx, InventoryOptions{})
			if err != nil {
				errs <- err
				return
			}
			results <- inv
		}()
	}
	for f.count("GET /cluster/resources") == 0 {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	close(results)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var first *Inventory
	for inv := range results {
		if first == nil {
			first = inv
		}
		if inv != first {
			t.Error("callers got different snapshots")
		}
	}
	if n := f.count("GET /cluster/resources"); n != 1 {
		t.Errorf("%d concurrent callers made %d rounds, want 1", callers, n)
	}
}

func TestSnapshotterRoundOutlivesCancelledCaller(t *testing.T) {
	f := newStandardFakePVE(t)
	release := make(chan struct{})
	f.setRoute("GET", "/cluster/resources", route{status: 200, body: string(loadFixture(t, "cluster_resources.json").Body), block: release})
	s, _ := newTestSnapshotter(f.client(), SnapshotterConfig{})

	leaderCtx, cancelLeader := context.WithCancel(context.Background())
	leaderErr := make(chan error, 1)
	go func() {
		_, err := s.Inventory(leaderCtx, InventoryOptions{})
		leaderErr <- err
	}()
	for f.count("GET /cluster/resources") == 0 {
		time.Sleep(time.Millisecond)
	}
	follower := make(chan error, 1)
	go func() {
		_, err := s.Inventory(testContext(t), InventoryOptions{})
		follower <- err
	}()
	cancelLeader()
	if err := <-leaderErr; !errors.Is(err, context.Canceled) {
		t.Errorf("leader: %v", err)
	}
	close(release)
	if err := <-follower; err != nil {
		t.Errorf("follower failed with the leader: %v", err)
	}
}

func TestParsePart(t *testing.T) {
	for _, p := range []Part{PartTasks, PartClusterStatus | PartHA, DefaultParts, AllParts} {
		got, err := ParsePart(p.String())
		if err != nil || got != p {
			t.Errorf("ParsePart(%q) = %v, %v", p.String(), got, err)
		}
	}
	if _, err := ParsePart("tasks|bogus"); err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Errorf("bogus part: %v", err)
	}
}

func TestInventoryConcurrencyBounds(t *testing.T) {
	f := newStandardFakePVE(t)
	config := string(loadFixture(t, "qemu_config.json").Body)
	for _, g := range []string{"node2/qemu/100", "node1/qemu/101", "node1/qemu/102", "node1/qemu/200"} {
		f.setRoute("GET", "/nodes/"+g+"/config", route{status: 200, body: config, delay: 20 * time.Millisecond})
	}
	for _, n := range []string{"node1", "node2", "node3", "node4"} {
		f.setRoute("GET", "/nodes/"+n+"/status", route{status: 200, body: string(loadFixture(t, "node_status.json").Body), delay: 20 * time.Millisecond})
	}
	cfg := f.config()
	cfg.PerNodeConcurrency, cfg.MaxConcurrency = 1, 3
	inv, err := f.clientWith(cfg).Inventory(testContext(t), InventoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Partial) != 0 {
		t.Fatalf("partial: %v", inv.Partial)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.maxInflight > 3 {
		t.Errorf("%d requests in flight, bound is 3", f.maxInflight)
	}
	for node, n := range f.maxNodeInflight {
		if node != "" && n > 1 {
			t.Errorf("%d requests in flight to %s, bound is 1", n, node)
		}
	}
}

func TestConfigExpirySpread(t *testing.T) {
	ttl := 10 * time.Minute
	seen := map[time.Duration]bool{}
	for vmid := 100; vmid < 200; vmid++ {
		id := "qemu/" + itoa(vmid)
		d := spread(id, ttl)
		if d < 0 || d >= ttl/4 {
			t.Fatalf("spread(%s) = %s, outside [0, %s)", id, d, ttl/4)
		}
		if d != spread(id, ttl) {
			t.Fatalf("spread(%s) not stable", id)
		}
		seen[d] = true
	}
	if len(seen) < 50 {
		t.Errorf("100 guests share only %d expiry offsets", len(seen))
	}
}

// TestPressurePartsSkippedOnPVE8: once /version says PVE 8 (no PSI), the pressure parts cost no more calls,
// and the inventory has no PSI rather than zeros.
func TestPressurePartsSkippedOnPVE8(t *testing.T) {
	for _, tt := range []struct {
		version string
		calls   int // rrddata + qemu + lxc calls on node1 in the second due round
	}{{"8.4.14", 0}, {"9.2.11", 3}} {
		t.Run(tt.version, func(t *testing.T) {
			f := newStandardFakePVE(t)
			f.set("GET", "/version", 200, `{"data":{"version":"`+tt.version+`","release":"x","repoid":"0"}}`)
			s, clock := newTestSnapshotter(f.client(), SnapshotterConfig{Parts: AllParts})
			if _, err := s.Inventory(testContext(t), InventoryOptions{}); err != nil {
				t.Fatal(err)
			}
			f.resetCounts()
			clock.Advance(2 * time.Minute) // the pressure TTLs (1m) ran out, /version's (1h) did not
			inv, err := s.Inventory(testContext(t), InventoryOptions{})
			if err != nil {
				t.Fatal(err)
			}
			got := f.count("GET /nodes/node1/rrddata") + f.count("GET /nodes/node1/qemu") + f.count("GET /nodes/node1/lxc")
			if got != tt.calls {
				t.Errorf("%d pressure calls to node1, want %d", got, tt.calls)
			}
			if tt.calls == 0 {
				for _, g := range inv.Guests {
					if g.PSI != nil {
						t.Errorf("%s has PSI on PVE 8", g.ID())
					}
				}
			}
		})
	}
}

func TestHasPSI(t *testing.T) {
	for v, want := range map[string]bool{"9.0.3": true, "10.1": true, "8.4.14": false, "7.4-3": false, "": true, "x": true} {
		if got := hasPSI(v); got != want {
			t.Errorf("hasPSI(%q) = %t, want %t", v, got, want)
		}
	}
}

// TestSnapshotterQDevice follows the QDevice part through its TTL: a failed read is a Partial entry, stale
// (the last answer kept) once there was one; an answer of {} (QDevice removed) clears Inventory.QDevice.
func TestSnapshotterQDevice(t *testing.T) {
	f := newStandardFakePVE(t)
	f.set("GET", "/cluster/config/qdevice", 500, `{"data":null,"message":"cfs read error\n"}`)
	s, clock := newTestSnapshotter(f.client(), SnapshotterConfig{})
	ctx := testContext(t)
	steps := []struct {
		name      string
		status    int
		body      string
		wantState string // "" for a nil QDevice
		wantStale *bool  // nil: no Partial entry
	}{
		{name: "first read fails", status: 500, body: `{"data":null,"message":"cfs read error\n"}`, wantStale: new(false)},
		{name: "connected", status: 200, body: qdeviceBody, wantState: "Connected"},
		{name: "read fails, older answer kept", status: 500, body: `{"data":null,"message":"cfs read error\n"}`, wantState: "Connected", wantStale: new(true)},
		{name: "removed", status: 200, body: `{"data":{}}`},
	}
	for _, st := range steps {
		f.set("GET", "/cluster/config/qdevice", st.status, st.body)
		f.resetCounts()
		inv, err := s.Inventory(ctx, InventoryOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n := f.count("GET /cluster/config/qdevice"); n != 1 {
			t.Errorf("%s: %d qdevice calls, want 1", st.name, n)
		}
		state := ""
		if inv.QDevice != nil {
			state = inv.QDevice.State
		}
		if state != st.wantState {
			t.Errorf("%s: QDevice %+v, want state %q", st.name, inv.QDevice, st.wantState)
		}
		var stale *bool
		for _, p := range inv.Partial {
			if p.Endpoint == "/cluster/config/qdevice" {
				stale = new(p.Stale)
			}
		}
		if (stale == nil) != (st.wantStale == nil) || (stale != nil && *stale != *st.wantStale) {
			t.Errorf("%s: partial %v", st.name, inv.Partial)
		}
		clock.Advance(DefaultTTLs().QDevice)
	}
}
