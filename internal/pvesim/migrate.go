package pvesim

import (
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-kit/log/level"
)

// localVolume is a guest volume on storage that is not shared, which a migration has to copy.
type localVolume struct {
	drive   string // scsi0, rootfs, mp1
	volid   string
	storage string
	size    ByteSize
}

func (s *Simulator) localVolumes(g *simGuest) []localVolume {
	var out []localVolume
	for i, d := range g.spec.Disks {
		if s.storages[d.Storage].Shared {
			continue
		}
		drive := "scsi" + strconv.Itoa(i)
		if g.spec.Type == "lxc" {
			drive = "rootfs"
		}
		out = append(out, localVolume{drive: drive, volid: s.volumeID(g, d.Storage, i), storage: d.Storage, size: d.Size})
	}
	for i, m := range g.spec.Mounts {
		if m.Storage != "" && !s.storages[m.Storage].Shared {
			out = append(out, localVolume{drive: "mp" + strconv.Itoa(i), volid: s.volumeID(g, m.Storage, i+1), storage: m.Storage, size: m.Size})
		}
	}
	return out
}

// guestStorages are the storages a guest's volumes live on.
func guestStorages(g *simGuest) []string {
	var out []string
	for _, d := range g.spec.Disks {
		if !slices.Contains(out, d.Storage) {
			out = append(out, d.Storage)
		}
	}
	for _, m := range g.spec.Mounts {
		if m.Storage != "" && !slices.Contains(out, m.Storage) {
			out = append(out, m.Storage)
		}
	}
	return out
}

func (s *Simulator) missingStorages(g *simGuest, node string) []string {
	var out []string
	for _, id := range guestStorages(g) {
		if !s.nodeByName[node].storages[id] {
			out = append(out, id)
		}
	}
	return out
}

// localResources lists config keys that pin a VM to its node (PCI, USB, serial passthrough).
func localResources(g *simGuest) []string {
	var out []string
	for i := range g.spec.Passthrough.HostPCI {
		out = append(out, "hostpci"+strconv.Itoa(i))
	}
	for i := range g.spec.Passthrough.USB {
		out = append(out, "usb"+strconv.Itoa(i))
	}
	for i := range g.spec.Passthrough.Serial {
		out = append(out, "serial"+strconv.Itoa(i))
	}
	return out
}

// unsharedBinds lists a container's bind mounts that are not marked shared.
func unsharedBinds(g *simGuest) []string {
	var out []string
	for i, m := range g.spec.Mounts {
		if m.Bind != "" && !m.Shared {
			out = append(out, "mp"+strconv.Itoa(i))
		}
	}
	return out
}

func preconditionHandler(typ string) handlerFunc {
	return func(s *Simulator, c *call, _ time.Time) (any, error) {
		g, _, err := s.guestOn(c, typ)
		if err != nil {
			return nil, err
		}
		if t := c.params["target"]; t != "" && s.nodeByName[t] == nil {
			return nil, errf(http.StatusInternalServerError, "no such cluster node '%s'\n", t)
		}
		allowed := []string{}
		notAllowed := obj{}
		for _, n := range s.nodes {
			name := n.spec.Name
			if name == g.node {
				continue
			}
			missing := s.missingStorages(g, name)
			if typ == "qemu" {
				entry := obj{}
				if len(missing) > 0 {
					entry["unavailable_storages"] = missing
				}
				notAllowed[name] = entry
			} else if len(missing) > 0 {
				notAllowed[name] = obj{"unavailable-storages": missing}
			}
			if len(missing) == 0 {
				allowed = append(allowed, name)
			}
		}
		running := b01(g.running)
		if typ == "lxc" {
			out := obj{"running": running, "allowed-nodes": allowed, "not-allowed-nodes": notAllowed}
			if g.spec.HA != "" {
				out["dependent-ha-resources"] = []string{}
			}
			return out, nil
		}
		disks := []obj{}
		for _, v := range s.localVolumes(g) {
			disks = append(disks, obj{
				"volid": v.volid, "drivename": v.drive, "size": uint64(v.size), "cdrom": 0, "is_cloudinit": 0, "replicate": 1,
				"shared": 0, "is_unused": 0, "is_attached": 1, "is_vmstate": 0, "is_tpmstate": 0,
			})
		}
		res := localResources(g)
		if res == nil {
			res = []string{}
		}
		out := obj{
			"running": running, "allowed_nodes": allowed, "not_allowed_nodes": notAllowed, "local_disks": disks,
			"local_resources": res, "mapped-resources": []string{}, "mapped-resource-info": obj{},
		}
		if s.major >= 9 {
			out["has-dbus-vmstate"] = 1
			if g.spec.HA != "" {
				out["dependent-ha-resources"] = []string{}
			}
		}
		return out, nil
	}
}

