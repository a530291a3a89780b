package pvesim

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Scenario is the simulated cluster: its nodes, storages, guests with their workloads, and initial faults.
// Load one with LoadScenario/ParseScenario (strict YAML) or take a built-in one with Builtin.
type Scenario struct {
	// Name is the cluster name (/cluster/status).
	Name string `yaml:"name"`
	// PVEVersion selects the API profile: "9.x.y" (default 9.2.11) or "8.x.y".
	PVEVersion string `yaml:"pve_version"`
	// Seed makes workloads, PIDs and injected errors reproducible.
	Seed int64 `yaml:"seed"`
	// Start is the simulated time at start-up (RFC 3339); empty means the wall clock's now.
	Start string `yaml:"start"`
	// MigrationBandwidth is bytes per simulated second that a migration moves (default 1GiB).
	MigrationBandwidth ByteSize `yaml:"migration_bandwidth"`
	// LocalNode is the node that answers API calls (local: 1 in /cluster/status); default the first node.
	LocalNode string `yaml:"local_node"`
	// QDevice is the cluster's corosync QDevice; nil (the default) means none, and /cluster/config/qdevice
	// answers {} as PVE does then.
	QDevice *QDeviceSpec `yaml:"qdevice"`

	Nodes    []NodeSpec    `yaml:"nodes"`
	Storages []StorageSpec `yaml:"storages"`
	Guests   []GuestSpec   `yaml:"guests"`
	Faults   Faults        `yaml:"faults"`

	startTime time.Time
}

// NodeSpec is one cluster member.
type NodeSpec struct {
	Name    string `yaml:"name"`
	Cores   int    `yaml:"cores"`
	Sockets int    `yaml:"sockets"`
	// CPUs is the logical CPU count (default cores × sockets).
	CPUs   int      `yaml:"cpus"`
	Memory ByteSize `yaml:"memory"`
	// Storages lists the storage ids this node has; empty means all of them.
	Storages []string `yaml:"storages"`
	Base     NodeBase `yaml:"base"`
	IP       string   `yaml:"ip"`
	RootFS   ByteSize `yaml:"rootfs"`
}

// QDeviceSpec is a QDevice of corosync's model Net, as pvecm qdevice setup configures it: a QNetd server
// outside the cluster that lends a tie-breaking vote.
type QDeviceSpec struct {
	// Host is the QNetd server's address; /cluster/config/qdevice shows it with QNetd's port, "10.0.0.9:5403".
	Host string `yaml:"host"`
	// Algorithm is ffsplit (default; pvecm's choice for an even node count) or lms (its choice for an odd one).
	Algorithm string `yaml:"algorithm"`
	// State is corosync-qdevice's connection state as its status shows it (default "Connected"); any other
	// text, e.g. "Connect failed", is a QDevice that does not vote.
	State string `yaml:"state"`
}

// qdeviceAlgorithms maps the corosync.conf algorithm to the text corosync-qdevice's status shows for it.
var qdeviceAlgorithms = map[string]string{"ffsplit": "Fifty-Fifty split", "lms": "LMS"}

// NodeBase is a node's own load, on top of its guests'.
type NodeBase struct {
	// CPU is the share of all CPUs the host itself uses (0..1).
	CPU    float64  `yaml:"cpu"`
	Memory ByteSize `yaml:"memory"`
}

// StorageSpec is a storage definition (storage.cfg). Shared storages are reachable from every node that lists
// them; local ones exist once per node.
type StorageSpec struct {
	ID      string   `yaml:"id"`
	Type    string   `yaml:"type"`
	Shared  bool     `yaml:"shared"`
	Content string   `yaml:"content"`
	Size    ByteSize `yaml:"size"`
}

