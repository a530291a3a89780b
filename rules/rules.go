// Package rules holds ProxBalance's Prometheus recording and alerting rules (the YAML files beside this source)
// and reads them back: it lists the metric names their expressions use, so that tests of the exporter can
// prove it emits every series the rules need, and tests of the dashboards can tell recorded names from raw ones.
package rules

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// File is a Prometheus rule file.
type File struct {
	Path   string `yaml:"-"`
	Groups []Group
}

// Group is a rule group.
type Group struct {
	Name        string
	Interval    string
	QueryOffset string
	Limit       int
	Labels      map[string]string
	Rules       []Rule
	Line        int // where the group starts in its file
}

// Rule is a recording rule (Record set) or an alerting rule (Alert set).
type Rule struct {
	Record        string
	Alert         string
	Expr          string
	For           string
	KeepFiringFor string
	Labels        map[string]string
	Annotations   map[string]string
	Line          int // where the rule starts in its file
}

// Name is the recorded metric's name or the alert's name.
func (r Rule) Name() string {
	if r.Record != "" {
		return r.Record
	}
	return r.Alert
}

// Load parses every rule file (*.yml, *.yaml) directly in dir, in name order; subdirectories such as the
// promtool tests are not rule files.
func Load(dir string) ([]File, error) {
	var paths []string
	for _, pattern := range []string{"*.yml", "*.yaml"} {
		matches, err := filepath.Glob(filepath.Join(dir, pattern))
		if err != nil {
			return nil, fmt.Errorf("listing rule files in %s: %w", dir, err)
		}
		paths = append(paths, matches...)
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("no rule files (*.yml, *.yaml) in %s", dir)
	}
	slices.Sort(paths)
	files := make([]File, 0, len(paths))
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("reading rule file: %w", err)
		}
		f, err := Parse(path, data)
		if err != nil {
			return nil, err
		}
		files = append(files, *f)
	}
	return files, nil
}

// Parse decodes one rule file strictly: unknown fields, rules that are neither or both of record and alert,
// empty expressions and expressions whose metric names cannot be listed are errors naming the file and line.
func Parse(path string, data []byte) (*File, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: empty rule file", path)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f := &File{Path: path}
	doc := &root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		doc = doc.Content[0]
	}
	if err := decodeMapping(doc, "rule file", map[string]func(*yaml.Node) error{
		"groups": func(n *yaml.Node) error { return decodeSeq(n, "groups", &f.Groups, decodeGroup) },
	}); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(f.Groups) == 0 {
		return nil, fmt.Errorf("%s: no rule groups", path)
	}
	return f, nil
}

func decodeGroup(n *yaml.Node, g *Group) error {
	g.Line = n.Line
	err := decodeMapping(n, "group", map[string]func(*yaml.Node) error{
		"name":         scalar(&g.Name),
		"interval":     scalar(&g.Interval),
		"query_offset": scalar(&g.QueryOffset),
		"limit":        func(v *yaml.Node) error { return v.Decode(&g.Limit) },
		"labels":       stringMap(&g.Labels),
		"rules":        func(v *yaml.Node) error { return decodeSeq(v, "rules", &g.Rules, decodeRule) },
	})
	if err != nil {
		return err
	}
	if g.Name == "" {
		return fmt.Errorf("line %d: group without a name", n.Line)
	}
	return nil
}

func decodeRule(n *yaml.Node, r *Rule) error {
	r.Line = n.Line
	err := decodeMapping(n, "rule", map[string]func(*yaml.Node) error{
		"record":          scalar(&r.Record),
		"alert":           scalar(&r.Alert),
		"expr":            scalar(&r.Expr),
		"for":             scalar(&r.For),
		"keep_firing_for": scalar(&r.KeepFiringFor),
		"labels":          stringMap(&r.Labels),
		"annotations":     stringMap(&r.Annotations),
	})
	if err != nil {
		return err
	}
	switch {
	case r.Record == "" && r.Alert == "":
		return fmt.Errorf("line %d: rule has neither record nor alert", n.Line)
	case r.Record != "" && r.Alert != "":
		return fmt.Errorf("line %d: rule has both record %q and alert %q", n.Line, r.Record, r.Alert)
	case strings.TrimSpace(r.Expr) == "":
		return fmt.Errorf("line %d: rule %s has no expr", n.Line, r.Name())
	}
	if _, err := ExprMetricNames(r.Expr); err != nil {
		return fmt.Errorf("line %d: rule %s: expr: %w", n.Line, r.Name(), err)
	}
	return nil
}