// migrateHandler starts a migration after PVE's synchronous checks, in PVE's order. Problems PVE only finds
// inside the worker (missing storage on the target, passthrough devices, unshared bind mounts, unreachable
// target) start a task that fails.
func migrateHandler(typ string) handlerFunc {
	return func(s *Simulator, c *call, now time.Time) (any, error) {
		target := c.params["target"]
		if target == c.vars["node"] {
			return nil, paramError(map[string]string{"target": "target is local node."})
		}
		if !s.quorate() {
			return nil, errf(http.StatusInternalServerError, "cluster not ready - no quorum?\n")
		}
		if s.nodeByName[target] == nil {
			return nil, errf(http.StatusInternalServerError, "no such cluster node '%s'\n", target)
		}
		g, _, err := s.guestOn(c, typ)
		if err != nil {
			return nil, err
		}
		online, restart := c.bool("online"), c.bool("restart")
		if typ == "qemu" {
			if g.running && !online {
				return nil, errf(http.StatusInternalServerError, "can't migrate running VM without --online\n")
			}
		} else if g.running {
			if online {
				return nil, errf(http.StatusInternalServerError, "lxc live migration is currently not implemented\n")
			}
			if !restart {
				return nil, errf(http.StatusInternalServerError, "running container can only be migrated in restart mode\n")
			}
		}
		if g.lock != "" {
			what := "VM"
			if typ == "lxc" {
				what = "CT"
			}
			return nil, errf(http.StatusInternalServerError, "%s is locked (%s)\n", what, g.lock)
		}
		if typ == "qemu" && g.running && len(s.localVolumes(g)) > 0 && !c.bool("with-local-disks") {
			return nil, errf(http.StatusInternalServerError, "can't live migrate attached local disks without with-local-disks option\n")
		}
		if g.spec.HA != "" {
			return s.requestHAMigration(g, target, now, c.token).upid, nil
		}
		t := s.startMigration(g, target, now, c.token)
		return t.upid, nil
	}
}

// crmDelay is how long the HA stack takes to act on a queued command (CRM and LRM loops run every 10 s).
const crmDelay = 10 * time.Second

// requestHAMigration answers a migration of an HA-managed guest the way PVE does: an "hamigrate" task only
// queues the request for the cluster resource manager and ends at once; the CRM then has the source node's
// LRM start the real qmigrate/vzmigrate task, as root@pam, a few seconds later.
func (s *Simulator) requestHAMigration(g *simGuest, target string, now time.Time, tok apiToken) *task {
	vmid := strconv.Itoa(g.spec.VMID)
	t := s.newTask(g.node, now, "hamigrate", vmid, tok)
	log := &taskLog{start: t.start}
	log.lines = append(log.lines, taskLine{text: fmt.Sprintf("Requesting HA migration for VM %s to node %s", vmid, target)})
	log.wait(time.Second)
	t.lines, t.duration, t.exit = log.lines, log.at, "OK"
	t.onSuccess = func(end time.Time) {
		if g.lock == "" && g.node != target {
			s.startMigration(g, target, end.Add(crmDelay), apiToken{id: "root@pam"})
		}
	}
	return t
}

// takeMigrationFault consumes an injected failure for vmid, if any.
func (s *Simulator) takeMigrationFault(vmid int) bool {
	for i, f := range s.faults.FailMigrations {
		if f.VMID == 0 || f.VMID == vmid {
			s.faults.FailMigrations = slices.Delete(s.faults.FailMigrations, i, i+1)
			return true
		}
	}
	return false
}

