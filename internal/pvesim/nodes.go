package pvesim

import (
	"fmt"
	"strings"
	"time"
)

func (s *Simulator) getNodes(_ *call, now time.Time) (any, error) {
	snap := s.snapshotAt(now)
	out := make([]obj, 0, len(s.nodes))
	for i, n := range s.nodes {
		e := obj{"node": n.spec.Name, "id": "node/" + n.spec.Name, "type": "node", "level": "", "ssl_fingerprint": n.sslFP}
		ns := &snap.nodes[i]
		if !ns.online {
			e["status"] = "offline"
			out = append(out, e)
			continue
		}
		e["status"] = "online"
		e["cpu"], e["maxcpu"] = round(ns.cpu, 6), n.spec.CPUs
		e["mem"], e["maxmem"] = ns.mem, uint64(n.spec.Memory)
		e["disk"], e["maxdisk"] = ns.rootUsed, uint64(n.spec.RootFS)
		e["uptime"] = ns.uptime
		out = append(out, e)
	}
	return out, nil
}

func (s *Simulator) node(c *call) *simNode { return s.nodeByName[c.vars["node"]] }

// kernel is the running kernel of a PVE version's default.
func (s *Simulator) kernel() (release, version string) {
	if s.major >= 9 {
		return "6.17.2-1-pve", "#1 SMP PREEMPT_DYNAMIC PMX 6.17.2-1 (2025-10-21T11:55Z)"
	}
	return "6.8.12-4-pve", "#1 SMP PREEMPT_DYNAMIC PMX 6.8.12-4 (2024-11-06T15:04Z)"
}

func (s *Simulator) getNodeStatus(c *call, now time.Time) (any, error) {
	n := s.node(c)
	idx := 0
	for i, m := range s.nodes {
		if m == n {
			idx = i
		}
	}
	ns := s.snapshotAt(now).nodes[idx]
	cands := s.guestsEverOn(n.spec.Name)
	load5 := (ns.load + s.nodeLoadAt(n, now.Add(-5*time.Minute), cands).load) / 2
	load15 := (ns.load + s.nodeLoadAt(n, now.Add(-15*time.Minute), cands).load) / 2
	total := uint64(n.spec.Memory)
	release, kver := s.kernel()
	mem := obj{"total": total, "used": ns.mem, "free": total - ns.mem}
	if s.major >= 9 {
		mem["available"] = total - ns.mem + ns.mem/20
	}
	root := uint64(n.spec.RootFS)
	out := obj{
		"cpu":        round(ns.cpu, 6),
		"wait":       round(ns.iowait, 6),
		"idle":       0,
		"uptime":     ns.uptime,
		"loadavg":    []string{fmt.Sprintf("%.2f", ns.load), fmt.Sprintf("%.2f", load5), fmt.Sprintf("%.2f", load15)},
		"kversion":   "Linux " + release + " " + kver,
		"pveversion": fmt.Sprintf("pve-manager/%s/%s", s.scn.PVEVersion, s.repoID()),
		"cpuinfo": obj{
			"cpus": n.spec.CPUs, "cores": n.spec.Cores, "sockets": n.spec.Sockets, "model": "AMD EPYC 7313P 16-Core Processor",
			"mhz": "3000.000", "hvm": "1", "user_hz": 100,
			"flags": "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ht syscall nx mmxext fxsr_opt pdpe1gb rdtscp lm constant_tsc rep_good nopl nonstop_tsc cpuid extd_apicid aperfmperf rapl pni pclmulqdq monitor ssse3 fma cx16 pcid sse4_1 sse4_2 movbe popcnt aes xsave avx f16c rdrand lahf_lm cmp_legacy svm extapic cr8_legacy abm sse4a misalignsse 3dnowprefetch osvw ibs skinit wdt tce topoext perfctr_core perfctr_nb bpext perfctr_llc mwaitx cpb cat_l3 cdp_l3 hw_pstate ssbd mba ibrs ibpb stibp vmmcall fsgsbase bmi1 avx2 smep bmi2 erms invpcid cqm rdt_a rdseed adx smap clflushopt clwb sha_ni xsaveopt xsavec xgetbv1 xsaves cqm_llc cqm_occup_llc cqm_mbm_total cqm_mbm_local user_shstk clzero irperf xsaveerptr rdpru wbnoinvd amd_ppin brs arat npt lbrv svm_lock nrip_save tsc_scale vmcb_clean flushbyasid decodeassists pausefilter pfthreshold v_vmsave_vmload vgif v_spec_ctrl umip pku ospke vaes vpclmulqdq rdpid overflow_recov succor smca debug_swap",
		},
		"memory": mem,
		"swap":   obj{"total": 0, "used": 0, "free": 0},
		"rootfs": obj{"total": root, "used": ns.rootUsed, "free": root - ns.rootUsed, "avail": root - ns.rootUsed},
		"ksm":    obj{"shared": 0},
	}
	if s.major >= 9 || s.minor >= 1 {
		out["current-kernel"] = obj{"sysname": "Linux", "release": release, "version": kver, "machine": "x86_64"}
		out["boot-info"] = obj{"mode": "efi", "secureboot": 0}
	}
	return out, nil
}

func (s *Simulator) getSubscription(c *call, _ time.Time) (any, error) {
	return obj{
		"status":   "notfound",
		"message":  "There is no subscription key",
		"serverid": strings.ReplaceAll(s.node(c).sslFP, ":", "")[:32],
		"url":      "https://www.proxmox.com/en/proxmox-virtual-environment/pricing",
	}, nil
}

func (s *Simulator) getNodeStorage(c *call, _ time.Time) (any, error) {
	n := s.node(c)
	out := []obj{}
	usage := s.storageUsage()
	for _, st := range s.scn.Storages {
		if !n.storages[st.ID] {
			continue
		}
		if f := c.params["storage"]; f != "" && f != st.ID {
			continue
		}
		if f := c.params["content"]; f != "" && !hasContent(st.Content, f) {
			continue
		}
		used, total := s.storageUsed(usage, st, n.spec.Name), uint64(st.Size)
		out = append(out, obj{
			"storage": st.ID, "type": st.Type, "content": st.Content, "shared": b01(st.Shared), "active": 1, "enabled": 1,
			"total": total, "used": used, "avail": total - used, "used_fraction": round(float64(used)/float64(total), 10),
		})
	}
	return out, nil
}

func hasContent(list, want string) bool {
	for _, w := range strings.Split(want, ",") {
		found := false
		for _, c := range strings.Split(list, ",") {
			if c == w {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}
