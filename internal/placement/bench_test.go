package placement

import (
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// largeSpec is the speed goal's cluster: 64 nodes, 5,000 guests, 7 days at a 5-minute step (2,016 samples).
var largeSpec = genSpec{seed: 42, nodes: 64, guests: 5000, T: 2016, step: 5 * time.Minute, hot: 0.02,
	constraints: true, peakAmp: 0.5, cpuBusy: 0.2, nodeCPUs: 96, nodeMemory: 768 * GiB}

// BenchmarkPlanRebalanceLarge plans a rebalance of largeSpec (goal: ≤ 1 s per plan on 2 cores).
//
//	go test -run '^$' -bench PlanRebalanceLarge -benchmem ./internal/placement
func BenchmarkPlanRebalanceLarge(b *testing.B) { benchPlan(b, rebalance) }

// BenchmarkPlanEvacuateLarge empties a node of largeSpec (every guest placed, no improvement bar).
func BenchmarkPlanEvacuateLarge(b *testing.B) { benchPlan(b, evacuate("pve02")) }

func benchPlan(b *testing.B, req Request) {
	st := generate(largeSpec)
	pol := DefaultPolicy()
	b.ReportAllocs()
	var p Plan
	cpu0 := cpuTime()
	for b.Loop() {
		var err error
		p, err = Compute(st, pol, req)
		if err != nil {
			b.Fatal(err)
		}
	}
	// CPU time per plan, all threads: on a shared machine wall time also counts waiting for a CPU.
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(len(p.Moves)), "moves")
	b.ReportMetric(float64(len(p.Decisions)), "decisions")
}
