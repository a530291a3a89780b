package pve

import (
	"encoding/json"
	"math"
	"strconv"
	"testing"
)

// decodeCase is one JSON input and what a flex type should make of it.
type decodeCase[T comparable] struct {
	in   string
	want T
	err  bool
}

func checkDecode[T comparable](t *testing.T, cases []decodeCase[T]) {
	t.Helper()
	for _, tt := range cases {
		var got T
		err := json.Unmarshal([]byte(tt.in), &got)
		if (err != nil) != tt.err || (err == nil && got != tt.want) {
			t.Errorf("%T from %s = %v, %v; want %v, error %v", got, tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestFlexTypes(t *testing.T) {
	checkDecode(t, []decodeCase[flexFloat]{
		{`0.5`, 0.5, false}, {`"0.00"`, 0, false}, {`"3400.000"`, 3400, false}, {`null`, 0, false}, {`""`, 0, false},
		{`" 1.5 "`, 1.5, false}, {`1e3`, 1000, false}, {`"abc"`, 0, true}, {`"NaN"`, 0, true}, {`true`, 0, true},
		{`[1]`, 0, true}, {`"1\u0030"`, 10, false},
	})
	checkDecode(t, []decodeCase[flexInt]{
		{`100`, 100, false}, {`"106"`, 106, false}, {`null`, 0, false}, {`2097152000.0`, 2097152000, false},
		{`12.9`, 12, false}, {`"-3"`, -3, false}, {`"x"`, 0, true}, {`1e30`, 0, true}, {`{}`, 0, true},
	})
	checkDecode(t, []decodeCase[pveBool]{
		{`1`, true, false}, {`0`, false, false}, {`"1"`, true, false}, {`"0"`, false, false}, {`true`, true, false},
		{`false`, false, false}, {`null`, false, false}, {`2`, true, false}, {`""`, false, false}, {`"yes"`, false, true},
		{`0.0`, false, false},
	})
	checkDecode(t, []decodeCase[flexString]{
		{`"100"`, "100", false}, {`100`, "100", false}, {`null`, "", false}, {`"a\"b"`, `a"b`, false}, {`true`, "", true},
	})
}

// A number must decode to the same value whether PVE sends it bare or quoted.
func FuzzFlexFloat(f *testing.F) {
	for _, s := range []string{"0.5", "3400.000", "1e3", "-0", "12345678901234567890"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var number float64
		if json.Unmarshal([]byte(s), &number) != nil {
			return // only numbers have a quoted twin to compare with
		}
		var bare, quoted flexFloat
		errBare := json.Unmarshal([]byte(s), &bare)
		errQuoted := json.Unmarshal([]byte(strconv.Quote(s)), &quoted)
		if errBare == nil {
			if errQuoted != nil {
				t.Fatalf("%s decodes bare but not quoted: %v", s, errQuoted)
			}
			if bare != quoted && !(math.IsNaN(float64(bare)) && math.IsNaN(float64(quoted))) {
				t.Fatalf("%s: bare %v, quoted %v", s, bare, quoted)
			}
		}
	})
}

func FuzzFlexInt(f *testing.F) {
	for _, s := range []string{"100", "2097152000.0", "-7", "9223372036854775807", "1e18"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var number float64
		if json.Unmarshal([]byte(s), &number) != nil {
			return
		}
		var bare, quoted flexInt
		errBare := json.Unmarshal([]byte(s), &bare)
		errQuoted := json.Unmarshal([]byte(strconv.Quote(s)), &quoted)
		if errBare == nil && (errQuoted != nil || bare != quoted) {
			t.Fatalf("%s: bare %v (%v), quoted %v (%v)", s, bare, errBare, quoted, errQuoted)
		}
	})
}

func FuzzPVEBool(f *testing.F) {
	for _, s := range []string{"0", "1", `"1"`, "true", "null", "2.5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var b pveBool
		if err := json.Unmarshal([]byte(s), &b); err != nil {
			return
		}
		var n float64
		if json.Unmarshal([]byte(s), &n) == nil && bool(b) != (n != 0) {
			t.Fatalf("%s: pveBool %v disagrees with number %v", s, b, n)
		}
	})
}

// Fuzz the decoders of whole answers: whatever PVE (or an attacker between us and PVE) sends, decoding returns
// an error or a value, never a panic, and converted values keep their invariants.
func FuzzDecodeResources(f *testing.F) {
	f.Add([]byte(fixtureData(f, "cluster_resources.json")))
	f.Add([]byte(`[{"type":"lxc","vmid":"106","node":"n","tags":"a;b","memhost":"5","template":"1","hastate":"started"}]`))
	f.Add([]byte(`[{"type":"node","status":"online","maxcpu":"8","node":"n"}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var entries resourceList
		if err := json.Unmarshal(data, &entries); err != nil {
			return
		}
		res := splitResources(entries)
		for _, g := range res.Guests {
			if g.Type != TypeQEMU && g.Type != TypeLXC {
				t.Fatalf("guest of type %q", g.Type)
			}
			if g.HAManaged != (g.HAState != "") {
				t.Fatalf("HAManaged disagrees with HAState: %+v", g)
			}
		}
	})
}

func FuzzDecodeNodeStatus(f *testing.F) {
	f.Add([]byte(fixtureData(f, "node_status.json")))
	f.Add([]byte(`{"loadavg":["1","2","3","4"],"memory":{"available":"5"},"cpuinfo":{"mhz":"1.0"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var b nodeStatusBody
		if err := json.Unmarshal(data, &b); err != nil {
			return
		}
		s := b.convert()
		if s.HasMemAvailable != (b.Memory.Available != nil) {
			t.Fatalf("HasMemAvailable %v", s.HasMemAvailable)
		}
	})
}

func FuzzDecodeGuestStatus(f *testing.F) {
	f.Add([]byte(fixtureData(f, "lxc_status_current_running.json")))
	f.Add([]byte(fixtureData(f, "qemu_status_current.json")))
	f.Fuzz(func(t *testing.T, data []byte) {
		var b guestStatusBody
		if err := json.Unmarshal(data, &b); err != nil {
			return
		}
		s := b.convert()
		hasPressure := b.CPUSome != nil || b.CPUFull != nil || b.IOSome != nil || b.IOFull != nil || b.MemorySome != nil || b.MemoryFull != nil
		if (s.PSI != nil) != hasPressure {
			t.Fatalf("PSI %v but pressure keys sent: %v", s.PSI, hasPressure)
		}
	})
}

func FuzzDecodePrecondition(f *testing.F) {
	f.Add([]byte(fixtureData(f, "qemu_migrate_precondition.json")))
	f.Add([]byte(fixtureData(f, "lxc_migrate_precondition.json")))
	f.Add([]byte(`{"not_allowed_nodes":{"n":{"blocking-ha-resources":["vm:1",{"sid":"ct:2"}]}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var b preconditionBody
		if err := json.Unmarshal(data, &b); err != nil {
			return
		}
		p := b.convert()
		for node, bl := range p.NotAllowed {
			if len(bl.UnavailableStorages)+len(bl.UnavailableResources)+len(bl.BlockingHAResources) == 0 {
				t.Fatalf("node %s refused without a reason", node)
			}
		}
	})
}

// Node entries of /cluster/resources carry the HA manager's node state as "hastate" when HA is in use;
// prometheus-pve-exporter's pve_ha_state for nodes reads it from there.
func TestResourcesNodeHAState(t *testing.T) {
	tests := []struct {
		entry string
		want  string
	}{
		{`{"type":"node","node":"pve1","status":"online","hastate":"online"}`, "online"},
		{`{"type":"node","node":"pve1","status":"online","hastate":"maintenance"}`, "maintenance"},
		{`{"type":"node","node":"pve1","status":"unknown","hastate":"fence"}`, "fence"},
		{`{"type":"node","node":"pve1","status":"online"}`, ""},
	}
	for _, tt := range tests {
		var entries resourceList
		if err := json.Unmarshal([]byte("["+tt.entry+"]"), &entries); err != nil {
			t.Fatalf("%s: %v", tt.entry, err)
		}
		res := splitResources(entries)
		if len(res.Nodes) != 1 || res.Nodes[0].HAState != tt.want {
			t.Errorf("%s: nodes %+v, want one with HAState %q", tt.entry, res.Nodes, tt.want)
		}
	}
}
