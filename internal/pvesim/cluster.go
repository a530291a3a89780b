package pvesim

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// repoIDs are the pve-manager git ids of versions the simulator knows; others get a stable made-up id.
var repoIDs = map[string]string{"9.2.11": "f6997e698c7933ea"}

func (s *Simulator) repoID() string {
	if id, ok := repoIDs[s.scn.PVEVersion]; ok {
		return id
	}
	h := sha1.Sum([]byte(s.scn.PVEVersion))
	return hex.EncodeToString(h[:8])
}

func (s *Simulator) getVersion(_ *call, _ time.Time) (any, error) {
	v := s.scn.PVEVersion
	return obj{"version": v, "release": v[:strings.LastIndexByte(v, '.')], "repoid": s.repoID()}, nil
}

func (s *Simulator) quorate() bool { return !s.faults.NoQuorum }

func (s *Simulator) getClusterStatus(_ *call, _ time.Time) (any, error) {
	out := []obj{{
		"type": "cluster", "id": "cluster", "name": s.scn.Name, "nodes": len(s.nodes),
		"version": 3 + len(s.nodes), "quorate": b01(s.quorate()),
	}}
	for _, n := range s.nodes {
		out = append(out, obj{
			"type": "node", "id": "node/" + n.spec.Name, "name": n.spec.Name, "nodeid": n.nodeID,
			"local": b01(n.spec.Name == s.scn.LocalNode), "online": b01(s.nodeOnline(n.spec.Name)),
			"ip": n.spec.IP, "level": "",
		})
	}
	return out, nil
}

// Resource entries, as structs: /cluster/resources is the one large answer, and struct encoding is cheaper
// than maps.
type resGuest struct {
	ID        string  `json:"id"`
	Type      string  `json:"type"`
	VMID      int     `json:"vmid"`
	Name      string  `json:"name"`
	Node      string  `json:"node"`
	Status    string  `json:"status"`
	CPU       float64 `json:"cpu"`
	MaxCPU    int     `json:"maxcpu"`
	Mem       uint64  `json:"mem"`
	MaxMem    uint64  `json:"maxmem"`
	MemHost   *uint64 `json:"memhost,omitempty"`
	Disk      uint64  `json:"disk"`
	MaxDisk   uint64  `json:"maxdisk"`
	DiskRead  uint64  `json:"diskread"`
	DiskWrite uint64  `json:"diskwrite"`
	NetIn     uint64  `json:"netin"`
	NetOut    uint64  `json:"netout"`
	Uptime    uint64  `json:"uptime"`
	Template  int     `json:"template"`
	Tags      string  `json:"tags,omitempty"`
	Lock      string  `json:"lock,omitempty"`
	HAState   string  `json:"hastate,omitempty"`
	Pool      string  `json:"pool,omitempty"`
}

type resNode struct {
	ID         string  `json:"id"`
	Type       string  `json:"type"`
	Node       string  `json:"node"`
	Status     string  `json:"status"`
	CPU        float64 `json:"cpu"`
	MaxCPU     int     `json:"maxcpu"`
	Mem        uint64  `json:"mem"`
	MaxMem     uint64  `json:"maxmem"`
	Disk       uint64  `json:"disk"`
	MaxDisk    uint64  `json:"maxdisk"`
	Uptime     uint64  `json:"uptime"`
	Level      string  `json:"level"`
	CgroupMode int     `json:"cgroup-mode"`
}

// resNodeOffline is what PVE still knows about a node it cannot reach.
type resNodeOffline struct {
	ID     string `json:"id"`
	Type   string `json:"type"`
	Node   string `json:"node"`
	Status string `json:"status"`
	Level  string `json:"level"`
	MaxCPU int    `json:"maxcpu"`
	MaxMem uint64 `json:"maxmem"`
}