// GuestSpec is a VM (qemu) or container (lxc).
type GuestSpec struct {
	VMID   int      `yaml:"vmid"`
	Type   string   `yaml:"type"`
	Name   string   `yaml:"name"`
	Node   string   `yaml:"node"`
	Cores  int      `yaml:"cores"`
	Memory ByteSize `yaml:"memory"`
	// Disks are qemu disks (scsi0, scsi1…) or, for a container, its rootfs first.
	Disks []DiskSpec `yaml:"disks"`
	// Mounts are container mount points (mp0, mp1…).
	Mounts      []MountSpec     `yaml:"mounts"`
	Passthrough PassthroughSpec `yaml:"passthrough"`
	Tags        []string        `yaml:"tags"`
	// HA is the HA resource state (started, stopped, disabled, ignored); empty means not HA-managed.
	HA       string `yaml:"ha"`
	Template bool   `yaml:"template"`
	Onboot   bool   `yaml:"onboot"`
	Pool     string `yaml:"pool"`
	Lock     string `yaml:"lock"`
	// Status is running (default) or stopped; templates are always stopped.
	Status   string       `yaml:"status"`
	Workload WorkloadSpec `yaml:"workload"`
}

// DiskSpec is a volume on a storage.
type DiskSpec struct {
	Storage string   `yaml:"storage"`
	Size    ByteSize `yaml:"size"`
}

// MountSpec is a container mount point: either a bind mount of a host path or a volume on a storage.
type MountSpec struct {
	Bind    string   `yaml:"bind"`
	Storage string   `yaml:"storage"`
	Size    ByteSize `yaml:"size"`
	MP      string   `yaml:"mp"`
	// Shared marks a bind mount as available on every node (PVE's shared=1), so it does not pin the CT.
	Shared bool `yaml:"shared"`
}

// PassthroughSpec lists host devices given to a VM; any of them pins it to its node.
type PassthroughSpec struct {
	HostPCI []string `yaml:"hostpci"`
	USB     []string `yaml:"usb"`
	Serial  []string `yaml:"serial"`
}

// WorkloadSpec describes a guest's load over time. All shares are 0..1.
type WorkloadSpec struct {
	// Kind is constant, diurnal, bursty or trending.
	Kind string `yaml:"kind"`
	// CPU is the base share of the guest's cores in use.
	CPU float64 `yaml:"cpu"`
	// Memory is the share of the guest's memory in use.
	Memory float64 `yaml:"memory"`
	// Amplitude is the diurnal swing of CPU around CPU, peaking at PeakHour (UTC).
	Amplitude float64 `yaml:"amplitude"`
	PeakHour  float64 `yaml:"peak_hour"`
	// Burst is the extra CPU share during a burst; BurstChance the chance that a BurstEvery period starts with a
	// burst of BurstLength.
	Burst       float64  `yaml:"burst"`
	BurstChance float64  `yaml:"burst_chance"`
	BurstEvery  Duration `yaml:"burst_every"`
	BurstLength Duration `yaml:"burst_length"`
	// Slope and MemorySlope are the change of CPU and Memory per day since the scenario start (trending).
	Slope       float64 `yaml:"slope"`
	MemorySlope float64 `yaml:"memory_slope"`
	// Noise is the amplitude of per-minute jitter (default 0.02).
	Noise *float64 `yaml:"noise"`
	// Net and DiskIO are bytes per second at base load (each direction).
	Net    ByteSize `yaml:"net"`
	DiskIO ByteSize `yaml:"disk_io"`
}

// Faults are misbehaviours to simulate; the scenario sets the initial ones and /_sim/faults changes them.
type Faults struct {
	// Latency is added to every API answer; NodeLatency to answers about one node (/nodes/{node}/…).
	Latency     Duration            `yaml:"latency" json:"latency"`
	NodeLatency map[string]Duration `yaml:"node_latency" json:"node_latency,omitempty"`
	// ErrorRate is the share of GET requests that fail with a 500 or 503 (seeded).
	ErrorRate float64 `yaml:"error_rate" json:"error_rate"`
	// OfflineNodes answer 595 "no route to host" and show offline, their guests unknown.
	OfflineNodes []string `yaml:"offline_nodes" json:"offline_nodes,omitempty"`
	// ForbiddenNodes answer 403 to /nodes/{node}/… requests.
	ForbiddenNodes []string `yaml:"forbidden_nodes" json:"forbidden_nodes,omitempty"`
	// NodeErrors make a node answer every /nodes/{node}/… request with the given server error status
	// (500..599), as a node whose pvedaemon fails or whose proxy gives up does.
	NodeErrors map[string]int `yaml:"node_errors" json:"node_errors,omitempty"`
	// NoQuorum makes the cluster lose quorum: quorate 0, writes fail.
	NoQuorum bool `yaml:"no_quorum" json:"no_quorum"`
	// FailMigrations makes upcoming migrations fail mid-way; each entry is used up by one migration.
	FailMigrations []MigrationFault `yaml:"fail_migrations" json:"fail_migrations,omitempty"`
}

