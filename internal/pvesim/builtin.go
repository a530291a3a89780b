package pvesim

import (
	"embed"
	"errors"
	"fmt"
)

//go:embed scenarios/*.yml
var builtinFiles embed.FS

// BuiltinNames lists the built-in scenarios.
var BuiltinNames = []string{"default", "large"}

// Builtin returns a built-in scenario:
//
//   - "default" (scenarios/default.yml) tells a story a balancer should read: five nodes and 61 guests; pve1
//     runs hot and holds both guests of the anti-affinity group exclude_db (a violation) and a VM with PCI
//     passthrough; pve2 holds an "ignore"-tagged guest and a template; pve3 a container with an unshared bind
//     mount; pve4 lacks the shared ceph-rbd storage; pve5 runs 22 small containers; four guests are HA-managed.
//   - "large" is generated: 64 nodes and 5,000 guests with mixed workloads, for benchmarks.
func Builtin(name string) (*Scenario, error) {
	switch name {
	case "default":
		data, err := builtinFiles.ReadFile("scenarios/default.yml")
		if err != nil {
			return nil, fmt.Errorf("reading built-in scenario: %w", err)
		}
		return ParseScenario(data, "builtin:default")
	case "large":
		return largeScenario(64, 5000)
	}
	return nil, fmt.Errorf("unknown built-in scenario %q (want one of %v)", name, BuiltinNames)
}

// largeScenario builds a deterministic cluster of nodes × guests. Every eighth node lacks the shared storage,
// one guest in 50 is a container, guests spread unevenly (the first nodes get more).
func largeScenario(nodes, guests int) (*Scenario, error) {
	s := &Scenario{
		Name: "large",
		Seed: 7,
		Storages: []StorageSpec{
			{ID: "local", Type: "dir", Content: "backup,iso,vztmpl", Size: 200 * GiB},
			{ID: "local-zfs", Type: "zfspool", Content: "images,rootdir", Size: 4 * TiB},
			{ID: "ceph", Type: "rbd", Shared: true, Content: "images,rootdir", Size: 500 * TiB},
		},
	}
	for i := range nodes {
		n := NodeSpec{Name: fmt.Sprintf("pve%03d", i+1), Cores: 64, Memory: 1 * TiB}
		if i%8 == 7 {
			n.Storages = []string{"local", "local-zfs"}
		}
		s.Nodes = append(s.Nodes, n)
	}
	kinds := []string{"constant", "diurnal", "bursty", "trending"}
	for i := range guests {
		h := mix(7, uint64(i))
		// Skew: a quarter of the guests crowd onto the first eight nodes.
		node := int(h % uint64(nodes))
		if i%4 == 0 {
			node = int(h % 8)
		}
		g := GuestSpec{
			VMID:   1000 + i,
			Name:   fmt.Sprintf("guest-%05d", i),
			Node:   s.Nodes[node].Name,
			Cores:  1 << (h >> 8 % 4),
			Memory: ByteSize(1<<(h>>12%5)) * GiB,
			Workload: WorkloadSpec{
				Kind:      kinds[h>>16%4],
				CPU:       0.05 + 0.4*unit(mix(h, 1)),
				Memory:    0.3 + 0.5*unit(mix(h, 2)),
				Amplitude: 0.1,
				Slope:     0.002,
			},
		}
		storage := "ceph"
		if node%8 == 7 || i%5 == 0 {
			storage = "local-zfs"
		}
		g.Disks = []DiskSpec{{Storage: storage, Size: 32 * GiB}}
		if i%50 == 0 {
			g.Type = "lxc"
			g.Memory = 1 * GiB
		}
		if i%97 == 0 {
			g.Tags = []string{fmt.Sprintf("exclude_grp%d", i%10)}
		}
		if i%211 == 0 {
			g.HA = "started"
		}
		s.Guests = append(s.Guests, g)
	}
	s.applyDefaults()
	if errs := s.validate(locator{file: "builtin:large"}); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}
