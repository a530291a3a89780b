package pvesim

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// confPath is the pmxcfs path of a guest's config, which PVE names in "does not exist" errors.
func confPath(node, typ string, vmid string) string {
	dir := "qemu-server"
	if typ == "lxc" {
		dir = "lxc"
	}
	return fmt.Sprintf("nodes/%s/%s/%s.conf", node, dir, vmid)
}

// guestOn finds the guest of the request, which must be of type typ and on the node of the path: PVE reads
// the config file under that node, so a guest elsewhere answers like a missing one.
func (s *Simulator) guestOn(c *call, typ string) (*simGuest, int, error) {
	vmid, _ := strconv.Atoi(c.vars["vmid"])
	g := s.guestByID[vmid]
	if g == nil || g.spec.Type != typ || g.node != c.vars["node"] {
		return nil, -1, errf(http.StatusInternalServerError, "Configuration file '%s' does not exist\n", confPath(c.vars["node"], typ, c.vars["vmid"]))
	}
	// s.guests is sorted by vmid.
	return g, sort.Search(len(s.guests), func(i int) bool { return s.guests[i].spec.VMID >= vmid }), nil
}

// addPSI adds pressure keys the way each guest type sends them: numbers for VMs, strings for CTs (PVE 9).
func (s *Simulator) addPSI(e obj, typ string, p psi) {
	if s.major < 9 {
		return
	}
	vals := map[string]float64{
		"pressurecpusome": p.cpuSome, "pressurecpufull": p.cpuFull, "pressureiosome": p.ioSome,
		"pressureiofull": p.ioFull, "pressurememorysome": p.memSome, "pressurememoryfull": p.memFull,
	}
	for k, v := range vals {
		if typ == "lxc" {
			e[k] = fmt.Sprintf("%.2f", v)
		} else {
			e[k] = round(v, 2)
		}
	}
}

// guestEntry is the vmstatus() entry that lists and status calls share.
func (s *Simulator) guestEntry(g *simGuest, st *guestStats) obj {
	e := obj{
		"vmid": g.spec.VMID, "status": st.status, "name": g.spec.Name, "cpus": g.spec.Cores,
		"maxmem": uint64(g.spec.Memory), "maxdisk": maxDisk(g), "disk": st.disk, "uptime": st.uptime,
		"cpu": round(st.cpu, 6), "mem": st.mem, "netin": st.netin, "netout": st.netout,
	}
	if st.status == "unknown" {
		e["status"] = "stopped"
	}
	running := st.status == "running"
	if running {
		e["pid"] = g.pid
	}
	if g.spec.Type == "qemu" {
		if s.major >= 9 {
			e["memhost"] = st.memhost
		}
	} else {
		e["type"] = "lxc"
		e["maxswap"] = uint64(512 * MiB)
		e["swap"] = 0
		e["diskread"], e["diskwrite"] = st.dread, st.dwrite
	}
	if running {
		s.addPSI(e, g.spec.Type, st.psi)
	}
	if g.spec.Template {
		e["template"] = 1
	}
	if g.lock != "" {
		e["lock"] = g.lock
	}
	if len(g.spec.Tags) > 0 {
		e["tags"] = strings.Join(g.spec.Tags, ";")
	}
	return e
}

func guestListHandler(typ string) handlerFunc {
	return func(s *Simulator, c *call, now time.Time) (any, error) {
		snap := s.snapshotAt(now)
		out := []obj{}
		for i, g := range s.guests {
			if g.node == c.vars["node"] && g.spec.Type == typ {
				out = append(out, s.guestEntry(g, &snap.guests[i]))
			}
		}
		return out, nil
	}
}

func (s *Simulator) haStatus(g *simGuest) obj {
	if g.spec.HA == "" {
		return obj{"managed": 0}
	}
	return obj{"managed": 1, "state": g.spec.HA}
}