// MigrationFault fails the next migration of VMID (0: of any guest).
type MigrationFault struct {
	VMID int `yaml:"vmid" json:"vmid"`
}

// ScenarioError is a problem in a scenario file, located by file, line and field path.
type ScenarioError struct {
	File  string
	Line  int
	Field string
	Msg   string
}

func (e *ScenarioError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// LoadScenario reads and validates a scenario file.
func LoadScenario(file string) (*Scenario, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading scenario: %w", err)
	}
	return ParseScenario(data, file)
}

// ParseScenario decodes a scenario strictly (unknown fields are errors), applies defaults and validates it.
// name is used in error messages ("scenario.yml:42: guests[7].node: unknown node \"pve9\"").
func ParseScenario(data []byte, name string) (*Scenario, error) {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		return nil, yamlError(name, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &ScenarioError{File: name, Line: extra.Line, Msg: "more than one YAML document"}
	}
	if err := checkKnownFields(name, &root, reflect.TypeFor[Scenario](), ""); err != nil {
		return nil, err
	}
	var s Scenario
	if err := root.Decode(&s); err != nil {
		return nil, yamlError(name, err)
	}
	s.applyDefaults()
	if errs := s.validate(locator{file: name, root: &root}); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &s, nil
}

var yamlLineRE = regexp.MustCompile(`line (\d+): (.*)`)

// yamlError turns yaml.v3's "yaml: unmarshal errors:\n  line 3: cannot unmarshal…" into file:line errors.
func yamlError(file string, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		errs := make([]error, 0, len(te.Errors))
		for _, msg := range te.Errors {
			errs = append(errs, lineError(file, msg))
		}
		return errors.Join(errs...)
	}
	return lineError(file, strings.TrimPrefix(err.Error(), "yaml: "))
}

func lineError(file, msg string) error {
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &ScenarioError{File: file, Line: line, Msg: m[2]}
	}
	return &ScenarioError{File: file, Msg: msg}
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// checkKnownFields walks the YAML tree along the Go type and reports the first key that has no field, with
// its line and path, which yaml.v3's KnownFields does without the path.
func checkKnownFields(file string, n *yaml.Node, t reflect.Type, at string) error {
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil
		}
		return checkKnownFields(file, n.Content[0], t, at)
	}
	if n.Kind == yaml.AliasNode {
		return &ScenarioError{File: file, Line: n.Line, Field: at, Msg: "YAML aliases are not supported"}
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return nil // the decoder reports the type mismatch
		}
		fields := map[string]reflect.Type{}
		for i := range t.NumField() {
			f := t.Field(i)
			tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if tag != "" && tag != "-" {
				fields[tag] = f.Type
			}
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			ft, ok := fields[k.Value]
			if !ok {
				return &ScenarioError{File: file, Line: k.Line, Field: joinPath(at, k.Value), Msg: "unknown field"}
			}
			if err := checkKnownFields(file, v, ft, joinPath(at, k.Value)); err != nil {
				return err
			}
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return nil
		}
		for i, c := range n.Content {
			if err := checkKnownFields(file, c, t.Elem(), fmt.Sprintf("%s[%d]", at, i)); err != nil {
				return err
			}
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return nil
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := checkKnownFields(file, n.Content[i+1], t.Elem(), joinPath(at, n.Content[i].Value)); err != nil {
				return err
			}
		}
	}
	return nil
}

func joinPath(at, key string) string {
	if at == "" {
		return key
	}
	return at + "." + key
}

// locator finds the line of a field in the decoded YAML tree for validation errors.
type locator struct {
	file string
	root *yaml.Node
}

// errf builds an error for the field at path (keys are strings, list indexes ints).
func (l locator) errf(path []any, format string, args ...any) error {
	return &ScenarioError{File: l.file, Line: l.line(path), Field: fieldPath(path), Msg: fmt.Sprintf(format, args...)}
}

