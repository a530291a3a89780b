package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"

	"github.com/proxbalance/proxbalance/internal/config"
	"github.com/proxbalance/proxbalance/internal/exporter"
	"github.com/proxbalance/proxbalance/internal/promtest"
	"github.com/proxbalance/proxbalance/internal/pve"
	"github.com/proxbalance/proxbalance/internal/pvesim/pvesimtest"
)

// startExporter serves the exporter for sim on loopback, reading it with the read-only token.
func startExporter(t *testing.T, sim *pvesimtest.Server, caFile string) string {
	t.Helper()
	client, err := pve.New(pve.Config{URL: sim.BaseURL, TokenID: sim.AuditTokenID, TokenSecret: pve.Secret(sim.AuditTokenSecret), CAFile: caFile})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	snapshots := pve.NewSnapshotter(client, pve.SnapshotterConfig{MaxAge: time.Second, Parts: pve.AllParts})
	cfg := &exporter.Config{Modules: map[string]exporter.Module{exporter.DefaultModule: {}}}
	srv := httptest.NewServer(exporter.NewHandler(exporter.HandlerOpts{
		Config: func() *exporter.Config { return cfg },
		NewSource: func(context.Context, string, exporter.Module) (exporter.Source, error) {
			return exporter.SourceFunc(func(ctx context.Context) (*pve.Inventory, error) {
				return snapshots.Inventory(ctx, pve.InventoryOptions{})
			}), nil
		},
		Collectors: exporter.Collectors(),
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// testAlert is the project's CPU pressure alert without its 15-minute "for", so the test need not wait.
const testAlert = `groups:
  - name: test
    rules:
      - alert: PVENodeCPUPressure
        expr: node:pve_cpu_usage_ratio:avg5m > 0.80
        labels:
          severity: warning
          proxbalance_action: relieve
`

// TestAlertChainRelievesHotNode runs the whole loop with real parts: pve-sim's default cluster (pve1 is hot),
// the exporter, a real Prometheus scraping it and evaluating the recording rules and a CPU pressure alert, a
// real Alertmanager posting to the balancer's webhook with its bearer token, and the balancer (pb-balancer
// serve's wiring, the real planner and executor) planning from that history. An operator approves; the
// guests migrate in the simulator.
func TestAlertChainRelievesHotNode(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Prometheus and Alertmanager")
	}
	sim := pvesimtest.Start(t)
	caFile := sim.CAFile(t)
	exporterAddr := startExporter(t, sim, caFile)
	listen := promtest.FreeAddr(t)
	webhookToken := filepath.Join(t.TempDir(), "webhook-token")
	if err := os.WriteFile(webhookToken, []byte("serve-webhook-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	am := promtest.StartAlertmanager(t, promtest.AlertmanagerOptions{Config: fmt.Sprintf(`route:
  receiver: balancer
  group_by: [alertname, node]
  group_wait: 1s
  group_interval: 1s
receivers:
  - name: balancer
    webhook_configs:
      - url: http://%s/api/v1/alerts
        send_resolved: true
        http_config:
          authorization:
            credentials_file: %s
`, listen, webhookToken)})
	rules, err := filepath.Abs("../../rules/recording.yml")
	if err != nil {
		t.Fatal(err)
	}
	prom := promtest.StartPrometheus(t, promtest.PrometheusOptions{
		Files: map[string]string{"test-alert.yml": testAlert},
		Config: fmt.Sprintf(`global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}
rule_files: [%q, test-alert.yml]
alerting:
  alertmanagers: [{static_configs: [{targets: [%q]}]}]
scrape_configs:
  - job_name: pve
    metrics_path: /pve
    params: {target: [sim]}
    static_configs: [{targets: [%q]}]
`, rules, am.Addr, exporterAddr)})

	// Seconds of history stand in for days: the horizon is the window, so coverage is full.
	cfgPath := writeConfig(t, testConfig{
		pveURL: sim.BaseURL, promURL: prom.URL(), listen: listen, mode: "manual",
		pveExtra:  fmt.Sprintf("  ca_file: %s\n", caFile),
		promExtra: fmt.Sprintf("  selector: {job: pve, instance: %q}\n", exporterAddr),
		extra:     "history:\n  windows: [10s]\n  resolution: 1s\n  horizon: 10s\n",
	})
	cfg, err := config.LoadFile(cfgPath, config.OSEnv())
	if err != nil {
		t.Fatal(err)
	}
	// The balancer starts once the recorded series cover its whole 10s window; Alertmanager, which has been
	// failing to reach it, then delivers.
	api := promtest.API(t, prom)
	if v, err := promtest.QueryUntil(t.Context(), t, api, `ALERTS{alertname="PVENodeCPUPressure",node="pve1",alertstate="firing"}`, 90*time.Second); err != nil || len(v) != 1 {
		t.Fatalf("the alert does not fire for pve1: %v %v", v, err)
	}
	time.Sleep(12 * time.Second)

	logs := &promtest.SyncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfgPath, cfg, config.OSEnv(), realExecutor, log.NewLogfmtLogger(logs)) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	base := "http://" + listen

	type planRec struct {
		State   string `json:"state"`
		Trigger string `json:"trigger"`
		Plan    struct {
			ID    string
			Moves []plannedMove
		} `json:"plan"`
	}
	var plan planRec
	poll(t, "Alertmanager's notification to become a plan", 90*time.Second, logs.String, func() bool {
		var plans []planRec
		if getJSON(t, base+"/api/v1/plans", "", &plans) != http.StatusOK {
			return false
		}
		for _, p := range plans {
			if p.Trigger == "alert:PVENodeCPUPressure pve1" {
				plan = p
				return true
			}
		}
		return false
	})
	if len(plan.Plan.Moves) == 0 || plan.State != "pending" {
		t.Fatalf("plan %+v", plan)
	}
	for _, m := range plan.Plan.Moves {
		if m.Source != "pve1" || m.Target == "pve1" {
			t.Errorf("move %+v does not relieve pve1", m)
		}
	}

	req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/plans/"+plan.Plan.ID+"/approve", strings.NewReader(`{"by":"oncall"}`))
	req.Header.Set("Authorization", "Bearer serve-api-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("approve: %d %s", resp.StatusCode, body)
	}
	var verdicts struct {
		Moves []struct {
			Guest, Outcome string
			Reasons        []string
		}
	}
	if err := json.Unmarshal(body, &verdicts); err != nil {
		t.Fatal(err)
	}
	started := map[string]bool{}
	for _, v := range verdicts.Moves {
		if v.Outcome == "started" {
			started[v.Guest] = true
		}
	}
	if len(started) == 0 {
		t.Fatalf("approval started nothing: %s", body)
	}

	// The simulator's clock is manual: move it so the migrations progress, until the plan settles.
	poll(t, "the plan to be executed", 120*time.Second, logs.String, func() bool {
		sim.Clock.Advance(5 * time.Second)
		var p planRec
		getJSON(t, base+"/api/v1/plans/"+plan.Plan.ID, "", &p)
		return p.State == "executed" || p.State == "partially-executed"
	})
	movesLanded(t, sim, plan.Plan.Moves, started)
	for _, secret := range []string{"serve-api-token", "serve-webhook-token", sim.TokenSecret} {
		if strings.Contains(logs.String(), secret) {
			t.Error("a log line shows a secret")
		}
	}
}
