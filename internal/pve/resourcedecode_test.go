package pve

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// reflectedEntry is resourceEntry as encoding/json decodes it, by reflection over the struct tags: the reference
// the streaming reader is compared with (a distinct type, so that a future UnmarshalJSON on resourceEntry cannot
// turn the comparison into one of the reader with itself).
type reflectedEntry resourceEntry

func ptr[T any](v T) *T { return &v }

func TestResourceListDecode(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want resourceList
		err  string
	}{
		{name: "empty", in: `[]`, want: nil},
		{name: "null", in: `null`, want: nil},
		{
			name: "every key, PVE 9 qemu",
			in: `[{"id":"qemu/100","type":"qemu","node":"pve1","status":"running","name":"web","vmid":100,"template":0,
				"tags":"a;b","pool":"prod","lock":"backup","hastate":"started","cpu":0.25,"maxcpu":4,"mem":1024,
				"maxmem":4096,"memhost":2048,"disk":5,"maxdisk":6,"netin":7,"netout":8,"diskread":9,"diskwrite":10,
				"uptime":11,"cgroup-mode":2,"diskwrite-extra":{"nested":[1,{"x":null}]}}]`,
			want: resourceList{{
				ID: "qemu/100", Type: "qemu", Node: "pve1", Status: "running", Name: "web", VMID: 100, Tags: "a;b",
				Pool: "prod", Lock: "backup", HAState: "started", CPU: 0.25, MaxCPU: 4, Mem: 1024, MaxMem: 4096,
				MemHost: ptr(flexInt(2048)), Disk: 5, MaxDisk: 6, NetIn: 7, NetOut: 8, DiskRead: 9, DiskWrite: 10,
				Uptime: 11,
			}},
		},
		{
			name: "PVE 7 LXC: vmid and PSI as strings, template as a string",
			in: `[{"type":"lxc","vmid":"106","template":"1","cpus":2,"pressurecpusome":"0.50",
				"pressurememoryfull":" 1.25 ","memhost":null}]`,
			want: resourceList{{
				pressureKeys: pressureKeys{CPUSome: ptr(flexFloat(0.5)), MemoryFull: ptr(flexFloat(1.25))},
				Type:         "lxc", VMID: 106, Template: true, CPUs: 2,
			}},
		},
		{
			name: "storage and node",
			in: `[{"id":"storage/pve1/ceph","type":"storage","storage":"ceph","plugintype":"rbd","content":"images",
				"shared":1,"status":"available"},{"id":"node/pve1","type":"node","level":"c","uptime":12.7,"shared":true}]`,
			want: resourceList{
				{ID: "storage/pve1/ceph", Type: "storage", Storage: "ceph", PluginType: "rbd", Content: "images",
					Shared: true, Status: "available"},
				{ID: "node/pve1", Type: "node", Level: "c", Uptime: 12, Shared: true},
			},
		},
		{name: "nulls leave fields zero", in: `[{"name":null,"cpu":null,"template":null},null]`,
			want: resourceList{{}, {}}},
		{name: "escapes and invalid UTF-8", in: "[{\"name\":\"a\\\"b\\u00e9\xff\"}]",
			want: resourceList{{Name: "a\"b\u00e9\uFFFD"}}},
		{name: "number for a string", in: `[{"name":5}]`, err: "ReadString"},
		{name: "text for a number", in: `[{"mem":"lots"}]`, err: `integer expected, got "lots"`},
		{name: "object for a boolean", in: `[{"shared":{}}]`, err: "boolean (0/1) expected"},
		{name: "not an array", in: `{"id":"x"}`, err: "array expected"},
		{name: "not an object", in: `["x"]`, err: "object expected"},
		{name: "truncated", in: `[{"id":"x"`, err: "decoding resource list"},
		{name: "trailing data", in: `[] []`, err: "unexpected data after the value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got resourceList
			err := got.UnmarshalJSON([]byte(tt.in))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// The fixtures decode the same with the streaming reader as with encoding/json's reflection.
func TestResourceListMatchesReflection(t *testing.T) {
	for _, name := range []string{"cluster_resources.json"} {
		data := fixtureData(t, name)
		var got resourceList
		if err := got.UnmarshalJSON([]byte(data)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want := reflectedList(t, []byte(data))
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: streaming reader and reflection disagree:\n%+v\n%+v", name, got, want)
		}
	}
}

func reflectedList(t testing.TB, data []byte) resourceList {
	t.Helper()
	var entries []*reflectedEntry
	if err := json.Unmarshal(data, &entries); err != nil {
		t.Fatal(err)
	}
	var out resourceList
	for _, e := range entries {
		if e == nil {
			e = &reflectedEntry{}
		}
		out = append(out, resourceEntry(*e))
	}
	return out
}

// On valid JSON the streaming reader and encoding/json's reflection agree: both fail, or both give the same
// entries. Key matching differs on purpose (encoding/json also takes "ID" for "id"; PVE sends lower case only),
// so inputs with keys that are not plain lower-case ASCII are only decoded, not compared. On invalid JSON the
// reader must return (an error or entries), never panic: it does not validate what it skips.
func FuzzResourceListMatchesReflection(f *testing.F) {
	f.Add([]byte(fixtureData(f, "cluster_resources.json")))
	f.Add([]byte(`[{"type":"lxc","vmid":"106","tags":"a;b","memhost":"5","template":"1","pressureiosome":"1.5"}]`))
	f.Add([]byte(`[{"shared":true,"uptime":1.9,"name":"\u00e9\ud800"},null]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var got resourceList
		gotErr := got.UnmarshalJSON(data)
		var objects []map[string]json.RawMessage
		if !json.Valid(data) || json.Unmarshal(data, &objects) != nil {
			return
		}
		for _, obj := range objects {
			for k := range obj {
				if !plainKey(k) {
					return
				}
			}
		}
		var want []*reflectedEntry
		wantErr := json.Unmarshal(data, &want)
		if (wantErr != nil) != (gotErr != nil) {
			t.Fatalf("%q: reflection error %v, streaming error %v", data, wantErr, gotErr)
		}
		if wantErr == nil && !reflect.DeepEqual(got, reflectedList(t, data)) {
			t.Fatalf("%q: streaming reader and reflection disagree:\n%+v\n%+v", data, got, reflectedList(t, data))
		}
	})
}

func plainKey(k string) bool {
	for i := 0; i < len(k); i++ {
		if c := k[i]; c >= 0x80 || ('A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// splitResources is what ClusterResources makes of decoded entries.
func splitResources(entries resourceList) *Resources {
	r := &Resources{}
	for i := range entries {
		r.add(&entries[i])
	}
	r.sort()
	return r
}
