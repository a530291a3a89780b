package pvesimtest

import (
	"strings"
	"testing"
)

func TestCompareShape(t *testing.T) {
	tests := []struct {
		name      string
		want, got string
		opts      ShapeOptions
		diffs     []string
	}{
		{"equal shapes, different values", `{"a":1,"b":"x","c":[1,2]}`, `{"a":7,"b":"y","c":[3]}`, ShapeOptions{}, nil},
		{"type mismatch", `{"a":"1"}`, `{"a":1}`, ShapeOptions{}, []string{".a: want string, got number"}},
		{"boolean is not 0/1", `{"a":0}`, `{"a":false}`, ShapeOptions{}, []string{".a: want number, got boolean"}},
		{"missing key", `{"a":1,"b":2}`, `{"a":1}`, ShapeOptions{}, []string{`(root): missing key "b"`}},
		{"optional key", `{"a":1,"b":2}`, `{"a":1}`, ShapeOptions{Optional: []string{"b"}}, nil},
		{"unexpected key", `{"a":1}`, `{"a":1,"z":2}`, ShapeOptions{}, []string{`(root): unexpected key "z"`}},
		{"allowed extra", `{"a":1}`, `{"a":1,"z":2}`, ShapeOptions{Extra: []string{"z"}}, nil},
		{"union of array elements", `[{"a":1,"t":"x"},{"a":2}]`, `[{"a":1},{"a":1,"t":"y"}]`, ShapeOptions{}, nil},
		{"array element type", `{"l":["a"]}`, `{"l":["a",1]}`, ShapeOptions{}, []string{".l[1]: want string, got number"}},
		{"grouped by type", `[{"type":"node","cpu":1},{"type":"storage","plugintype":"dir"}]`,
			`[{"type":"storage","plugintype":"dir"},{"type":"node","cpu":0.5},{"type":"sdn","sdn":"x"}]`, ShapeOptions{GroupBy: "type"}, nil},
		{"grouped mismatch", `[{"type":"node","cpu":1}]`, `[{"type":"node","plugintype":"dir"}]`, ShapeOptions{GroupBy: "type"},
			[]string{`[0]: missing key "cpu"`, `[0]: unexpected key "plugintype"`}},
		{"type alias", `[{"type":"qemu","vmid":1}]`, `[{"type":"lxc","vmid":2,"x":1}]`, ShapeOptions{GroupBy: "type", TypeAlias: map[string]string{"lxc": "qemu"}},
			[]string{`[0]: unexpected key "x"`}},
		{"data-keyed map", `{"nodes":{"n1":{"a":1}}}`, `{"nodes":{"p1":{"a":2},"p2":{"a":"3"}}}`, ShapeOptions{Maps: []string{"nodes"}},
			[]string{`.nodes{}[1].a: want number, got string`}},
		{"retype", `{"vmid":"100"}`, `{"vmid":100}`, ShapeOptions{Retype: map[string]string{"vmid": "number"}}, nil},
		{"null", `{"data":null}`, `{"data":{}}`, ShapeOptions{}, []string{".data: want null, got object"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want, err := DecodeJSON([]byte(tc.want))
			if err != nil {
				t.Fatal(err)
			}
			got, err := DecodeJSON([]byte(tc.got))
			if err != nil {
				t.Fatal(err)
			}
			diffs := CompareShape(want, got, tc.opts)
			if strings.Join(diffs, "\n") != strings.Join(tc.diffs, "\n") {
				t.Errorf("diffs:\n%s\nwant:\n%s", strings.Join(diffs, "\n"), strings.Join(tc.diffs, "\n"))
			}
		})
	}
}