type resStorage struct {
	ID         string `json:"id"`
	Type       string `json:"type"`
	Storage    string `json:"storage"`
	Node       string `json:"node"`
	Status     string `json:"status"`
	PluginType string `json:"plugintype"`
	Shared     int    `json:"shared"`
	Content    string `json:"content"`
	Disk       uint64 `json:"disk"`
	MaxDisk    uint64 `json:"maxdisk"`
}

type resKeyed struct {
	ID     string `json:"id"`
	Type   string `json:"type"`
	Pool   string `json:"pool,omitempty"`
	SDN    string `json:"sdn,omitempty"`
	Node   string `json:"node,omitempty"`
	Status string `json:"status,omitempty"`
}

type resourcesKey struct {
	at  time.Time
	gen uint64
}

func (s *Simulator) getClusterResources(c *call, now time.Time) (any, error) {
	filter := c.params["type"]
	key := resourcesKey{at: statsTime(now), gen: s.generation}
	if s.resCacheAt != key || s.resCache == nil {
		s.resCache, s.resCacheAt = map[string][]byte{}, key
	}
	if b, ok := s.resCache[filter]; ok {
		return jsonBody(b), nil
	}
	b, err := json.Marshal(s.resources(filter, now))
	if err != nil {
		return nil, fmt.Errorf("encoding resources: %w", err)
	}
	s.resCache[filter] = b
	return jsonBody(b), nil
}

func (s *Simulator) resources(filter string, now time.Time) []any {
	snap := s.snapshotAt(now)
	out := make([]any, 0, len(s.guests)+len(s.nodes)*(1+len(s.storages)))
	if filter == "" || filter == "vm" {
		for i, g := range s.guests {
			out = append(out, s.resourceGuest(g, &snap.guests[i]))
		}
	}
	if filter == "" || filter == "node" {
		for i, n := range s.nodes {
			ns := &snap.nodes[i]
			if !ns.online {
				out = append(out, resNodeOffline{ID: "node/" + n.spec.Name, Type: "node", Node: n.spec.Name, Status: "offline", MaxCPU: n.spec.CPUs, MaxMem: uint64(n.spec.Memory)})
				continue
			}
			out = append(out, resNode{
				ID: "node/" + n.spec.Name, Type: "node", Node: n.spec.Name, Status: "online", CPU: round(ns.cpu, 6),
				MaxCPU: n.spec.CPUs, Mem: ns.mem, MaxMem: uint64(n.spec.Memory), Disk: ns.rootUsed, MaxDisk: uint64(n.spec.RootFS),
				Uptime: ns.uptime, CgroupMode: 2,
			})
		}
	}
	if filter == "" || filter == "storage" {
		usage := s.storageUsage()
		for i, n := range s.nodes {
			for _, st := range s.scn.Storages {
				if !n.storages[st.ID] {
					continue
				}
				e := resStorage{ID: "storage/" + n.spec.Name + "/" + st.ID, Type: "storage", Storage: st.ID, Node: n.spec.Name,
					Status: "available", PluginType: st.Type, Shared: b01(st.Shared), Content: st.Content}
				if snap.nodes[i].online {
					e.Disk, e.MaxDisk = s.storageUsed(usage, st, n.spec.Name), uint64(st.Size)
				} else {
					e.Status = "unknown"
				}
				out = append(out, e)
			}
		}
	}
	if filter == "" || filter == "pool" {
		for _, p := range s.pools() {
			out = append(out, resKeyed{ID: "/pool/" + p, Type: "pool", Pool: p})
		}
	}
	if filter == "" || filter == "sdn" {
		for i, n := range s.nodes {
			st := "ok"
			if !snap.nodes[i].online {
				st = "unknown"
			}
			out = append(out, resKeyed{ID: "sdn/" + n.spec.Name + "/localnetwork", Type: "sdn", SDN: "localnetwork", Node: n.spec.Name, Status: st})
		}
	}
	return out
}