func (l locator) line(p []any) int {
	n := l.root
	if n == nil {
		return 0
	}
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, step := range p {
		var next *yaml.Node
		switch s := step.(type) {
		case string:
			if n.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(n.Content); i += 2 {
					if n.Content[i].Value == s {
						next = n.Content[i+1]
						line = n.Content[i].Line
					}
				}
			}
		case int:
			if n.Kind == yaml.SequenceNode && s < len(n.Content) {
				next = n.Content[s]
				line = next.Line
			}
		}
		if next == nil {
			return line
		}
		n = next
		if n.Kind == yaml.ScalarNode || n.Kind == yaml.SequenceNode && n.Style == yaml.FlowStyle {
			line = n.Line
		}
	}
	return line
}

func fieldPath(p []any) string {
	var b strings.Builder
	for _, s := range p {
		switch s := s.(type) {
		case string:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(s)
		case int:
			b.WriteString("[" + strconv.Itoa(s) + "]")
		}
	}
	return b.String()
}

// Defaults applied before validation.
const (
	defaultPVEVersion = "9.2.11"
	defaultNoise      = 0.02
)

func (s *Scenario) applyDefaults() {
	if s.Name == "" {
		s.Name = "sim"
	}
	if s.PVEVersion == "" {
		s.PVEVersion = defaultPVEVersion
	}
	if s.Seed == 0 {
		s.Seed = 1
	}
	if s.MigrationBandwidth == 0 {
		s.MigrationBandwidth = GiB
	}
	if q := s.QDevice; q != nil {
		if q.Algorithm == "" {
			q.Algorithm = "ffsplit"
		}
		if q.State == "" {
			q.State = "Connected"
		}
	}
	if len(s.Storages) == 0 {
		s.Storages = []StorageSpec{
			{ID: "local", Type: "dir", Content: "backup,iso,vztmpl"},
			{ID: "local-zfs", Type: "zfspool", Content: "images,rootdir"},
		}
	}
	for i := range s.Storages {
		st := &s.Storages[i]
		if st.Type == "" {
			st.Type = "dir"
		}
		if st.Content == "" {
			st.Content = "images,rootdir"
		}
		if st.Size == 0 {
			st.Size = TiB
		}
	}
	for i := range s.Nodes {
		n := &s.Nodes[i]
		if n.Cores == 0 {
			n.Cores = 8
		}
		if n.Sockets == 0 {
			n.Sockets = 1
		}
		if n.CPUs == 0 {
			n.CPUs = n.Cores * n.Sockets
		}
		if n.Memory == 0 {
			n.Memory = 64 * GiB
		}
		if n.RootFS == 0 {
			n.RootFS = 100 * GiB
		}
		if n.Base.CPU == 0 {
			n.Base.CPU = 0.02
		}
		if n.Base.Memory == 0 {
			n.Base.Memory = 2 * GiB
		}
		if n.IP == "" {
			n.IP = fmt.Sprintf("10.10.%d.%d", 10+i/250, 11+i%250)
		}
		if len(n.Storages) == 0 {
			for _, st := range s.Storages {
				n.Storages = append(n.Storages, st.ID)
			}
		}
	}
	if s.LocalNode == "" && len(s.Nodes) > 0 {
		s.LocalNode = s.Nodes[0].Name
	}
	for i := range s.Guests {
		g := &s.Guests[i]
		if g.Type == "" {
			g.Type = "qemu"
		}
		if g.Name == "" {
			g.Name = fmt.Sprintf("guest%d", g.VMID)
		}
		if g.Cores == 0 {
			g.Cores = 1
		}
		if g.Memory == 0 {
			g.Memory = 2 * GiB
			if g.Type == "lxc" {
				g.Memory = 512 * MiB
			}
		}
		if g.Status == "" {
			g.Status = "running"
		}
		if g.Template {
			g.Status = "stopped"
		}
		if len(g.Disks) == 0 {
			size := 32 * GiB
			if g.Type == "lxc" {
				size = 8 * GiB
			}
			g.Disks = []DiskSpec{{Storage: s.firstImageStorage(g.Node), Size: size}}
		}
		for j := range g.Disks {
			if g.Disks[j].Size == 0 {
				g.Disks[j].Size = 32 * GiB
			}
		}
		for j := range g.Mounts {
			if g.Mounts[j].Storage != "" && g.Mounts[j].Size == 0 {
				g.Mounts[j].Size = 8 * GiB
			}
		}
		w := &g.Workload
		if w.Kind == "" {
			w.Kind = "constant"
			if w.CPU == 0 {
				w.CPU = 0.1
			}
		}
		if w.Memory == 0 {
			w.Memory = 0.5
		}
		if w.Noise == nil {
			noise := defaultNoise
			w.Noise = &noise
		}
		if w.Net == 0 {
			w.Net = 64 * KiB
		}
		if w.DiskIO == 0 {
			w.DiskIO = 32 * KiB
		}
		if w.Kind == "bursty" {
			if w.BurstEvery == 0 {
				w.BurstEvery = Duration(30 * time.Minute)
			}
			if w.BurstLength == 0 {
				w.BurstLength = Duration(5 * time.Minute)
			}
			if w.BurstChance == 0 {
				w.BurstChance = 0.3
			}
			if w.Burst == 0 {
				w.Burst = 0.5
			}
		}
		if w.Kind == "diurnal" && w.PeakHour == 0 {
			w.PeakHour = 14
		}
	}
}

