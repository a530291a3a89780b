package e2e

import (
	"bytes"
	"crypto/tls"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/proxbalance/proxbalance/internal/exporter"
	"github.com/proxbalance/proxbalance/internal/promtest"
	"github.com/proxbalance/proxbalance/internal/pve"
	"github.com/proxbalance/proxbalance/internal/pvesim/pvesimtest"
)

// harness is the exporter's /pve handler reading a simulator through the real PVE client and Snapshotter, as
// cmd/pve-exporter wires them, served on loopback.
type harness struct {
	sim     *pvesimtest.Server
	sources *exporter.PVESources
	self    *prometheus.Registry // the exporter's own metrics (/metrics)
	server  *httptest.Server
	// target is the simulator's host:port, as Prometheus passes it in ?target=.
	target string
	logs   *promtest.SyncBuffer
}

type harnessConfig struct {
	simOpts []pvesimtest.Option
	snap    pve.SnapshotterConfig
}

type harnessOption func(*harnessConfig)

func withSim(opts ...pvesimtest.Option) harnessOption {
	return func(c *harnessConfig) { c.simOpts = append(c.simOpts, opts...) }
}

func withSnapshotter(cfg pve.SnapshotterConfig) harnessOption {
	return func(c *harnessConfig) { c.snap = cfg }
}

func startHarness(t testing.TB, opts ...harnessOption) *harness {
	t.Helper()
	var cfg harnessConfig
	for _, o := range opts {
		o(&cfg)
	}
	sim := pvesimtest.Start(t, cfg.simOpts...)
	target := strings.TrimPrefix(sim.BaseURL, "https://")
	module := readOnlyModule(t, sim, target)
	conf := &exporter.Config{Modules: map[string]exporter.Module{exporter.DefaultModule: module}}

	logs := new(promtest.SyncBuffer)
	logger := log.NewLogfmtLogger(logs)
	self := prometheus.NewRegistry()
	metrics := exporter.NewMetrics(self, conf.ModuleNames())
	sources := exporter.NewPVESources(exporter.PVESourceOpts{Observer: metrics, Logger: logger, Snapshotter: cfg.snap})
	handler := exporter.NewHandler(exporter.HandlerOpts{
		Config:     func() *exporter.Config { return conf },
		NewSource:  sources.Source,
		Collectors: exporter.Collectors(),
		Metrics:    metrics,
		Logger:     logger,
	})
	mux := http.NewServeMux()
	mux.Handle("/pve", handler)
	server := httptest.NewServer(mux)
	t.Cleanup(server.Close)
	return &harness{sim: sim, sources: sources, self: self, server: server, target: target, logs: logs}
}

// readOnlyModule is a pve.yml module with the simulator's PVEAuditor token, verifying its certificate against a
// CA file (verify_ssl: <path>), as a production configuration would.
func readOnlyModule(t testing.TB, sim *pvesimtest.Server, target string) exporter.Module {
	t.Helper()
	user, tokenName, _ := strings.Cut(sim.AuditTokenID, "!")
	return exporter.Module{
		User: user, TokenName: tokenName, TokenValue: pve.Secret(sim.AuditTokenSecret),
		VerifySSL: exporter.TLSVerify{Verify: true, CAFile: writeServerCA(t, target)},
		Port:      8006, Timeout: 5, Backend: "https", Service: "PVE",
	}
}

// writeServerCA writes the self-signed certificate the server at addr presents into a PEM file.
func writeServerCA(t testing.TB, addr string) string {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // only to read the certificate
	if err != nil {
		t.Fatalf("reading the simulator's certificate: %v", err)
	}
	defer conn.Close()
	certs := conn.ConnectionState().PeerCertificates
	var b bytes.Buffer
	if err := pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: certs[0].Raw}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "pve-ca.pem")
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// scrape GETs /pve for the simulator with query (e.g. "cluster=1&node=1"); timeout > 0 sends
// X-Prometheus-Scrape-Timeout-Seconds.
func (h *harness) scrape(t testing.TB, query string, timeout time.Duration) (int, string) {
	t.Helper()
	url := h.server.URL + "/pve?target=" + h.target
	if query != "" {
		url += "&" + query
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if timeout > 0 {
		req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", strconv.FormatFloat(timeout.Seconds(), 'f', -1, 64))
	}
	res, err := h.server.Client().Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, string(body)
}

// apiCalls is the number of PVE API requests the exporter has made so far.
func (h *harness) apiCalls() (total uint64, byEndpoint map[string]uint64) {
	byEndpoint = h.sources.APICalls()
	for _, n := range byEndpoint {
		total += n
	}
	return total, byEndpoint
}

// selfExposition is the exporter's own metrics (/metrics) in the text format.
func (h *harness) selfExposition(t testing.TB) string {
	t.Helper()
	mfs, err := h.self.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}
