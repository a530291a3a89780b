package pvesim

import (
	"os"
	"strings"
	"testing"
	"time"
)

// minimal is a valid scenario that the invalid cases below break one field at a time.
const minimal = `name: t
nodes:
  - name: pve1
    cores: 8
    memory: 32GiB
  - name: pve2
    storages: [local]
storages:
  - id: local
    type: dir
  - id: tank
    type: zfspool
guests:
  - vmid: 100
    name: web
    node: pve1
    disks: [{storage: tank, size: 10GiB}]
`

func TestParseScenarioDefaults(t *testing.T) {
	s, err := ParseScenario([]byte(minimal), "scenario.yml")
	if err != nil {
		t.Fatal(err)
	}
	g := s.Guests[0]
	if s.PVEVersion != "9.2.11" || s.Seed != 1 || s.MigrationBandwidth != GiB || s.LocalNode != "pve1" {
		t.Errorf("scenario defaults: %+v", s)
	}
	if s.Nodes[1].CPUs != 8 || s.Nodes[1].Memory != 64*GiB || len(s.Nodes[0].Storages) != 2 {
		t.Errorf("node defaults: %+v", s.Nodes)
	}
	if g.Type != "qemu" || g.Cores != 1 || g.Memory != 2*GiB || g.Status != "running" || g.Workload.Kind != "constant" || *g.Workload.Noise != defaultNoise {
		t.Errorf("guest defaults: %+v", g)
	}
}

