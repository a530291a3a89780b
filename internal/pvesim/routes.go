package pvesim

import (
	"strings"
	"time"
)

var (
	timeframes8 = []string{"hour", "day", "week", "month", "year"}
	timeframes9 = []string{"hour", "day", "week", "month", "year", "decade"}
	rrdCFs      = []string{"AVERAGE", "MAX"}
)

// routes is the API surface, with each endpoint's parameter schema as PVE declares it (enough of it that
// unknown parameters are rejected the way PVE rejects them).
func (s *Simulator) routes() []route {
	tf := timeframes9
	if s.major < 9 {
		tf = timeframes8
	}
	rrd := schema{"timeframe": {kind: pEnum, required: true, enum: tf}, "cf": {kind: pEnum, enum: rrdCFs}}
	none := schema{}
	stopTask := route{method: "DELETE", pattern: []string{"nodes", "{node}", "tasks", "{upid}"}, schema: none,
		privilege: "/nodes/{node}:Sys.Modify", handle: (*Simulator).deleteTask}
	r := func(method, path string, sc schema, h handlerFunc) route {
		return route{method: method, pattern: strings.Split(strings.TrimPrefix(path, "/"), "/"), schema: sc, handle: h}
	}
	routes := []route{
		r("GET", "/version", none, (*Simulator).getVersion),
		r("GET", "/cluster/status", none, (*Simulator).getClusterStatus),
		r("GET", "/cluster/resources", schema{"type": {kind: pEnum, enum: []string{"vm", "storage", "node", "sdn", "pool"}}}, (*Simulator).getClusterResources),
		r("GET", "/cluster/tasks", none, (*Simulator).getClusterTasks),
		r("GET", "/cluster/ha/resources", schema{"type": {kind: pEnum, enum: []string{"ct", "vm"}}}, (*Simulator).getHAResources),
		r("GET", "/cluster/ha/status/current", none, (*Simulator).getHAStatus),
		r("GET", "/cluster/backup-info/not-backed-up", none, (*Simulator).getNotBackedUp),
		r("GET", "/cluster/config/qdevice", none, (*Simulator).getQDevice),
		r("GET", "/pools", schema{"poolid": {}, "type": {kind: pEnum, enum: []string{"qemu", "lxc", "storage"}}}, (*Simulator).getPools),
		r("GET", "/access/permissions", schema{"path": {}, "userid": {}}, (*Simulator).getPermissions),
		r("GET", "/nodes", none, (*Simulator).getNodes),
		r("GET", "/nodes/{node}/status", none, (*Simulator).getNodeStatus),
		r("GET", "/nodes/{node}/version", none, (*Simulator).getVersion),
		r("GET", "/nodes/{node}/subscription", none, (*Simulator).getSubscription),
		r("GET", "/nodes/{node}/replication", schema{"guest": {kind: pInt}}, func(*Simulator, *call, time.Time) (any, error) { return []obj{}, nil }),
		r("GET", "/nodes/{node}/rrddata", rrd, (*Simulator).getNodeRRD),
		r("GET", "/nodes/{node}/storage", schema{"content": {}, "enabled": {kind: pBool}, "format": {kind: pBool}, "storage": {}, "target": {}}, (*Simulator).getNodeStorage),
		r("GET", "/nodes/{node}/qemu", schema{"full": {kind: pBool}}, guestListHandler("qemu")),
		r("GET", "/nodes/{node}/lxc", none, guestListHandler("lxc")),
		r("GET", "/nodes/{node}/tasks", schema{
			"errors": {kind: pBool}, "limit": {kind: pInt}, "since": {kind: pInt}, "until": {kind: pInt}, "source": {kind: pEnum, enum: []string{"archive", "active", "all"}},
			"start": {kind: pInt}, "statusfilter": {}, "typefilter": {}, "userfilter": {}, "vmid": {kind: pInt},
		}, (*Simulator).getNodeTasks),
		r("GET", "/nodes/{node}/tasks/{upid}/status", none, (*Simulator).getTaskStatus),
		stopTask,
		r("GET", "/nodes/{node}/tasks/{upid}/log", schema{"start": {kind: pInt}, "limit": {kind: pInt}, "download": {kind: pBool}}, (*Simulator).getTaskLog),
	}
	// HA groups became rules in PVE 9.
	if s.major < 9 {
		routes = append(routes, r("GET", "/cluster/ha/groups", none, func(*Simulator, *call, time.Time) (any, error) { return []obj{}, nil }))
	} else {
		routes = append(routes, r("GET", "/cluster/ha/rules", schema{"type": {kind: pEnum, enum: []string{"node-affinity", "resource-affinity"}}, "resource": {}}, func(*Simulator, *call, time.Time) (any, error) { return []obj{}, nil }))
	}
	for _, typ := range []string{"qemu", "lxc"} {
		base := "/nodes/{node}/" + typ + "/{vmid}"
		routes = append(routes,
			r("GET", base+"/config", schema{"current": {kind: pBool}, "snapshot": {}}, guestConfigHandler(typ)),
			r("GET", base+"/status/current", none, guestStatusHandler(typ)),
			r("GET", base+"/rrddata", rrd, guestRRDHandler(typ)),
		)
		migrate := schema{"target": {required: true}, "online": {kind: pBool}, "bwlimit": {kind: pInt}, "migration_network": {}, "migration_type": {kind: pEnum, enum: []string{"secure", "insecure"}}}
		if typ == "qemu" {
			migrate["with-local-disks"] = paramSpec{kind: pBool}
			migrate["force"] = paramSpec{kind: pBool}
			migrate["targetstorage"] = paramSpec{}
			migrate["with-conntrack-state"] = paramSpec{kind: pBool}
		} else {
			migrate["restart"] = paramSpec{kind: pBool}
			migrate["timeout"] = paramSpec{kind: pInt}
			migrate["target-storage"] = paramSpec{}
		}
		post := r("POST", base+"/migrate", migrate, migrateHandler(typ))
		post.privilege = "/vms/{vmid}:VM.Migrate"
		routes = append(routes, post)
		// The CT precondition call exists from PVE 9.0 only.
		if typ == "qemu" || s.major >= 9 {
			routes = append(routes, r("GET", base+"/migrate", schema{"target": {}}, preconditionHandler(typ)))
		}
	}
	return routes
}
