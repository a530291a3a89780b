package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/common/promslog"

	"github.com/proxbalance/proxbalance/internal/exporter"
	"github.com/proxbalance/proxbalance/internal/pve"
	"github.com/proxbalance/proxbalance/internal/pvesim/pvesimtest"
)

func TestParseFlagsCollectorToggles(t *testing.T) {
	tests := []struct {
		name        string
		args        []string
		wantOn      []string
		wantOff     []string
		wantDropped int
	}{
		{"defaults", nil, []string{"cluster", "node", "guest", "config", "subscription", "qdevice"}, nil, 0},
		{"python style qdevice off", []string{"--no-collector.qdevice"}, []string{"cluster"}, []string{"qdevice"}, 0},
		{"python style off", []string{"--no-collector.config", "--no-collector.replication"}, []string{"guest"}, []string{"config", "replication"}, 0},
		{"last wins", []string{"--no-collector.guest", "--collector.guest"}, []string{"guest"}, nil, 0},
		{"explicit false", []string{"--collector.placement=false"}, nil, []string{"placement"}, 0},
		{"compat status group", []string{"--no-collector.status"}, []string{"guest"}, nil, 1},
		{"compat resources group", []string{"--no-collector.resources", "--no-collector.version"}, nil, nil, 21},
		{"accepted no-ops", []string{"--collector.pve-api-metrics", "--no-collector.target-metrics"}, nil, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseFlags(tt.args, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			specs, drop := o.enabled()
			on := map[string]bool{}
			for _, s := range specs {
				on[s.Name] = true
			}
			for _, n := range tt.wantOn {
				if !on[n] {
					t.Errorf("collector %s off, want on", n)
				}
			}
			for _, n := range tt.wantOff {
				if on[n] {
					t.Errorf("collector %s on, want off", n)
				}
			}
			if len(drop) != tt.wantDropped {
				t.Errorf("dropped %d families, want %d", len(drop), tt.wantDropped)
			}
		})
	}
}

func TestParseFlagsErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--server.certfile=cert.pem"},
		{"--collector.guest=maybe"},
		{"--log.level=loud"},
		{"stray"},
	} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
	o, err := parseFlags([]string{"--web.listen-address=127.0.0.1:1", "--web.listen-address=127.0.0.1:2"}, io.Discard)
	if err != nil || len(o.listen) != 2 {
		t.Errorf("repeated --web.listen-address = %v, %v", o.listen, err)
	}
	if o, _ := parseFlags(nil, io.Discard); len(o.listen) != 1 || o.listen[0] != ":9221" {
		t.Errorf("default listen address = %v, want :9221", o.listen)
	}
}

// recordingSources answers every target with inv and reports one API request per scrape to the observer.
func recordingSources(inv *pve.Inventory) SourceFactoryBuilder {
	return func(_ *options, observer exporter.RequestObserver, _ log.Logger) exporter.SourceFactory {
		return func(context.Context, string, exporter.Module) (exporter.Source, error) {
			return exporter.SourceFunc(func(context.Context) (*pve.Inventory, error) {
				observer.ObserveRequest(http.MethodGet, "/cluster/resources", 200, 20*time.Millisecond, nil)
				return inv, nil
			}), nil
		}
	}
}

func testInventory() *pve.Inventory {
	return &pve.Inventory{
		Cluster: pve.Cluster{Name: "pvec", Quorate: true, NodeCount: 1},
		Nodes:   []pve.Node{{Name: "pve1", Online: true, Local: true, CPUs: 4}},
		Guests:  []pve.Guest{{Type: pve.TypeQEMU, VMID: 100, Node: "pve1", Status: "running"}},
	}
}

func get(t *testing.T, h http.Handler, url string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, url, nil))
	return rec.Code, rec.Body.String()
}

