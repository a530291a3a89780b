package e2e

import (
	"io"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/proxbalance/proxbalance/internal/pvesim/pvesimtest"
)

// BenchmarkScrape is one /pve scrape of the 64-node × 5,000-guest "large" scenario through the real path: the
// simulator over loopback HTTPS, the PVE client and Snapshotter with warm caches, the collectors and the text
// exposition. The simulator runs in the same process, so ns/op and allocs/op include its side of the API calls.
func BenchmarkScrape(b *testing.B) {
	h := startHarness(b, withSim(pvesimtest.WithBuiltin("large")))
	nodes := len(h.sim.Sim.Scenario().Nodes)
	url := h.server.URL + "/pve?target=" + h.target
	get := func() int {
		res, err := h.server.Client().Get(url)
		if err != nil {
			b.Fatal(err)
		}
		defer res.Body.Close()
		n, err := io.Copy(io.Discard, res.Body)
		if err != nil || res.StatusCode != http.StatusOK {
			b.Fatalf("GET /pve = %d, %v", res.StatusCode, err)
		}
		return int(n)
	}
	get() // fills the caches: configs, storages, PSI
	before, _ := h.apiCalls()
	b.ReportAllocs()
	var size int
	cpuStart := cpuTime(b)
	for b.Loop() {
		size = get()
	}
	// CPU time besides wall time: on a shared machine wall time mostly measures the neighbours.
	b.ReportMetric(float64(cpuTime(b)-cpuStart)/float64(b.N), "cpu-ns/op")
	after, _ := h.apiCalls()
	b.ReportMetric(float64(after-before)/float64(b.N), "api-calls/op")
	b.ReportMetric(float64(1+nodes), "api-calls-goal")
	b.ReportMetric(float64(size), "body-bytes")
}

// cpuTime is the user+system CPU time the process (exporter and simulator) has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
