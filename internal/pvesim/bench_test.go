package pvesim

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// BenchmarkClusterResources measures GET /cluster/resources on the large scenario (64 nodes, 5,000 guests)
// through the HTTP handler. "fresh" moves the clock one stats tick per request, so every request recomputes
// all usage and encodes it; "same-tick" is what several clients polling within PVE's 10 s update interval get.
func BenchmarkClusterResources(b *testing.B) {
	scn, err := Builtin("large")
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name    string
		advance time.Duration
	}{{"fresh", statsInterval}, {"same-tick", 0}} {
		b.Run(bc.name, func(b *testing.B) {
			clock := NewManualClock(time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC))
			sim, err := New(scn, Options{Clock: clock, TokenSecret: "s"})
			if err != nil {
				b.Fatal(err)
			}
			h := sim.Handler()
			req := httptest.NewRequest(http.MethodGet, "/api2/json/cluster/resources", nil)
			req.Header.Set("Authorization", "PVEAPIToken=root@pam!proxbalance=s")
			b.ReportAllocs()
			size := 0
			for b.Loop() {
				clock.Advance(bc.advance)
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("status %d", rec.Code)
				}
				size = rec.Body.Len()
			}
			b.ReportMetric(float64(size), "resp-bytes")
		})
	}
}