func guestStatusHandler(typ string) handlerFunc {
	return func(s *Simulator, c *call, now time.Time) (any, error) {
		g, i, err := s.guestOn(c, typ)
		if err != nil {
			return nil, err
		}
		st := s.snapshotAt(now).guests[i]
		e := s.guestEntry(g, &st)
		e["ha"] = s.haStatus(g)
		if typ == "lxc" {
			return e, nil
		}
		e["agent"] = 1
		e["qmpstatus"] = e["status"]
		if st.status != "running" {
			return e, nil
		}
		e["diskread"], e["diskwrite"] = st.dread, st.dwrite
		maxmem := uint64(g.spec.Memory)
		e["balloon"], e["balloon_min"] = maxmem, maxmem
		e["freemem"] = maxmem - st.mem
		e["ballooninfo"] = obj{
			"actual": maxmem, "max_mem": maxmem, "free_mem": maxmem - st.mem, "total_mem": maxmem - 80*uint64(MiB),
			"major_page_faults": st.uptime / 500, "minor_page_faults": st.uptime * 20, "mem_swapped_in": 0, "mem_swapped_out": 0,
			"last_update": now.Unix(),
		}
		e["nics"] = obj{fmt.Sprintf("tap%di0", g.spec.VMID): obj{"netin": st.netin, "netout": st.netout}}
		e["blockstat"] = blockstat(g, &st)
		e["running-machine"], e["running-qemu"] = s.qemuMachine()
		e["proxmox-support"] = obj{
			"backup-fleecing": true, "backup-max-workers": true, "pbs-dirty-bitmap": true, "pbs-dirty-bitmap-migration": true,
			"pbs-dirty-bitmap-savevm": true, "pbs-library-version": "1.5.2 (UNKNOWN)", "pbs-masterkey": true, "query-bitmap-info": true,
		}
		return e, nil
	}
}

func (s *Simulator) qemuMachine() (machine, version string) {
	if s.major >= 9 {
		return "pc-i440fx-10.0+pve1", "10.0.2"
	}
	return "pc-i440fx-9.0+pve0", "9.0.2"
}

// blockstat is QEMU's query-blockstats per drive, passed through by PVE (hence real JSON booleans).
func blockstat(g *simGuest, st *guestStats) obj {
	out := obj{}
	n := uint64(len(g.spec.Disks))
	for i := range g.spec.Disks {
		rd, wr := st.dread/n, st.dwrite/n
		out["scsi"+strconv.Itoa(i)] = blockDevice(rd, wr, st.uptime)
	}
	out["ide2"] = blockDevice(0, 0, st.uptime)
	return out
}

func blockDevice(rd, wr, uptime uint64) obj {
	return obj{
		"rd_bytes": rd, "wr_bytes": wr, "rd_operations": rd / 40960, "wr_operations": wr / 8192, "flush_operations": wr / 81920,
		"rd_total_time_ns": rd / 90, "wr_total_time_ns": wr * 40, "flush_total_time_ns": wr * 4, "idle_time_ns": uptime * 1000,
		"unmap_operations": 0, "unmap_bytes": 0, "unmap_total_time_ns": 0, "unmap_merged": 0, "rd_merged": 0, "wr_merged": 0,
		"wr_highest_offset": wr / 2, "failed_rd_operations": 0, "failed_wr_operations": 0, "failed_flush_operations": 0,
		"failed_unmap_operations": 0, "invalid_rd_operations": 0, "invalid_wr_operations": 0, "invalid_flush_operations": 0,
		"invalid_unmap_operations": 0, "account_failed": true, "account_invalid": true, "timed_stats": []any{},
	}
}

// formatSize writes a size the way PVE's config does ("32G", "512M").
func formatSize(b ByteSize) string {
	switch {
	case b%TiB == 0:
		return strconv.FormatUint(uint64(b/TiB), 10) + "T"
	case b%GiB == 0:
		return strconv.FormatUint(uint64(b/GiB), 10) + "G"
	case b%MiB == 0:
		return strconv.FormatUint(uint64(b/MiB), 10) + "M"
	case b%KiB == 0:
		return strconv.FormatUint(uint64(b/KiB), 10) + "K"
	}
	return strconv.FormatUint(uint64(b), 10)
}

// volumeID names disk n of a guest on a storage the way each storage type does.
func (s *Simulator) volumeID(g *simGuest, storage string, n int) string {
	st := s.storages[storage]
	vmid := g.spec.VMID
	switch st.Type {
	case "dir", "nfs", "cifs", "glusterfs", "btrfs":
		ext := "qcow2"
		if g.spec.Type == "lxc" {
			ext = "raw"
		}
		return fmt.Sprintf("%s:%d/vm-%d-disk-%d.%s", storage, vmid, vmid, n, ext)
	case "zfspool":
		if g.spec.Type == "lxc" {
			return fmt.Sprintf("%s:subvol-%d-disk-%d", storage, vmid, n)
		}
	}
	return fmt.Sprintf("%s:vm-%d-disk-%d", storage, vmid, n)
}

