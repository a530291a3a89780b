package server

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"

	"github.com/proxbalance/proxbalance/internal/policy"
	"github.com/proxbalance/proxbalance/internal/pve"
	"github.com/proxbalance/proxbalance/internal/pvesim/pvesimtest"
)

// fakePrometheus answers the build-info call serve's readiness check makes.
func fakePrometheus(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/status/buildinfo" {
			fmt.Fprint(w, `{"status":"success","data":{"version":"3.0.0"}}`)
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// stoppedURL is the address of a server that answered once and is gone: connections are refused.
func stoppedURL(h http.Handler) string {
	srv := httptest.NewServer(h)
	srv.Close()
	return srv.URL
}

// readinessFixture is a running simulator and Prometheus, and the URLs of a stopped one of each.
type readinessFixture struct {
	sim                     *pvesimtest.Server
	promURL                 string
	stoppedPVE, stoppedProm string
}

func newReadinessFixture(t *testing.T) readinessFixture {
	t.Helper()
	sim := pvesimtest.Start(t, pvesimtest.WithPlainHTTP())
	return readinessFixture{
		sim: sim, promURL: fakePrometheus(t).URL,
		// The same simulator behind a listener that is closed: PVE is down.
		stoppedPVE:  stoppedURL(sim.Sim.Handler()) + "/api2/json",
		stoppedProm: stoppedURL(http.NotFoundHandler()),
	}
}

// planner builds the production planner's readiness path, pinging Prometheus the way serve does.
func (f readinessFixture) planner(t *testing.T, pveURL, promURL string) *LivePlanner {
	t.Helper()
	client, err := pve.New(pve.Config{URL: pveURL, TokenID: f.sim.TokenID, TokenSecret: pve.Secret(f.sim.TokenSecret), Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	pc, err := api.NewClient(api.Config{Address: promURL})
	if err != nil {
		t.Fatal(err)
	}
	prom := promv1.NewAPI(pc)
	return &LivePlanner{PVE: client, Now: time.Now, PrometheusReady: func(ctx context.Context) error {
		_, err := prom.Buildinfo(ctx)
		return err
	}}
}

func TestLivePlannerReady(t *testing.T) {
	f := newReadinessFixture(t)
	tests := []struct {
		name            string
		pveURL, promURL string
		// want are the parts the error must name; none means ready.
		want, notWant []string
	}{
		{name: "both answer", pveURL: f.sim.URL, promURL: f.promURL},
		{name: "PVE down", pveURL: f.stoppedPVE, promURL: f.promURL, want: []string{"PVE:"}, notWant: []string{"prometheus:"}},
		{name: "Prometheus down", pveURL: f.sim.URL, promURL: f.stoppedProm, want: []string{"prometheus:"}, notWant: []string{"PVE:"}},
		{name: "both down", pveURL: f.stoppedPVE, promURL: f.stoppedProm, want: []string{"PVE:", "prometheus:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := f.planner(t, tt.pveURL, tt.promURL).Ready(ctx)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Ready = %v, want ready", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Ready = nil, want an error naming %v", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Ready = %q, want it to name %q", err, w)
				}
			}
			for _, nw := range tt.notWant {
				if strings.Contains(err.Error(), nw) {
					t.Errorf("Ready = %q blames %q, which answers", err, nw)
				}
			}
		})
	}
}

// /-/ready serves LivePlanner.Ready: 200 while PVE and Prometheus answer, 503 naming the part that does not.
func TestReadyEndpointWithLivePlanner(t *testing.T) {
	f := newReadinessFixture(t)
	tests := []struct {
		name            string
		pveURL, promURL string
		code            int
		want            string
	}{
		{name: "ready", pveURL: f.sim.URL, promURL: f.promURL, code: http.StatusOK, want: "OK"},
		{name: "PVE down", pveURL: f.stoppedPVE, promURL: f.promURL, code: http.StatusServiceUnavailable, want: "not ready: PVE:"},
		{name: "Prometheus down", pveURL: f.sim.URL, promURL: f.stoppedProm, code: http.StatusServiceUnavailable, want: "not ready: prometheus:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, settings(policy.ModeDryRun), func(o *Options) { o.Planner = f.planner(t, tt.pveURL, tt.promURL) })
			code, body := h.do(t, http.MethodGet, "/-/ready", "", "")
			if code != tt.code || !strings.Contains(body, tt.want) {
				t.Errorf("/-/ready = %d %s, want %d containing %q", code, body, tt.code, tt.want)
			}
		})
	}
}
