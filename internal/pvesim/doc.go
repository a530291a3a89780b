// Package pvesim simulates a small Proxmox VE cluster behind PVE's own HTTP API (/api2/json), closely enough
// that real clients (go-proxmox, proxmoxer-based tools) cannot tell it from a real cluster.
//
// A Scenario (YAML, strict) describes nodes, storages and guests and a workload per guest. A Clock drives
// everything: usage at time t is a pure function of the workloads, so history (RRD data) exists from the start
// and a manual clock makes tests exact. Migrations are tasks that follow PVE's rules, lock the guest, write
// QEMU-like progress to their log and move the guest (and its load) when they end. Faults (latency, errors,
// offline nodes, lost quorum, failing migrations) can be set from the scenario or at run time through the
// admin API under /_sim/.
//
// Response shapes follow /work/shared/testdata/pve (real captures and bodies built from Proxmox's Perl code):
// 0/1 booleans, numbers sent as strings where PVE does, PVE 8 vs PVE 9 differences (PSI, memhost,
// memory.available, RRD row counts).
package pvesim
