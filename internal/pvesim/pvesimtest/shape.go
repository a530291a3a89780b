package pvesimtest

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// ShapeOptions loosen CompareShape where real responses legitimately differ.
type ShapeOptions struct {
	// Extra keys may appear in got though want lacks them (version-dependent or optional keys), by key name.
	Extra []string
	// Optional keys of want may be missing from got, by key name.
	Optional []string
	// Maps are objects keyed by data (node names, drive names): their values are compared with each other's
	// shape, not their keys.
	Maps []string
	// Retype expects another JSON type than want's for a key, where want shows an old PVE's bug, e.g.
	// {"vmid": "number"} for PVE 7.4's string vmids in the LXC list.
	Retype map[string]string
	// GroupBy names a key (usually "type") that splits arrays of objects into kinds: each got element is
	// compared with want's elements of the same kind; kinds want has no example of are skipped.
	GroupBy string
	// TypeAlias maps a kind to the kind of want's examples to compare it with, e.g. {"lxc": "qemu"}.
	TypeAlias map[string]string
}

// CompareShape compares two decoded JSON documents by shape: the same keys and the same JSON value types
// (string, number, boolean, array, object, null), recursively. Array elements are compared with the union of
// want's elements (keys that only some of want's elements have are optional), per kind with GroupBy. It
// returns one line per difference, empty when equal.
func CompareShape(want, got any, opts ShapeOptions) []string {
	var diffs []string
	compareShape("", want, got, &opts, &diffs)
	return diffs
}

// DecodeJSON decodes JSON for CompareShape, keeping numbers as json.Number.
func DecodeJSON(b []byte) (any, error) {
	var v any
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case json.Number, float64, int:
		return "number"
	case bool:
		return "boolean"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

func compareShape(path string, want, got any, o *ShapeOptions, diffs *[]string) {
	wk, gk := jsonKind(want), jsonKind(got)
	if k, ok := o.Retype[lastKey(path)]; ok {
		wk = k
	}
	if wk != gk {
		*diffs = append(*diffs, fmt.Sprintf("%s: want %s, got %s", orRoot(path), wk, gk))
		return
	}
	switch w := want.(type) {
	case map[string]any:
		g := got.(map[string]any)
		if slices.Contains(o.Maps, lastKey(path)) {
			compareMapValues(path, w, g, o, diffs)
			return
		}
		compareObject(path, w, g, nil, o, diffs)
	case []any:
		compareArray(path, w, got.([]any), o, diffs)
	}
}

func compareObject(path string, w, g map[string]any, optional map[string]bool, o *ShapeOptions, diffs *[]string) {
	for _, k := range sortedKeys(w) {
		gv, ok := g[k]
		if !ok {
			if !optional[k] && !slices.Contains(o.Optional, k) {
				*diffs = append(*diffs, fmt.Sprintf("%s: missing key %q", orRoot(path), k))
			}
			continue
		}
		compareShape(path+"."+k, w[k], gv, o, diffs)
	}
	for _, k := range sortedKeys(g) {
		if _, ok := w[k]; !ok && !slices.Contains(o.Extra, k) {
			*diffs = append(*diffs, fmt.Sprintf("%s: unexpected key %q", orRoot(path), k))
		}
	}
}

// compareMapValues checks every value of a data-keyed object against the union of want's values.
func compareMapValues(path string, w, g map[string]any, o *ShapeOptions, diffs *[]string) {
	var wvals, gvals []any
	for _, k := range sortedKeys(w) {
		wvals = append(wvals, w[k])
	}
	for _, k := range sortedKeys(g) {
		gvals = append(gvals, g[k])
	}
	if len(wvals) == 0 {
		return
	}
	compareArray(path+"{}", wvals, gvals, o, diffs)
}

func compareArray(path string, w, g []any, o *ShapeOptions, diffs *[]string) {
	if len(w) == 0 {
		return
	}
	// Group want's object elements by kind so that node entries are not compared with storage entries.
	groups := map[string][]map[string]any{}
	var scalars []any
	for _, e := range w {
		if m, ok := e.(map[string]any); ok {
			t, _ := m[o.GroupBy].(string)
			groups[t] = append(groups[t], m)
		} else {
			scalars = append(scalars, e)
		}
	}
	for i, e := range g {
		p := fmt.Sprintf("%s[%d]", path, i)
		m, ok := e.(map[string]any)
		if !ok || len(groups) == 0 {
			if len(scalars) > 0 {
				compareShape(p, scalars[0], e, o, diffs)
			} else {
				compareShape(p, w[0], e, o, diffs)
			}
			continue
		}
		t, _ := m[o.GroupBy].(string)
		if a, ok := o.TypeAlias[t]; ok {
			t = a
		}
		examples, ok := groups[t]
		if !ok {
			continue // a kind want has no example of
		}
		union, optional := unionObjects(examples)
		compareObject(p, union, m, optional, o, diffs)
	}
}

// unionObjects merges example objects: every key any of them has, optional unless all have it.
func unionObjects(examples []map[string]any) (map[string]any, map[string]bool) {
	union := map[string]any{}
	count := map[string]int{}
	for _, e := range examples {
		for k, v := range e {
			if _, ok := union[k]; !ok {
				union[k] = v
			}
			count[k]++
		}
	}
	optional := map[string]bool{}
	for k, n := range count {
		if n < len(examples) {
			optional[k] = true
		}
	}
	return union, optional
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func lastKey(path string) string {
	i := strings.LastIndexByte(path, '.')
	return path[i+1:]
}

func orRoot(p string) string {
	if p == "" {
		return "(root)"
	}
	return p
}