func TestParseScenarioErrors(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(string) string
		wantErr string
	}{
		{"unknown top-level field", func(s string) string { return s + "colour: blue\n" }, `scenario.yml:18: colour: unknown field`},
		{"unknown nested field", func(s string) string { return strings.Replace(s, "    cores: 8\n", "    cores: 8\n    cors: 2\n", 1) }, `scenario.yml:5: nodes[0].cors: unknown field`},
		{"guest on unknown node", func(s string) string { return strings.Replace(s, "node: pve1", "node: pve9", 1) }, `scenario.yml:16: guests[0].node: unknown node "pve9"`},
		{"storage missing on node", func(s string) string { return strings.Replace(s, "node: pve1", "node: pve2", 1) }, `scenario.yml:17: guests[0].disks[0].storage: storage "tank" is not available on node "pve2"`},
		{"duplicate vmid", func(s string) string {
			return s + "  - {vmid: 100, name: other, node: pve1}\n"
		}, `scenario.yml:18: guests[1].vmid: duplicate vmid 100`},
		{"duplicate name", func(s string) string { return s + "  - {vmid: 101, name: web, node: pve1}\n" }, `scenario.yml:18: guests[1].name: duplicate name "web"`},
		{"duplicate node", func(s string) string { return strings.Replace(s, "name: pve2", "name: pve1", 1) }, `scenario.yml:6: nodes[1].name: duplicate node "pve1"`},
		{"unknown node storage", func(s string) string { return strings.Replace(s, "storages: [local]", "storages: [nfs]", 1) }, `scenario.yml:7: nodes[1].storages[0]: unknown storage "nfs"`},
		{"bad size", func(s string) string { return strings.Replace(s, "memory: 32GiB", "memory: 32 parsecs", 1) }, `scenario.yml:5: invalid size "32 parsecs": unknown unit "parsecs"`},
		{"bad type", func(s string) string { return strings.Replace(s, "cores: 8", "cores: eight", 1) }, "scenario.yml:4: cannot unmarshal !!str `eight` into int"},
		{"bad guest type", func(s string) string { return s + "    type: vm\n" }, `scenario.yml:18: guests[0].type: unknown type "vm" (want qemu or lxc)`},
		{"bad workload", func(s string) string { return s + "    workload: {kind: wavy}\n" }, `scenario.yml:18: guests[0].workload.kind: unknown workload "wavy"`},
		{"share out of range", func(s string) string { return s + "    workload: {cpu: 1.5}\n" }, `guests[0].workload.cpu: share 1.5 is outside 0..1`},
		{"bad version", func(s string) string { return s + "pve_version: \"7.4.1\"\n" }, `scenario.yml:18: pve_version: unsupported PVE version "7.4.1"`},
		{"passthrough on CT", func(s string) string { return s + "    type: lxc\n    passthrough: {hostpci: [\"0000:01:00.0\"]}\n" }, `guests[0].passthrough: passthrough devices are for VMs (type qemu)`},
		{"mount with bind and storage", func(s string) string {
			return s + "    type: lxc\n    mounts: [{bind: /srv, storage: tank, mp: /srv}]\n"
		}, `guests[0].mounts[0]: set exactly one of bind and storage`},
		{"fault on unknown node", func(s string) string { return s + "faults: {offline_nodes: [pve7]}\n" }, `scenario.yml:18: faults.offline_nodes[0]: unknown node "pve7"`},
		{"node error on unknown node", func(s string) string { return s + "faults: {node_errors: {pve7: 500}}\n" }, `scenario.yml:18: faults.node_errors.pve7: unknown node "pve7"`},
		{"node error not 5xx", func(s string) string { return s + "faults: {node_errors: {pve1: 404}}\n" }, `scenario.yml:18: faults.node_errors.pve1: status 404 is not a server error (500..599)`},
		{"bad start", func(s string) string { return s + "start: yesterday\n" }, `scenario.yml:18: start: not an RFC 3339 time: "yesterday"`},
		{"two documents", func(s string) string { return s + "---\nname: x\n" }, `more than one YAML document`},
		{"alias", func(s string) string { return s + "pools: &a [x]\n" }, `pools: unknown field`},
		{"not a mapping", func(string) string { return "- 1\n" }, `cannot unmarshal !!seq into pvesim.Scenario`},
		{"no nodes", func(string) string { return "name: x\n" }, `nodes: a cluster needs at least one node`},
		{"qdevice without host", func(s string) string { return s + "qdevice: {state: Connected}\n" }, `scenario.yml:18: qdevice.host: a QNetd host address is required`},
		{"qdevice algorithm", func(s string) string { return s + "qdevice: {host: 10.0.0.9, algorithm: 2nodelms}\n" }, `scenario.yml:18: qdevice.algorithm: unknown algorithm "2nodelms" (want ffsplit or lms)`},
		{"qdevice state not one line", func(s string) string { return s + "qdevice: {host: 10.0.0.9, state: \"a: b\"}\n" }, `scenario.yml:18: qdevice.state: state "a: b" is not one line of status text`},
		{"qdevice unknown field", func(s string) string { return s + "qdevice: {host: 10.0.0.9, port: 5403}\n" }, `scenario.yml:18: qdevice.port: unknown field`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseScenario([]byte(tc.edit(minimal)), "scenario.yml")
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q\nwant it to contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestBuiltinDefaultStory(t *testing.T) {
	s, err := Builtin("default")
	if err != nil {
		t.Fatal(err)
	}
	byNode := map[string][]GuestSpec{}
	names := map[string]bool{}
	for _, g := range s.Guests {
		byNode[g.Node] = append(byNode[g.Node], g)
		if names[g.Name] {
			t.Errorf("duplicate name %s", g.Name)
		}
		names[g.Name] = true
	}
	if len(s.Nodes) != 5 || len(s.Guests) < 55 || len(s.Guests) > 65 {
		t.Errorf("%d nodes, %d guests", len(s.Nodes), len(s.Guests))
	}
	has := func(node string, pred func(GuestSpec) bool) bool {
		for _, g := range byNode[node] {
			if pred(g) {
				return true
			}
		}
		return false
	}
	tagged := func(tag string) func(GuestSpec) bool {
		return func(g GuestSpec) bool {
			for _, t := range g.Tags {
				if t == tag {
					return true
				}
			}
			return false
		}
	}
	excludeDB := 0
	for _, g := range byNode["pve1"] {
		if tagged("exclude_db")(g) {
			excludeDB++
		}
	}
	if excludeDB < 2 {
		t.Error("exclude_db is not violated on pve1")
	}
	if !has("pve1", func(g GuestSpec) bool { return len(g.Passthrough.HostPCI) > 0 }) {
		t.Error("no PCI passthrough VM")
	}
	if !has("pve2", tagged("ignore")) {
		t.Error("no ignore-tagged guest")
	}
	if !has("pve3", func(g GuestSpec) bool { return len(g.Mounts) > 0 && g.Mounts[0].Bind != "" && !g.Mounts[0].Shared }) {
		t.Error("no CT with an unshared bind mount")
	}
	if len(s.Nodes[3].Storages) >= len(s.Storages) {
		t.Error("pve4 does not lack a storage")
	}
	if len(byNode["pve5"]) < 15 {
		t.Errorf("pve5 has %d guests, want many small ones", len(byNode["pve5"]))
	}
	ha := 0
	for _, g := range s.Guests {
		if g.HA != "" {
			ha++
		}
	}
	if ha < 3 {
		t.Errorf("%d HA guests", ha)
	}

	// pve1 runs hot: the hottest node by far at the scenario's start.
	sim, err := New(s, Options{Clock: NewManualClock(time.Date(2026, 1, 5, 14, 0, 0, 0, time.UTC))})
	if err != nil {
		t.Fatal(err)
	}
	st := sim.State()
	if st.Nodes[0].CPU < 0.8 {
		t.Errorf("pve1 CPU %.2f, want hot (≥ 0.8)", st.Nodes[0].CPU)
	}
	for _, n := range st.Nodes[1:] {
		if n.CPU > 0.5 {
			t.Errorf("%s CPU %.2f, want moderate", n.Name, n.CPU)
		}
	}
}

func TestBuiltinLarge(t *testing.T) {
	s, err := Builtin("large")
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Nodes) != 64 || len(s.Guests) != 5000 {
		t.Errorf("%d nodes, %d guests", len(s.Nodes), len(s.Guests))
	}
	again, _ := Builtin("large")
	if again.Guests[4321].Node != s.Guests[4321].Node || again.Guests[4321].Memory != s.Guests[4321].Memory {
		t.Error("large scenario is not deterministic")
	}
	if _, err := Builtin("huge"); err == nil {
		t.Error("unknown built-in accepted")
	}
}

func TestWorkloadsAreDeterministicAndBounded(t *testing.T) {
	epoch := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	noise := 0.05
	for _, kind := range kinds {
		spec := WorkloadSpec{Kind: kind, CPU: 0.5, Memory: 0.5, Amplitude: 0.3, PeakHour: 14, Burst: 0.4, BurstChance: 0.5,
			BurstEvery: Duration(30 * time.Minute), BurstLength: Duration(5 * time.Minute), Slope: 0.1, Noise: &noise}
		a, b := newWorkload(spec, 1, 100, epoch), newWorkload(spec, 1, 100, epoch)
		var lo, hi = 1.0, 0.0
		for m := range 24 * 60 {
			tm := epoch.Add(time.Duration(m) * time.Minute)
			ua, ub := a.at(tm), b.at(tm)
			if ua != ub {
				t.Fatalf("%s: not deterministic at %s", kind, tm)
			}
			if ua.cpu < 0 || ua.cpu > 1 || ua.mem < 0 || ua.mem > 1 {
				t.Fatalf("%s: usage %+v out of bounds", kind, ua)
			}
			lo, hi = min(lo, ua.cpu), max(hi, ua.cpu)
		}
		if kind != "constant" && hi-lo < 0.1 {
			t.Errorf("%s: CPU only varies %.2f..%.2f over a day", kind, lo, hi)
		}
	}
	for el := 0.0; el < 7200; el += 7 {
		if counter(1000, el+7) < counter(1000, el) {
			t.Fatalf("counter went backwards at %v", el)
		}
	}
}

func FuzzParseScenario(f *testing.F) {
	f.Add([]byte(minimal))
	// A small scenario that uses every feature; the 12 KB default scenario makes minimization crawl.
	f.Add([]byte(`name: f
pve_version: "8.4.1"
start: "2026-01-05T00:00:00Z"
migration_bandwidth: 100MiB
storages: [{id: l, type: zfspool}, {id: c, type: rbd, shared: true}]
nodes: [{name: a, cores: 4, memory: 8GiB}, {name: b, storages: [l]}]
guests:
  - {vmid: 100, node: a, disks: [{storage: c, size: 1GiB}], ha: started, tags: [exclude_x], pool: p,
     workload: {kind: bursty, burst_every: 1m, burst_length: 10s}, passthrough: {hostpci: [x]}}
  - {vmid: 101, type: lxc, node: b, mounts: [{bind: /m, mp: /m}], lock: backup, workload: {kind: diurnal, noise: 0}}
faults: {latency: 1ms, node_latency: {a: 2ms}, error_rate: 0.1, fail_migrations: [{vmid: 100}]}
`))
	f.Add([]byte("nodes: [{name: a}]\nguests: [{vmid: 100, node: a, memory: 1e30GiB}]\n"))
	f.Add([]byte("nodes: [{name: a, base: {cpu: -1}}]\nfaults: {node_latency: {a: 5s}}\n"))
	f.Add([]byte("nodes: &x [{name: a}]\nstorages: *x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseScenario(data, "fuzz.yml")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.yml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		// A scenario that validates must build a simulator that answers.
		sim, err := New(s, Options{Clock: NewManualClock(time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC))})
		if err != nil {
			t.Fatalf("valid scenario rejected by New: %v", err)
		}
		_ = sim.State()
	})
}

