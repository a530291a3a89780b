package pvesim

import (
	"crypto/sha1"
	"encoding/hex"
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

// getQDevice answers /cluster/config/qdevice like pve-cluster's src/PVE/API2/ClusterConfig.pm: {} without a
// QDevice (PVE: no corosync-qdevice socket), else the keys it keeps of corosync-qdevice's "status verbose", all
// strings. Of those, Echo reply and Last poll call are left out: their wording is not pinned down here, and
// no consumer reads them.
func (s *Simulator) getQDevice(_ *call, _ time.Time) (any, error) {
	q := s.scn.QDevice
	if q == nil {
		return obj{}, nil
	}
	return obj{
		"Model": "Net", "QNetd host": q.Host + ":5403", "Algorithm": qdeviceAlgorithms[q.Algorithm],
		"Tie-breaker": "Node with lowest node ID", "State": q.State,
	}, nil
}

type resourcesKey struct {
	at  time.Time
	gen uint64
}

// getClusterResources answers /cluster/resources. It is the one large answer (5,000 guests in the large
// scenario), so it is written by hand into one buffer and cached per stats tick, state generation and filter:
// PVE itself only refreshes these numbers every 10 s.
func (s *Simulator) getClusterResources(c *call, now time.Time) (any, error) {
	filter := c.params["type"]
	key := resourcesKey{at: statsTime(now), gen: s.generation}
	if s.resCacheAt != key || s.resCache == nil {
		s.resCache, s.resCacheAt = map[string][]byte{}, key
	}
	b, ok := s.resCache[filter]
	if !ok {
		// About 350 bytes per guest entry and 250 per node, storage or zone entry.
		size := 350*len(s.guests) + 250*len(s.nodes)*(2+len(s.storages)) + 4096
		b = s.appendResources(make([]byte, 0, size), filter, now)
		s.resCache[filter] = b
	}
	return jsonBody(b), nil
}

// appendResources writes the JSON array of resources: guests, nodes, storages, pools, SDN zones.
func (s *Simulator) appendResources(buf []byte, filter string, now time.Time) []byte {
	snap := s.snapshotAt(now)
	w := jsonWriter{b: append(buf, '[')}
	if filter == "" || filter == "vm" {
		for i, g := range s.guests {
			s.writeResourceGuest(&w, g, &snap.guests[i])
		}
	}
	if filter == "" || filter == "node" {
		for i, n := range s.nodes {
			ns := &snap.nodes[i]
			w.open()
			w.str("id", "node/"+n.spec.Name)
			w.str("type", "node")
			w.str("node", n.spec.Name)
			if !ns.online {
				// What PVE still knows about a node it cannot reach.
				w.str("status", "offline")
				w.str("level", "")
				w.int("maxcpu", n.spec.CPUs)
				w.uint("maxmem", uint64(n.spec.Memory))
				w.close()
				continue
			}
			w.str("status", "online")
			w.float("cpu", round(ns.cpu, 6))
			w.int("maxcpu", n.spec.CPUs)
			w.uint("mem", ns.mem)
			w.uint("maxmem", uint64(n.spec.Memory))
			w.uint("disk", ns.rootUsed)
			w.uint("maxdisk", uint64(n.spec.RootFS))
			w.uint("uptime", ns.uptime)
			w.str("level", "")
			w.int("cgroup-mode", 2)
			w.close()
		}
	}
	if filter == "" || filter == "storage" {
		usage := s.storageUsage()
		for i, n := range s.nodes {
			for _, st := range s.scn.Storages {
				if !n.storages[st.ID] {
					continue
				}
				w.open()
				w.str("id", "storage/"+n.spec.Name+"/"+st.ID)
				w.str("type", "storage")
				w.str("storage", st.ID)
				w.str("node", n.spec.Name)
				if snap.nodes[i].online {
					w.str("status", "available")
				} else {
					w.str("status", "unknown")
				}
				w.str("plugintype", st.Type)
				w.int("shared", b01(st.Shared))
				w.str("content", st.Content)
				if snap.nodes[i].online {
					w.uint("disk", s.storageUsed(usage, st, n.spec.Name))
					w.uint("maxdisk", uint64(st.Size))
				}
				w.close()
			}
		}
	}
	if filter == "" || filter == "pool" {
		for _, p := range s.pools() {
			w.open()
			w.str("id", "/pool/"+p)
			w.str("type", "pool")
			w.str("pool", p)
			w.close()
		}
	}
	if filter == "" || filter == "sdn" {
		for i, n := range s.nodes {
			w.open()
			w.str("id", "sdn/"+n.spec.Name+"/localnetwork")
			w.str("type", "sdn")
			w.str("sdn", "localnetwork")
			w.str("node", n.spec.Name)
			if snap.nodes[i].online {
				w.str("status", "ok")
			} else {
				w.str("status", "unknown")
			}
			w.close()
		}
	}
	return append(w.b, ']')
}

// writeResourceGuest writes a qemu or lxc entry with PVE's keys (PVE/API2Tools.pm extract_vm_stats):
// template always, tags/lock/hastate/pool only when set, memhost for VMs on PVE 9.
func (s *Simulator) writeResourceGuest(w *jsonWriter, g *simGuest, st *guestStats) {
	w.open()
	w.str("id", g.spec.Type+"/"+strconv.Itoa(g.spec.VMID))
	w.str("type", g.spec.Type)
	w.int("vmid", g.spec.VMID)
	w.str("name", g.spec.Name)
	w.str("node", g.node)
	w.str("status", st.status)
	w.float("cpu", round(st.cpu, 6))
	w.int("maxcpu", g.spec.Cores)
	w.uint("mem", st.mem)
	w.uint("maxmem", uint64(g.spec.Memory))
	if s.major >= 9 && g.spec.Type == "qemu" {
		w.uint("memhost", st.memhost)
	}
	w.uint("disk", st.disk)
	w.uint("maxdisk", maxDisk(g))
	w.uint("diskread", st.dread)
	w.uint("diskwrite", st.dwrite)
	w.uint("netin", st.netin)
	w.uint("netout", st.netout)
	w.uint("uptime", st.uptime)
	w.int("template", b01(g.spec.Template))
	if len(g.spec.Tags) > 0 {
		w.str("tags", strings.Join(g.spec.Tags, ";"))
	}
	if g.lock != "" {
		w.str("lock", g.lock)
	}
	if g.spec.HA != "" {
		state := g.spec.HA
		if g.lock == "migrate" {
			state = "migrate" // the CRM's state while it moves the service
		}
		w.str("hastate", state)
	}
	if g.spec.Pool != "" {
		w.str("pool", g.spec.Pool)
	}
	w.close()
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