func TestServerEndpoints(t *testing.T) {
	env := map[string]string{"PVE_USER": "p@pve", "PVE_TOKEN_NAME": "t", "PVE_TOKEN_VALUE": "s3cret"}
	cfg, _, err := loadConfig("unused.yml", func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	o, err := parseFlags([]string{"--no-collector.status"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := newServer(o, cfg, log.NewNopLogger(), recordingSources(testInventory()))

	tests := []struct {
		url, want, absent string
		code              int
	}{
		{"/", "PVE Exporter", "", http.StatusOK},
		{"/nope", "404", "", http.StatusNotFound},
		{"/pve?target=127.0.0.1", `pve_guest_info{id="qemu/100"`, "pve_up{", http.StatusOK},
		{"/pve?module=nope", `Unknown module "nope"`, "", http.StatusBadRequest},
		{"/metrics", `pve_exporter_api_request_duration_seconds_count{endpoint="/cluster/resources"} 1`, "s3cret", http.StatusOK},
		{"/metrics", `pve_exporter_module_unknown_total 1`, "", http.StatusOK},
		{"/metrics", "go_goroutines", "", http.StatusOK},
		{"/metrics", `pve_collection_duration_seconds_count{module="default"} 1`, "", http.StatusOK},
	}
	for _, tt := range tests {
		code, body := get(t, h, tt.url)
		if code != tt.code || !strings.Contains(body, tt.want) || (tt.absent != "" && strings.Contains(body, tt.absent)) {
			t.Errorf("GET %s = %d, want %d containing %q without %q:\n%.2000s", tt.url, code, tt.code, tt.want, tt.absent, body)
		}
	}
}

func TestUnreachableTargetYieldsFailedScrape(t *testing.T) {
	cfg := &exporter.Config{Modules: map[string]exporter.Module{"default": {User: "p@pve", Password: "x", Timeout: 1}}}
	o, _ := parseFlags(nil, io.Discard)
	var logs bytes.Buffer
	h, _ := newServer(o, cfg, log.NewLogfmtLogger(log.NewSyncWriter(&logs)), pveSources)
	// A loopback port that nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	code, body := get(t, h, "/pve?target="+addr)
	if code != http.StatusOK || !strings.Contains(body, `pve_exporter_scrape_collector_success{collector="inventory"} 0`) ||
		strings.Contains(body, "<html") {
		t.Errorf("GET /pve = %d:\n%s", code, body)
	}
	if !strings.Contains(logs.String(), "connection refused") {
		t.Errorf("log does not say why the scrape failed:\n%s", logs.String())
	}
}

func TestRealSourcesScrapeSimulator(t *testing.T) {
	srv := pvesimtest.Start(t)
	user, tokenName, _ := strings.Cut(srv.AuditTokenID, "!")
	cfg := &exporter.Config{Modules: map[string]exporter.Module{"default": {
		User: user, TokenName: tokenName, TokenValue: pve.Secret(srv.AuditTokenSecret),
		VerifySSL: exporter.TLSVerify{Verify: false}, Port: 8006, Timeout: 5,
	}}}
	o, _ := parseFlags(nil, io.Discard)
	h, _ := newServer(o, cfg, log.NewNopLogger(), pveSources)
	target := strings.TrimPrefix(srv.BaseURL, "https://")
	code, body := get(t, h, "/pve?target="+target)
	if code != http.StatusOK || !strings.Contains(body, `pve_exporter_scrape_collector_success{collector="inventory"} 1`) ||
		!strings.Contains(body, `pve_up{id="node/pve1"} 1`) {
		t.Fatalf("GET /pve = %d:\n%.3000s", code, body)
	}
	_, self := get(t, h, "/metrics")
	for _, want := range []string{
		`pve_exporter_api_request_duration_seconds_count{endpoint="/cluster/resources"} 1`,
		`pve_exporter_api_request_duration_seconds_count{endpoint="/nodes/{node}/status"} 5`,
	} {
		if !strings.Contains(self, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestRunConfigCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "pve.yml")
	bad := filepath.Join(dir, "bad.yml")
	if err := os.WriteFile(good, []byte("default:\n  user: p@pve\n  password: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("default:\n  user: p@pve\n  pasword: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	noEnv := func(string) (string, bool) { return "", false }
	var stderr bytes.Buffer
	if rc := run(context.Background(), []string{"--config.file", good, "--config.check"}, &stderr, noEnv, recordingSources(nil)); rc != 0 {
		t.Errorf("good config: exit %d\n%s", rc, stderr.String())
	}
	stderr.Reset()
	if rc := run(context.Background(), []string{"--config.file", bad, "--config.check"}, &stderr, noEnv, recordingSources(nil)); rc != 1 ||
		!strings.Contains(stderr.String(), `line 3: unknown field \"pasword\"`) {
		t.Errorf("bad config: exit %d, want 1 naming the line and field:\n%s", rc, stderr.String())
	}
}

func TestLoggerCaller(t *testing.T) {
	var buf bytes.Buffer
	logger, _ := newLogger(&buf, promslog.NewLevel())
	_, _, line, _ := runtime.Caller(0)
	level.Info(logger).Log("msg", "hello")
	level.Debug(logger).Log("msg", "filtered out at the default level")
	if want := fmt.Sprintf("level=info caller=main_test.go:%d msg=hello\n", line+1); !strings.HasSuffix(buf.String(), want) || strings.Count(buf.String(), "\n") != 1 {
		t.Errorf("got %q, want a line ending in %q", buf.String(), want)
	}
}

func TestSlogBridge(t *testing.T) {
	var buf bytes.Buffer
	base := level.NewFilter(log.NewLogfmtLogger(&buf), level.AllowInfo())
	logger := newSlogLogger(base).With("component", "web").WithGroup("tls")
	_, _, line, _ := runtime.Caller(0)
	logger.Warn("handshake failed", "remote", "127.0.0.1:5000", slog.Group("cert", "cn", "pve1"))
	logger.Debug("filtered out")
	got := buf.String()
	want := fmt.Sprintf(`level=warn component=web caller=main_test.go:%d msg="handshake failed" tls.remote=127.0.0.1:5000 tls.cert.cn=pve1`+"\n", line+1)
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}
