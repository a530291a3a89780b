package exporter

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"

	"github.com/proxbalance/proxbalance/internal/pve"
)

// largeInventory is a cluster of nodes×guests: every guest has a config with two disks (one local, one
// shared), a tenth are HA-managed containers with bind mounts, a twentieth carry passthrough hardware, and
// the task list holds a migration per fiftieth guest.
func largeInventory(nodes, guests int) *pve.Inventory {
	inv := inventory(withCluster("big", true, nodes, 42), withVersion("9.2.11", "9.2", "f6997e69"))
	for i := range nodes {
		name := fmt.Sprintf("pve%02d", i+1)
		opts := []func(*pve.Node){corosyncID(i + 1), cpus(64), memAvailable(200 * gib),
			nodePSI(pve.Pressure{CPUSome: 0.01}), subscription("active", "c", t0)}
		if i == 0 {
			opts = append(opts, local())
		}
		inv.Nodes = append(inv.Nodes, node(name, opts...))
		inv.Storages = append(inv.Storages,
			storage(name, "local"), storage(name, "local-zfs", func(s *pve.Storage) { s.Type = "zfspool" }),
			storage(name, "ceph", shared("rbd"), content("images", "rootdir")))
	}
	for i := range guests {
		vmid := 100 + i
		nodeName := inv.Nodes[i%nodes].Name
		cfgOpts := []func(*pve.GuestConfig){disk("scsi0", "local-zfs", 32*gib), disk("scsi1", "ceph", 100*gib)}
		opts := []func(*pve.Guest){on(nodeName), tags("prod", fmt.Sprintf("team%d", i%7)), memHost(gib),
			guestPSI(pve.Pressure{CPUSome: 0.02})}
		switch {
		case i%10 == 0:
			opts = append(opts, ct(), haState("started"))
			cfgOpts = append(cfgOpts, bindMount("mp0", "/srv", false))
			inv.HA.Resources = append(inv.HA.Resources, pve.HAResource{SID: fmt.Sprintf("ct:%d", vmid), Type: "ct", VMID: vmid, State: "started", Node: nodeName})
		case i%20 == 1:
			cfgOpts = append(cfgOpts, device("hostpci0", pve.DevicePCI, "0000:01:00.0"))
		}
		if i%50 == 0 {
			inv.Tasks = append(inv.Tasks, task("qmigrate", nodeName, fmt.Sprint(vmid), time.Duration(i)*time.Second, time.Minute, "OK"))
		}
		opts = append(opts, config(4, 8*gib, cfgOpts...))
		inv.Guests = append(inv.Guests, guest(vmid, opts...))
	}
	return inv
}

// cpuTime is the user+system CPU time the process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// discardWriter is a ResponseWriter that counts and drops the body.
type discardWriter struct {
	header http.Header
	n      int
}

func (d *discardWriter) Header() http.Header         { return d.header }
func (d *discardWriter) WriteHeader(int)             {}
func (d *discardWriter) Write(p []byte) (int, error) { d.n += len(p); return len(p), nil }

// BenchmarkScrapeLargeInventory converts a 64-node × 5,000-guest inventory into an exposition as one /pve
// scrape does once the inventory is fetched: "exposition" is the handler's path (collectors rendered straight
// into text), "registry" the registry + promhttp path it replaced, kept for comparison.
func BenchmarkScrapeLargeInventory(b *testing.B) {
	inv := largeInventory(64, 5000)
	h := NewHandler(HandlerOpts{Collectors: Collectors(), Logger: log.NewNopLogger()})
	req := scrapeRequest{cluster: true, node: true}
	paths := []struct {
		name  string
		serve func(w http.ResponseWriter, r *http.Request)
	}{
		{"exposition", func(w http.ResponseWriter, r *http.Request) {
			h.serveExposition(w, r, h.collectors(req, inv, nil, time.Millisecond, log.NewNopLogger()), log.NewNopLogger())
		}},
		{"registry", func(w http.ResponseWriter, r *http.Request) {
			reg := h.registry(req, inv, nil, time.Millisecond, log.NewNopLogger())
			promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}).ServeHTTP(w, r)
		}},
	}
	for _, path := range paths {
		for _, enc := range []string{"identity", "gzip"} {
			b.Run(path.name+"/"+enc, func(b *testing.B) {
				req := httptest.NewRequest(http.MethodGet, "/pve", nil)
				req.Header.Set("Accept-Encoding", enc)
				b.ReportAllocs()
				var bytes int
				cpuStart := cpuTime(b)
				for b.Loop() {
					w := &discardWriter{header: make(http.Header)}
					path.serve(w, req)
					bytes = w.n
				}
				// CPU time is reported besides wall time: on a shared machine wall time mostly measures the neighbours.
				b.ReportMetric(float64(cpuTime(b)-cpuStart)/float64(b.N), "cpu-ns/op")
				b.ReportMetric(float64(bytes), "body_bytes")
			})
		}
	}
}

func TestLargeInventoryGathersWithoutErrors(t *testing.T) {
	inv := largeInventory(4, 200)
	h := NewHandler(HandlerOpts{Collectors: Collectors(), Logger: log.NewNopLogger()})
	reg := h.registry(scrapeRequest{cluster: true, node: true}, inv, nil, time.Millisecond, log.NewNopLogger())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "pve_exporter_scrape_collector_success" {
			for _, m := range mf.GetMetric() {
				if m.GetGauge().GetValue() != 1 {
					t.Errorf("collector %s failed", m.GetLabel()[0].GetValue())
				}
			}
		}
	}
}

// BenchmarkScrapeStages splits BenchmarkScrapeLargeInventory's cost: the collectors writing into a text
// exposition (no encoding, no compression), and the text encoding alone of an already gathered registry
// exposition (the path the exposition replaced).
func BenchmarkScrapeStages(b *testing.B) {
	inv := largeInventory(64, 5000)
	b.Run("collect", func(b *testing.B) {
		b.ReportAllocs()
		cpuStart := cpuTime(b)
		for b.Loop() {
			w := &SeriesWriter{text: newExposition()}
			for _, spec := range Collectors() {
				if err := spec.New().Update(inv, w); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(cpuTime(b)-cpuStart)/float64(b.N), "cpu-ns/op")
	})
	b.Run("encode", func(b *testing.B) {
		h := NewHandler(HandlerOpts{Collectors: Collectors(), Logger: log.NewNopLogger()})
		mfs, err := h.registry(scrapeRequest{cluster: true, node: true}, inv, nil, time.Millisecond, log.NewNopLogger()).Gather()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		cpuStart := cpuTime(b)
		for b.Loop() {
			w := &discardWriter{}
			enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
			for _, mf := range mfs {
				if err := enc.Encode(mf); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(cpuTime(b)-cpuStart)/float64(b.N), "cpu-ns/op")
	})
}