func TestNewWithGoBuiltScenario(t *testing.T) {
	scn := &Scenario{
		Nodes:  []NodeSpec{{Name: "a"}, {Name: "b"}},
		Guests: []GuestSpec{{VMID: 100, Node: "a"}, {VMID: 101, Node: "b", Type: "lxc"}},
	}
	sim, err := New(scn, Options{Clock: NewManualClock(time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC))})
	if err != nil {
		t.Fatal(err)
	}
	st := sim.State()
	if len(st.Guests) != 2 || st.Guests[0].Status != "running" || st.Guests[0].Mem == 0 {
		t.Errorf("state %+v", st)
	}
	if _, err := New(&Scenario{Guests: []GuestSpec{{VMID: 100, Node: "x"}}}, Options{}); err == nil {
		t.Error("scenario without nodes accepted")
	}
}

// TestDocsExampleScenario keeps the scenario example in docs/pve-sim.md valid.
func TestDocsExampleScenario(t *testing.T) {
	doc, err := os.ReadFile("../../docs/pve-sim.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "```yaml\n")
	example, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("no yaml example in docs/pve-sim.md")
	}
	s, err := ParseScenario([]byte(example), "docs/pve-sim.md")
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Guests) != 2 || s.Guests[1].Mounts[1].Size != 8*GiB {
		t.Errorf("example parsed as %+v", s.Guests)
	}
}