func mac(vmid int) string {
	h := mix(uint64(vmid), 0xbc2411)
	return fmt.Sprintf("BC:24:11:%02X:%02X:%02X", byte(h), byte(h>>8), byte(h>>16))
}

func uuid(h uint64) string {
	a, b := mix(h, 1), mix(h, 2)
	return fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", uint32(a), uint16(a>>32), uint16(a>>48)&0xfff, uint16(b)&0xfff, b>>16&0xffffffffffff)
}

// guestConfig is the parsed config as PVE's config GET returns it (without digest).
func (s *Simulator) guestConfig(g *simGuest) obj {
	vmid := g.spec.VMID
	cfg := obj{"cores": g.spec.Cores}
	if g.spec.Type == "qemu" {
		cfg["name"] = g.spec.Name
		cfg["memory"] = strconv.FormatUint(uint64(g.spec.Memory/MiB), 10)
		cfg["sockets"] = 1
		cfg["cpu"] = "x86-64-v2-AES"
		cfg["numa"] = 0
		cfg["ostype"] = "l26"
		cfg["scsihw"] = "virtio-scsi-single"
		cfg["agent"] = "1"
		cfg["net0"] = fmt.Sprintf("virtio=%s,bridge=vmbr0,firewall=1", mac(vmid))
		cfg["ide2"] = "none,media=cdrom"
		cfg["boot"] = "order=scsi0;ide2;net0"
		cfg["meta"] = fmt.Sprintf("creation-qemu=9.0.2,ctime=%d", g.firstStart.Unix()-86400)
		cfg["smbios1"] = "uuid=" + uuid(mix(uint64(vmid), 11))
		cfg["vmgenid"] = uuid(mix(uint64(vmid), 12))
		for i, d := range g.spec.Disks {
			cfg["scsi"+strconv.Itoa(i)] = fmt.Sprintf("%s,iothread=1,size=%s", s.volumeID(g, d.Storage, i), formatSize(d.Size))
		}
		for i, dev := range g.spec.Passthrough.HostPCI {
			cfg["hostpci"+strconv.Itoa(i)] = dev + ",pcie=1"
		}
		for i, dev := range g.spec.Passthrough.USB {
			cfg["usb"+strconv.Itoa(i)] = "host=" + dev
		}
		for i, dev := range g.spec.Passthrough.Serial {
			cfg["serial"+strconv.Itoa(i)] = dev
		}
	} else {
		cfg["hostname"] = g.spec.Name
		cfg["memory"] = int(g.spec.Memory / MiB)
		cfg["swap"] = 512
		cfg["arch"] = "amd64"
		cfg["ostype"] = "debian"
		cfg["unprivileged"] = 1
		cfg["features"] = "nesting=1"
		cfg["net0"] = fmt.Sprintf("name=eth0,bridge=vmbr0,firewall=1,hwaddr=%s,ip=dhcp,type=veth", mac(vmid))
		if len(g.spec.Disks) > 0 {
			d := g.spec.Disks[0]
			cfg["rootfs"] = fmt.Sprintf("%s,size=%s", s.volumeID(g, d.Storage, 0), formatSize(d.Size))
		}
		for i, m := range g.spec.Mounts {
			var v string
			if m.Bind != "" {
				v = m.Bind + ",mp=" + m.MP
				if m.Shared {
					v += ",shared=1"
				}
			} else {
				v = fmt.Sprintf("%s,mp=%s,size=%s", s.volumeID(g, m.Storage, i+1), m.MP, formatSize(m.Size))
			}
			cfg["mp"+strconv.Itoa(i)] = v
		}
	}
	if g.spec.Onboot {
		cfg["onboot"] = 1
	}
	if len(g.spec.Tags) > 0 {
		cfg["tags"] = strings.Join(g.spec.Tags, ";")
	}
	if g.spec.Template {
		cfg["template"] = 1
	}
	if g.lock != "" {
		cfg["lock"] = g.lock
	}
	return cfg
}

// configDigest is the SHA-1 of the config file text, as PVE computes "digest".
func configDigest(cfg obj) string {
	h := sha1.New()
	for _, k := range sortedKeys(cfg) {
		fmt.Fprintf(h, "%s: %v\n", k, cfg[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}

func guestConfigHandler(typ string) handlerFunc {
	return func(s *Simulator, c *call, _ time.Time) (any, error) {
		g, _, err := s.guestOn(c, typ)
		if err != nil {
			return nil, err
		}
		cfg := s.guestConfig(g)
		cfg["digest"] = configDigest(cfg)
		return cfg, nil
	}
}