func (s *Simulator) resourceGuest(g *simGuest, st *guestStats) resGuest {
	e := resGuest{
		ID: g.spec.Type + "/" + strconv.Itoa(g.spec.VMID), Type: g.spec.Type, VMID: g.spec.VMID, Name: g.spec.Name,
		Node: g.node, Status: st.status, CPU: round(st.cpu, 6), MaxCPU: g.spec.Cores, Mem: st.mem, MaxMem: uint64(g.spec.Memory),
		Disk: st.disk, MaxDisk: maxDisk(g), DiskRead: st.dread, DiskWrite: st.dwrite, NetIn: st.netin, NetOut: st.netout,
		Uptime: st.uptime, Template: b01(g.spec.Template), Tags: strings.Join(g.spec.Tags, ";"), Lock: g.lock,
		HAState: g.spec.HA, Pool: g.spec.Pool,
	}
	if s.major >= 9 && g.spec.Type == "qemu" {
		mh := st.memhost
		e.MemHost = &mh
	}
	return e
}

func (s *Simulator) pools() []string {
	seen := map[string]bool{}
	var out []string
	for _, g := range s.guests {
		if g.spec.Pool != "" && !seen[g.spec.Pool] {
			seen[g.spec.Pool] = true
			out = append(out, g.spec.Pool)
		}
	}
	sort.Strings(out)
	return out
}

func (s *Simulator) getPools(c *call, _ time.Time) (any, error) {
	out := []obj{}
	for _, p := range s.pools() {
		if id := c.params["poolid"]; id != "" && id != p {
			continue
		}
		out = append(out, obj{"poolid": p})
	}
	return out, nil
}

func haSID(g *simGuest) string {
	if g.spec.Type == "lxc" {
		return "ct:" + strconv.Itoa(g.spec.VMID)
	}
	return "vm:" + strconv.Itoa(g.spec.VMID)
}

func (s *Simulator) haGuests() []*simGuest {
	var out []*simGuest
	for _, g := range s.guests {
		if g.spec.HA != "" {
			out = append(out, g)
		}
	}
	return out
}