// decodeMapping walks a mapping node, rejecting keys that have no field.
func decodeMapping(n *yaml.Node, what string, fields map[string]func(*yaml.Node) error) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: %s must be a mapping", n.Line, what)
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		decode, ok := fields[key.Value]
		if !ok {
			return fmt.Errorf("line %d: unknown field %q in %s", key.Line, key.Value, what)
		}
		if seen[key.Value] {
			return fmt.Errorf("line %d: field %q repeated in %s", key.Line, key.Value, what)
		}
		seen[key.Value] = true
		if err := decode(val); err != nil {
			var te *yaml.TypeError
			if errors.As(err, &te) {
				return fmt.Errorf("line %d: field %q: %s", val.Line, key.Value, strings.Join(te.Errors, "; "))
			}
			return err
		}
	}
	return nil
}

func decodeSeq[T any](n *yaml.Node, what string, out *[]T, decode func(*yaml.Node, *T) error) error {
	if n.Kind != yaml.SequenceNode {
		return fmt.Errorf("line %d: %s must be a list", n.Line, what)
	}
	*out = make([]T, len(n.Content))
	for i, item := range n.Content {
		if err := decode(item, &(*out)[i]); err != nil {
			return err
		}
	}
	return nil
}

func scalar(dst *string) func(*yaml.Node) error {
	return func(n *yaml.Node) error {
		if n.Kind != yaml.ScalarNode {
			return fmt.Errorf("line %d: expected a string", n.Line)
		}
		*dst = n.Value
		return nil
	}
}

func stringMap(dst *map[string]string) func(*yaml.Node) error {
	return func(n *yaml.Node) error {
		if n.Kind != yaml.MappingNode {
			return fmt.Errorf("line %d: expected a mapping of strings", n.Line)
		}
		*dst = make(map[string]string, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if v.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: value of %q must be a string", v.Line, k.Value)
			}
			(*dst)[k.Value] = v.Value
		}
		return nil
	}
}

// MetricNames returns, sorted, the metric names that the rules in dir read but do not record themselves: the
// series that must come from scrapes. They are the exporter's pve_* families plus the balancer's
// proxbalance_* series (for example proxbalance_node_maintenance); a check of the exporter skips the latter.
func MetricNames(dir string) ([]string, error) {
	files, err := Load(dir)
	if err != nil {
		return nil, err
	}
	recorded := map[string]bool{}
	for _, name := range recordedNames(files) {
		recorded[name] = true
	}
	var names []string
	for path, r := range allRules(files) {
		used, err := ExprMetricNames(r.Expr)
		if err != nil {
			// Parse has already checked every expression; this only guards a future change.
			return nil, fmt.Errorf("%s: line %d: rule %s: expr: %w", path, r.Line, r.Name(), err)
		}
		for _, name := range used {
			if !recorded[name] {
				names = append(names, name)
			}
		}
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// RecordedNames returns, sorted, the names of the series that the recording rules in dir record.
func RecordedNames(dir string) ([]string, error) {
	files, err := Load(dir)
	if err != nil {
		return nil, err
	}
	return recordedNames(files), nil
}

func recordedNames(files []File) []string {
	var names []string
	for _, r := range allRules(files) {
		if r.Record != "" {
			names = append(names, r.Record)
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// allRules yields every rule of files with the path of its file.
func allRules(files []File) iter.Seq2[string, Rule] {
	return func(yield func(string, Rule) bool) {
		for _, f := range files {
			for _, g := range f.Groups {
				for _, r := range g.Rules {
					if !yield(f.Path, r) {
						return
					}
				}
			}
		}
	}
}