// firstImageStorage picks the node's first storage that can hold guest disks, for guests without disks.
func (s *Scenario) firstImageStorage(node string) string {
	var names []string
	for _, n := range s.Nodes {
		if n.Name == node {
			names = n.Storages
		}
	}
	for _, id := range names {
		for _, st := range s.Storages {
			if st.ID == id && strings.Contains(st.Content, "images") {
				return id
			}
		}
	}
	if len(names) > 0 {
		return names[0]
	}
	return "local"
}

var (
	nodeNameRE   = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$`)
	storageIDRE  = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9\-_.]*[a-zA-Z0-9]$`)
	pveVersionRE = regexp.MustCompile(`^([89])\.(\d+)\.(\d+)$`)
	guestNameRE  = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9.-]*[a-zA-Z0-9])?$`)
	tagRE        = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9_\-+.]*$`)
)

var (
	storageTypes = []string{"dir", "zfspool", "lvm", "lvmthin", "nfs", "cifs", "rbd", "cephfs", "pbs", "iscsi", "zfs", "btrfs", "glusterfs"}
	haStates     = []string{"", "started", "stopped", "disabled", "ignored"}
	lockValues   = []string{"", "backup", "clone", "create", "migrate", "rollback", "snapshot", "snapshot-delete", "suspended", "suspending", "disk", "mounted", "destroyed", "fstrim"}
	kinds        = []string{"constant", "diurnal", "bursty", "trending"}
)