// haDigest is the digest of the HA resources config: it changes with the set of resources.
func (s *Simulator) haDigest() string {
	h := sha1.New()
	for _, g := range s.haGuests() {
		fmt.Fprintf(h, "%s: %s\n\tstate %s\n", g.spec.Type, haSID(g), g.spec.HA)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (s *Simulator) getHAResources(c *call, _ time.Time) (any, error) {
	out := []obj{}
	digest := s.haDigest()
	for _, g := range s.haGuests() {
		typ := map[string]string{"qemu": "vm", "lxc": "ct"}[g.spec.Type]
		if f := c.params["type"]; f != "" && f != typ {
			continue
		}
		out = append(out, obj{"sid": haSID(g), "type": typ, "state": g.spec.HA, "max_restart": 1, "digest": digest})
	}
	return out, nil
}

// perlTime formats like Perl's scalar(localtime), which HA status strings use.
func perlTime(t time.Time) string { return t.UTC().Format("Mon Jan _2 15:04:05 2006") }

func (s *Simulator) getHAStatus(_ *call, now time.Time) (any, error) {
	local := s.scn.LocalNode
	quorum := obj{"id": "quorum", "type": "quorum", "node": local, "status": "OK", "quorate": 1}
	if !s.quorate() {
		quorum["status"], quorum["quorate"] = "No quorum on node '"+local+"'!", 0
	}
	out := []obj{quorum}
	ha := s.haGuests()
	if len(ha) == 0 {
		return out, nil
	}
	master := s.nodes[0].spec.Name
	for _, n := range s.nodes {
		if s.nodeOnline(n.spec.Name) {
			master = n.spec.Name
			break
		}
	}
	ts := now.Add(-3 * time.Second).Truncate(time.Second)
	out = append(out, obj{"id": "master", "type": "master", "node": master,
		"status": fmt.Sprintf("%s (active, %s)", master, perlTime(ts)), "timestamp": ts.Unix()})
	if s.major >= 9 {
		out = append(out, obj{"id": "fencing", "type": "fencing", "node": master, "status": "armed (CRM watchdog active)", "armed-state": "armed"})
	}
	active := map[string]bool{}
	for _, g := range ha {
		active[g.node] = true
	}
	for _, n := range s.nodes {
		name := n.spec.Name
		e := obj{"id": "lrm:" + name, "type": "lrm", "node": name, "timestamp": ts.Unix()}
		switch {
		case !s.nodeOnline(name):
			old := ts.Add(-5 * time.Minute)
			e["status"], e["timestamp"] = fmt.Sprintf("%s (old timestamp - dead?, %s)", name, perlTime(old)), old.Unix()
		case active[name]:
			e["status"] = fmt.Sprintf("%s (active, watchdog active, %s)", name, perlTime(ts))
		default:
			e["status"] = fmt.Sprintf("%s (idle, watchdog standby, %s)", name, perlTime(ts))
		}
		out = append(out, e)
	}
	for _, g := range ha {
		state := g.spec.HA
		if g.lock == "migrate" {
			state = "migrate"
		}
		out = append(out, obj{"id": "service:" + haSID(g), "type": "service", "sid": haSID(g), "node": g.node,
			"crm_state": state, "state": state, "status": fmt.Sprintf("%s (%s, %s)", haSID(g), g.node, state),
			"request_state": g.spec.HA, "max_restart": 1, "max_relocate": 1})
	}
	return out, nil
}

func (s *Simulator) getNotBackedUp(_ *call, _ time.Time) (any, error) {
	out := []obj{}
	for _, g := range s.guests {
		if !g.spec.Template {
			out = append(out, obj{"vmid": g.spec.VMID, "name": g.spec.Name, "type": g.spec.Type})
		}
	}
	return out, nil
}

var (
	auditorPrivs = []string{"Datastore.Audit", "Mapping.Audit", "Pool.Audit", "SDN.Audit", "Sys.Audit", "VM.Audit"}
	adminPrivs   = []string{
		"Datastore.Allocate", "Datastore.AllocateSpace", "Datastore.AllocateTemplate", "Datastore.Audit", "Group.Allocate",
		"Mapping.Audit", "Mapping.Modify", "Mapping.Use", "Permissions.Modify", "Pool.Allocate", "Pool.Audit", "Realm.Allocate",
		"Realm.AllocateUser", "SDN.Allocate", "SDN.Audit", "SDN.Use", "Sys.AccessNetwork", "Sys.Audit", "Sys.Console", "Sys.Incoming",
		"Sys.Modify", "Sys.PowerMgmt", "Sys.Syslog", "User.Modify", "VM.Allocate", "VM.Audit", "VM.Backup", "VM.Clone",
		"VM.Config.CDROM", "VM.Config.CPU", "VM.Config.Cloudinit", "VM.Config.Disk", "VM.Config.HWType", "VM.Config.Memory",
		"VM.Config.Network", "VM.Config.Options", "VM.Console", "VM.GuestAgent.Audit", "VM.Migrate", "VM.PowerMgmt",
		"VM.Replicate", "VM.Snapshot", "VM.Snapshot.Rollback",
	}
)

// getPermissions answers like PVE for a token whose ACL grants a role on "/" (propagated): the privileges per
// path, 1 meaning "may propagate".
func (s *Simulator) getPermissions(c *call, _ time.Time) (any, error) {
	privs := auditorPrivs
	if c.token.admin {
		privs = adminPrivs
	}
	set := obj{}
	for _, p := range privs {
		set[p] = 1
	}
	out := obj{}
	paths := []string{"/", "/access", "/mapping", "/nodes", "/pool", "/sdn", "/storage", "/vms"}
	if p := c.params["path"]; p != "" {
		paths = []string{p}
	}
	for _, p := range paths {
		out[p] = set
	}
	return out, nil
}

func round(v float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	r := float64(int64(v*p+0.5)) / p
	return r
}