// startMigration plans the migration task of g to target and locks g. Callers hold s.mu.
func (s *Simulator) startMigration(g *simGuest, target string, now time.Time, tok apiToken) *task {
	source := g.node
	typ := "qmigrate"
	if g.spec.Type == "lxc" {
		typ = "vzmigrate"
	}
	t := s.newTask(source, now, typ, strconv.Itoa(g.spec.VMID), tok)
	log := &taskLog{start: t.start}
	bw := float64(s.scn.MigrationBandwidth)
	targetIP := s.nodeByName[target].spec.IP
	vmid := g.spec.VMID
	abort := func(reason string) {
		log.add("ERROR: migration aborted (duration %s): %s", formatDuration(log.at+time.Second), reason)
		log.wait(time.Second)
		t.exit = "migration aborted"
	}
	fail := s.takeMigrationFault(vmid)
	wasRunning := g.running

	if g.spec.Type == "qemu" {
		log.add("starting migration of VM %d to node '%s' (%s)", vmid, target, targetIP)
	} else {
		if g.running {
			log.add("shutdown CT %d", vmid)
			log.wait(3 * time.Second)
		}
		log.add("starting migration of CT %d to node '%s' (%s)", vmid, target, targetIP)
	}
	switch {
	case !s.nodeOnline(target):
		log.wait(3 * time.Second)
		abort(fmt.Sprintf("Can't connect to destination address using public key\n(ssh: connect to host %s port 22: No route to host)", targetIP))
	case len(s.missingStorages(g, target)) > 0:
		abort(fmt.Sprintf("storage '%s' is not available on node '%s'", s.missingStorages(g, target)[0], target))
	case g.spec.Type == "qemu" && len(localResources(g)) > 0:
		abort("can't migrate VM which uses local devices: " + strings.Join(localResources(g), ", "))
	case g.spec.Type == "lxc" && len(unsharedBinds(g)) > 0:
		abort(fmt.Sprintf("cannot migrate local bind mount point '%s'", unsharedBinds(g)[0]))
	case g.spec.Type == "qemu" && g.running:
		s.planLiveMigration(g, target, log, bw, fail, abort)
	default:
		s.planOfflineMigration(g, target, log, bw, fail, abort)
	}
	if t.exit == "" {
		log.wait(time.Second)
		log.add("migration finished successfully (duration %s)", formatDuration(log.at))
		t.exit = "OK"
	}
	t.lines, t.duration = log.lines, log.at

	g.lock = "migrate"
	if g.spec.Type == "lxc" && g.running {
		g.running = false
	}
	t.onSuccess = func(end time.Time) {
		g.moveTo(target, end)
		g.lock = ""
		if wasRunning {
			g.running = true
			g.started = end
		}
	}
	t.onFailure = func(end time.Time) {
		g.lock = ""
		if wasRunning && !g.running {
			g.running = true
			g.started = end
		}
	}
	s.changed()
	level.Info(s.logger).Log("msg", "migration started", "upid", t.upid, "vmid", vmid, "source", source, "target", target, "duration", t.duration, "planned_exit", t.exit)
	return t
}

// progressStep spaces progress lines: one per simulated second like QEMU, but at most about 300 per phase.
func progressStep(total time.Duration) time.Duration {
	step := time.Second
	for total/step > 300 {
		step *= 2
	}
	return step
}