// validate checks the scenario after defaults; every error names the file, line and field.
func (s *Scenario) validate(l locator) []error {
	var errs []error
	bad := func(p []any, format string, args ...any) { errs = append(errs, l.errf(p, format, args...)) }

	if m := pveVersionRE.FindStringSubmatch(s.PVEVersion); m == nil {
		bad([]any{"pve_version"}, "unsupported PVE version %q (want 8.x.y or 9.x.y)", s.PVEVersion)
	}
	if s.Start != "" {
		t, err := time.Parse(time.RFC3339, s.Start)
		if err != nil {
			bad([]any{"start"}, "not an RFC 3339 time: %q", s.Start)
		}
		s.startTime = t
	}
	if len(s.Nodes) == 0 {
		bad([]any{"nodes"}, "a cluster needs at least one node")
	}

	storages := map[string]*StorageSpec{}
	for i := range s.Storages {
		st := &s.Storages[i]
		p := []any{"storages", i}
		switch {
		case !storageIDRE.MatchString(st.ID):
			bad(append(p, "id"), "invalid storage id %q", st.ID)
		case storages[st.ID] != nil:
			bad(append(p, "id"), "duplicate storage %q", st.ID)
		}
		if !slices.Contains(storageTypes, st.Type) {
			bad(append(p, "type"), "unknown storage type %q", st.Type)
		}
		storages[st.ID] = st
	}

	nodes := map[string]*NodeSpec{}
	for i := range s.Nodes {
		n := &s.Nodes[i]
		p := []any{"nodes", i}
		switch {
		case !nodeNameRE.MatchString(n.Name):
			bad(append(p, "name"), "invalid node name %q", n.Name)
		case nodes[n.Name] != nil:
			bad(append(p, "name"), "duplicate node %q", n.Name)
		}
		nodes[n.Name] = n
		if n.Cores < 0 || n.Sockets < 0 || n.CPUs < n.Cores*n.Sockets/2 || n.CPUs > 4096 {
			bad(append(p, "cpus"), "cpus %d does not fit %d cores × %d sockets", n.CPUs, n.Cores, n.Sockets)
		}
		if n.Base.CPU < 0 || n.Base.CPU > 1 {
			bad(append(p, "base", "cpu"), "share %v is outside 0..1", n.Base.CPU)
		}
		if n.Base.Memory >= n.Memory {
			bad(append(p, "base", "memory"), "base memory %s is not below the node's %s", n.Base.Memory, n.Memory)
		}
		seen := map[string]bool{}
		for j, id := range n.Storages {
			if storages[id] == nil {
				bad(append(p, "storages", j), "unknown storage %q", id)
			}
			if seen[id] {
				bad(append(p, "storages", j), "storage %q listed twice", id)
			}
			seen[id] = true
		}
	}
	if s.LocalNode != "" && nodes[s.LocalNode] == nil {
		bad([]any{"local_node"}, "unknown node %q", s.LocalNode)
	}
	if q := s.QDevice; q != nil {
		if q.Host == "" || strings.ContainsAny(q.Host, " \t\n") {
			bad([]any{"qdevice", "host"}, "a QNetd host address is required, without spaces: %q", q.Host)
		}
		if _, ok := qdeviceAlgorithms[q.Algorithm]; !ok {
			bad([]any{"qdevice", "algorithm"}, "unknown algorithm %q (want ffsplit or lms)", q.Algorithm)
		}
		if strings.ContainsAny(q.State, "\n:") {
			bad([]any{"qdevice", "state"}, "state %q is not one line of status text", q.State)
		}
	}

	vmids := map[int]bool{}
	names := map[string]bool{}
	for i := range s.Guests {
		g := &s.Guests[i]
		p := []any{"guests", i}
		switch {
		case g.VMID < 100 || g.VMID > 999999999:
			bad(append(p, "vmid"), "vmid %d is outside 100..999999999", g.VMID)
		case vmids[g.VMID]:
			bad(append(p, "vmid"), "duplicate vmid %d", g.VMID)
		}
		vmids[g.VMID] = true
		switch {
		case !guestNameRE.MatchString(g.Name):
			bad(append(p, "name"), "invalid name %q (a DNS name)", g.Name)
		case names[g.Name]:
			bad(append(p, "name"), "duplicate name %q", g.Name)
		}
		names[g.Name] = true
		if g.Type != "qemu" && g.Type != "lxc" {
			bad(append(p, "type"), "unknown type %q (want qemu or lxc)", g.Type)
		}
		node := nodes[g.Node]
		if node == nil {
			bad(append(p, "node"), "unknown node %q", g.Node)
		}
		if g.Cores < 1 || g.Cores > 512 {
			bad(append(p, "cores"), "cores %d is outside 1..512", g.Cores)
		}
		if g.Memory < 16*MiB {
			bad(append(p, "memory"), "memory %s is below 16MiB", g.Memory)
		}
		checkStorage := func(fp []any, id string) {
			if storages[id] == nil {
				bad(fp, "unknown storage %q", id)
			} else if node != nil && !slices.Contains(node.Storages, id) {
				bad(fp, "storage %q is not available on node %q", id, g.Node)
			}
		}
		for j, d := range g.Disks {
			checkStorage(append(p, "disks", j, "storage"), d.Storage)
		}
		if len(g.Mounts) > 0 && g.Type != "lxc" {
			bad(append(p, "mounts"), "mount points are for containers (type lxc)")
		}
		for j, m := range g.Mounts {
			mp := append(p, "mounts", j)
			switch {
			case (m.Bind == "") == (m.Storage == ""):
				bad(mp, "set exactly one of bind and storage")
			case m.Bind != "" && !path.IsAbs(m.Bind):
				bad(append(mp, "bind"), "bind path %q is not absolute", m.Bind)
			case m.Storage != "":
				checkStorage(append(mp, "storage"), m.Storage)
			}
			if !path.IsAbs(m.MP) {
				bad(append(mp, "mp"), "mount path %q is not absolute", m.MP)
			}
		}
		if g.Type == "lxc" && len(g.Passthrough.HostPCI)+len(g.Passthrough.USB)+len(g.Passthrough.Serial) > 0 {
			bad(append(p, "passthrough"), "passthrough devices are for VMs (type qemu)")
		}
		for j, tag := range g.Tags {
			if !tagRE.MatchString(tag) {
				bad(append(p, "tags", j), "invalid tag %q", tag)
			}
		}
		if !slices.Contains(haStates, g.HA) {
			bad(append(p, "ha"), "unknown HA state %q (want started, stopped, disabled or ignored)", g.HA)
		}
		if !slices.Contains(lockValues, g.Lock) {
			bad(append(p, "lock"), "unknown lock %q", g.Lock)
		}
		if g.Status != "running" && g.Status != "stopped" {
			bad(append(p, "status"), "unknown status %q (want running or stopped)", g.Status)
		}
		if g.Pool != "" && !storageIDRE.MatchString(g.Pool) {
			bad(append(p, "pool"), "invalid pool name %q", g.Pool)
		}
		w := g.Workload
		wp := append(p, "workload")
		if !slices.Contains(kinds, w.Kind) {
			bad(append(wp, "kind"), "unknown workload %q (want constant, diurnal, bursty or trending)", w.Kind)
		}
		for _, f := range []struct {
			name string
			v    float64
		}{{"cpu", w.CPU}, {"memory", w.Memory}, {"amplitude", w.Amplitude}, {"burst", w.Burst}, {"burst_chance", w.BurstChance}, {"noise", *w.Noise}} {
			if f.v < 0 || f.v > 1 {
				bad(append(wp, f.name), "share %v is outside 0..1", f.v)
			}
		}
		if w.PeakHour < 0 || w.PeakHour >= 24 {
			bad(append(wp, "peak_hour"), "hour %v is outside 0..24", w.PeakHour)
		}
		if w.Kind == "bursty" && w.BurstLength > w.BurstEvery {
			bad(append(wp, "burst_length"), "burst_length %s is longer than burst_every %s", time.Duration(w.BurstLength), time.Duration(w.BurstEvery))
		}
	}

	if s.Faults.ErrorRate < 0 || s.Faults.ErrorRate > 1 {
		bad([]any{"faults", "error_rate"}, "rate %v is outside 0..1", s.Faults.ErrorRate)
	}
	for field, list := range map[string][]string{"offline_nodes": s.Faults.OfflineNodes, "forbidden_nodes": s.Faults.ForbiddenNodes} {
		for j, n := range list {
			if nodes[n] == nil {
				bad([]any{"faults", field, j}, "unknown node %q", n)
			}
		}
	}
	for n := range s.Faults.NodeLatency {
		if nodes[n] == nil {
			bad([]any{"faults", "node_latency", n}, "unknown node %q", n)
		}
	}
	for n, code := range s.Faults.NodeErrors {
		if nodes[n] == nil {
			bad([]any{"faults", "node_errors", n}, "unknown node %q", n)
		} else if !serverError(code) {
			bad([]any{"faults", "node_errors", n}, "status %d is not a server error (500..599)", code)
		}
	}
	for j, f := range s.Faults.FailMigrations {
		if f.VMID != 0 && !vmids[f.VMID] {
			bad([]any{"faults", "fail_migrations", j, "vmid"}, "unknown vmid %d", f.VMID)
		}
	}
	return errs
}

// pveMajor is 8 or 9.
func (s *Scenario) pveMajor() int {
	if strings.HasPrefix(s.PVEVersion, "8.") {
		return 8
	}
	return 9
}

// Revalidate checks the scenario again after a program changed its fields (e.g. command-line overrides).
func (s *Scenario) Revalidate() error {
	if errs := s.validate(locator{file: "scenario"}); len(errs) > 0 {
		return errors.Join(errs...)
	}
	return nil
}

// StartTime is the configured simulated start time; zero means "now".
func (s *Scenario) StartTime() time.Time { return s.startTime }
