package pve

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	jsoniter "github.com/json-iterator/go"
)

// largeClusterResources builds a /cluster/resources body for nodes nodes with guests guests, shaped like the
// captured PVE answer (a mix of qemu and lxc, tags, HA state, PVE 9 memhost).
func largeClusterResources(nodes, guests int) []byte {
	var b strings.Builder
	b.WriteString(`{"data":[`)
	for i := 0; i < nodes; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":"node/pve%d","type":"node","node":"pve%d","status":"online","level":"","cgroup-mode":2,`+
			`"cpu":0.0365387809333998,"maxcpu":64,"mem":81278730240,"maxmem":540679114752,"disk":2797338624,`+
			`"maxdisk":940166742016,"uptime":874373}`, i, i)
		for _, st := range []string{"local", "local-zfs"} {
			fmt.Fprintf(&b, `,{"id":"storage/pve%d/%s","type":"storage","node":"pve%d","storage":"%s","status":"available",`+
				`"plugintype":"zfspool","content":"images,rootdir","shared":0,"disk":25294921728,"maxdisk":962664386560}`, i, st, i, st)
		}
	}
	for g := 0; g < guests; g++ {
		typ := "qemu"
		if g%4 == 3 {
			typ = "lxc"
		}
		vmid := 100 + g
		fmt.Fprintf(&b, `,{"id":"%s/%d","type":"%s","vmid":%d,"name":"guest-%d","node":"pve%d","status":"running",`+
			`"template":0,"tags":"prod;web","cpu":0.0249060195469461,"maxcpu":4,"mem":842551296,"maxmem":4294967296,`+
			`"memhost":901234688,"disk":0,"maxdisk":34359738368,"netin":2456116121,"netout":545248946,`+
			`"diskread":4510777856,"diskwrite":6059209728,"uptime":874350`, typ, vmid, typ, vmid, g, g%nodes)
		if g%10 == 0 {
			b.WriteString(`,"hastate":"started"`)
		}
		b.WriteByte('}')
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}

// BenchmarkDecodeClusterResources decodes a 5,000-guest /cluster/resources answer into Resources, as
// ClusterResources does.
func BenchmarkDecodeClusterResources(b *testing.B) {
	body := largeClusterResources(50, 5000)
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(env.Data)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		it := jsoniter.ConfigDefault.BorrowIterator(env.Data)
		res := &Resources{}
		readEntries(it, res.add)
		if err := iterError(it); err != nil {
			b.Fatal(err)
		}
		jsoniter.ConfigDefault.ReturnIterator(it)
		res.sort()
		if len(res.Guests) != 5000 {
			b.Fatalf("%d guests", len(res.Guests))
		}
	}
}

// BenchmarkClusterResourcesRequest is the same answer through the whole client: loopback TLS, our transport,
// go-proxmox's envelope handling, our decoder.
func BenchmarkClusterResourcesRequest(b *testing.B) {
	f := newFakePVE(b)
	f.set("GET", "/cluster/resources", 200, string(largeClusterResources(50, 5000)))
	c := f.client()
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		res, err := c.ClusterResources(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Guests) != 5000 {
			b.Fatalf("%d guests", len(res.Guests))
		}
	}
}

// BenchmarkInventoryAssembly measures building an Inventory from a decoded /cluster/resources and warm caches
// (50 nodes, 5,000 guests with configs), i.e. the CPU and allocation cost of a steady-state round without I/O.
func BenchmarkInventoryAssembly(b *testing.B) {
	var entries resourceList
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(largeClusterResources(50, 5000), &env); err != nil {
		b.Fatal(err)
	}
	if err := json.Unmarshal(env.Data, &entries); err != nil {
		b.Fatal(err)
	}
	res := splitResources(entries)
	s := NewSnapshotter(&Client{perNode: 4}, SnapshotterConfig{})
	now := time.Now()
	online := make([]string, len(res.Nodes))
	statuses := make([]*NodeStatus, len(res.Nodes))
	members := make([]ClusterMember, len(res.Nodes))
	for i, n := range res.Nodes {
		online[i] = n.Name
		statuses[i] = &NodeStatus{CPU: 0.1, CPUs: 64, MemTotal: 1 << 39, LoadAvg: [3]float64{1, 2, 3}}
		members[i] = ClusterMember{Name: n.Name, NodeID: i + 1, Online: true}
		nc := s.node(n.Name)
		nc.storage.set([]Storage{{Storage: "local", Type: "zfspool", Enabled: true, Active: true}}, now)
		nc.subscription.set(&Subscription{Status: "active"}, now)
		nc.replication.set(nil, now)
	}
	s.cache.clusterStatus.set(&ClusterStatus{Cluster: Cluster{Name: "big", Quorate: true, NodeCount: 50}, Members: members}, now)
	s.cache.version.set(&Version{Version: "9.2.11"}, now)
	s.cache.ha.set(HAStatus{Quorate: true, Resources: []HAResource{{SID: "vm:100", Type: "vm", VMID: 100}}}, now)
	s.cache.tasks.set(make([]Task, 200), now)
	s.cache.configs = map[string]*configEntry{}
	cfg := ParseGuestConfig(TypeQEMU, kv("memory", "4096", "cores", "4", "scsi0", "local-zfs:vm-1-disk-0,size=32G"), nil)
	for i := range res.Guests {
		g := &res.Guests[i]
		s.cache.configs[g.ID()] = &configEntry{cfg: cfg, at: now, fp: fingerprint(g)}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		inv := s.assemble(res, online, statuses)
		if len(inv.Guests) != 5000 || inv.Guests[0].Config == nil {
			b.Fatal("incomplete inventory")
		}
	}
}

// BenchmarkSnapshotterSteadyState is one cached round end to end against a loopback fake: 1 + 50 requests,
// /cluster/resources with 5,000 guests, assembly.
func BenchmarkSnapshotterSteadyState(b *testing.B) {
	f := newFakePVE(b)
	f.set("GET", "/cluster/resources", 200, string(largeClusterResources(50, 5000)))
	status := string(loadFixture(b, "node_status.json").Body)
	for i := 0; i < 50; i++ {
		f.set("GET", fmt.Sprintf("/nodes/pve%d/status", i), 200, status)
	}
	// Every other part fails once (501) and is then served from the (empty) cache within its TTL, so only the
	// steady-state requests remain in the loop.
	s := NewSnapshotter(f.client(), SnapshotterConfig{Parts: PartTasks})
	f.set("GET", "/cluster/tasks", 200, `{"data":[]}`)
	ctx := context.Background()
	if _, err := s.Inventory(ctx, InventoryOptions{}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.Inventory(ctx, InventoryOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if n := f.count("GET /cluster/tasks"); n != 1 && b.Elapsed() < DefaultTTLs().Tasks {
		b.Errorf("tasks fetched %d times within its TTL", n)
	}
}