func (s *Simulator) planLiveMigration(g *simGuest, target string, log *taskLog, bw float64, fail bool, abort func(string)) {
	vmid := g.spec.VMID
	locals := s.localVolumes(g)
	for _, v := range locals {
		log.add("found local disk '%s' (attached)", v.volid)
	}
	log.add("starting VM %d on remote node '%s'", vmid, target)
	log.wait(2 * time.Second)
	log.add("start remote tunnel")
	log.wait(time.Second)
	log.add("ssh tunnel ver 1")
	if len(locals) > 0 {
		log.add("starting storage migration")
		for _, v := range locals {
			log.add("%s: start migration to nbd:unix:/run/qemu-server/%d_nbd.migrate:exportname=drive-%s", v.drive, vmid, v.drive)
			log.add("drive mirror is starting for drive-%s", v.drive)
			total := float64(v.size)
			dur := time.Duration(total / bw * float64(time.Second))
			step := progressStep(dur)
			begin := log.at
			for el := step; el < dur; el += step {
				log.wait(step)
				done := total * float64(el) / float64(dur)
				log.add("drive-%s: transferred %s of %s (%.2f%%) in %s", v.drive, humanSize(done), humanSize(total), 100*done/total, shortDuration(el))
			}
			log.at = begin + dur
			log.add("drive-%s: transferred %s of %s (100.00%%) in %s, ready", v.drive, humanSize(total), humanSize(total), shortDuration(dur))
		}
		log.add("all 'mirror' jobs are ready")
	}
	log.add("starting online/live migration on unix:/run/qemu-server/%d.migrate", vmid)
	log.add("set migration capabilities")
	log.add("migration downtime limit: 100 ms")
	log.add("migration cachesize: %s", humanSize(float64(g.spec.Memory)/8))
	log.add("set migration parameters")
	log.add("start migrate command to unix:/run/qemu-server/%d.migrate", vmid)

	_, memhost := guestMem(g, g.wl.at(log.start))
	ram := float64(memhost)
	total := float64(g.spec.Memory)
	dur := max(time.Duration(ram/bw*float64(time.Second)), time.Second)
	step := progressStep(dur)
	speed := humanSize(bw) + "/s"
	var prev time.Duration
	for el := step; ; el += step {
		el = min(el, dur)
		log.wait(el - prev)
		prev = el
		done := ram * float64(el) / float64(dur)
		if fail && done >= ram/2 {
			log.add("migration status error: failed - Unable to write to socket: Broken pipe")
			log.add("ERROR: online migrate failure - aborting")
			log.add("aborting phase 2 - cleanup resources")
			log.add("migrate_cancel")
			if len(locals) > 0 {
				log.add("mirror-%s: Cancelling block job", locals[0].drive)
			}
			abort("online migrate failure - aborting")
			return
		}
		log.add("migration active, transferred %s of %s VM-state, %s", humanSize(done), humanSize(total), speed)
		if el >= dur {
			break
		}
	}
	log.add("average migration speed: %s - downtime %d ms", speed, 40+mix(uint64(vmid), 3)%60)
	log.add("migration completed, transferred %s VM-state", humanSize(ram))
	log.add("migration status: completed")
	for _, v := range locals {
		log.add("mirror-%s: Completing block job...", v.drive)
		log.add("mirror-%s: Completed successfully.", v.drive)
		log.add("mirror-%s: mirror-job finished", v.drive)
	}
	if len(locals) > 0 {
		log.add("stopping NBD storage migration server on target.")
	}
	log.wait(time.Second)
	log.add("start final cleanup")
}

func (s *Simulator) planOfflineMigration(g *simGuest, target string, log *taskLog, bw float64, fail bool, abort func(string)) {
	locals := s.localVolumes(g)
	sort.Slice(locals, func(i, j int) bool { return locals[i].drive < locals[j].drive })
	for _, v := range locals {
		if g.spec.Type == "qemu" {
			log.add("found local disk '%s' (attached)", v.volid)
		} else {
			log.add("found local volume '%s' (in current VM config)", v.volid)
		}
	}
	if len(locals) > 0 && g.spec.Type == "qemu" {
		log.add("copying local disk images")
	}
	for i, v := range locals {
		copied := float64(v.size) * 0.4 // sparse volumes: only written blocks travel
		dur := time.Duration(copied / bw * float64(time.Second))
		log.add("full send of %s estimated size is %s", v.volid, humanSize(copied))
		log.add("total estimated size is %s", humanSize(copied))
		if fail && i == 0 {
			log.wait(dur / 2)
			log.add("command 'pvesm import' failed: exit code 255")
			abort(fmt.Sprintf("storage migration for '%s' to storage '%s' failed - command 'pvesm export' failed: exit code 255", v.volid, v.storage))
			return
		}
		log.wait(dur)
		log.add("successfully imported '%s'", v.volid)
		log.add("volume '%s' is '%s' on the target", v.volid, v.volid)
	}
	if fail && len(locals) == 0 {
		log.wait(time.Second)
		abort("failed to move config to target node")
		return
	}
	if g.spec.Type == "lxc" {
		log.add("start final cleanup")
		if g.running {
			log.add("start container on target node")
			log.wait(2 * time.Second)
		}
	}
}
