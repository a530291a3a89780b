package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"

	"github.com/proxbalance/proxbalance/internal/config"
	"github.com/proxbalance/proxbalance/internal/executor"
	"github.com/proxbalance/proxbalance/internal/promtest"
	"github.com/proxbalance/proxbalance/internal/pvesim"
	"github.com/proxbalance/proxbalance/internal/pvesim/pvesimtest"
)

// testConfig is what the serve tests vary in a balancer config.
type testConfig struct {
	pveURL, promURL, listen, mode string
	// pveSecret is the PVE token secret (default: pvesimtest's admin token secret).
	pveSecret string
	// pveExtra and promExtra are indented lines added to the pve and prometheus sections; extra is appended.
	pveExtra, promExtra, extra string
}

// writeConfig writes a balancer config and its token files (API token serve-api-token, webhook token
// serve-webhook-token) into a temp dir and returns the config path.
func writeConfig(t *testing.T, c testConfig) string {
	t.Helper()
	dir := t.TempDir()
	if c.pveSecret == "" {
		c.pveSecret = pvesimtest.TokenSecret
	}
	for name, secret := range map[string]string{"pve-token": c.pveSecret, "api-token": "serve-api-token", "webhook-token": "serve-webhook-token"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(secret+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	yml := fmt.Sprintf(`pve:
  url: %s
  token_id: %s
  token_secret_file: %s/pve-token
%sprometheus:
  url: %s
%smode: %s
store:
  path: %s/state.db
web:
  listen_address: %s
auth:
  token_file: %s/api-token
  webhook_token_file: %s/webhook-token
plans:
  interval: 0s
%s`, c.pveURL, pvesim.AdminTokenID, dir, c.pveExtra, c.promURL, c.promExtra, c.mode, dir, c.listen, dir, dir, c.extra)
	p := filepath.Join(dir, "pb-balancer.yml")
	if err := os.WriteFile(p, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestServeConfigCheck(t *testing.T) {
	path := writeConfig(t, testConfig{pveURL: "http://127.0.0.1:1", promURL: "http://127.0.0.1:2", listen: "127.0.0.1:0", mode: "manual"})
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"serve", "-config.file", path, "-config.check"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	out := stdout.String()
	if !strings.Contains(out, "valid") || !strings.Contains(out, "mode: manual") {
		t.Errorf("output:\n%s", out)
	}
	for _, secret := range []string{pvesimtest.TokenSecret, "serve-api-token", "serve-webhook-token"} {
		if strings.Contains(out+stderr.String(), secret) {
			t.Errorf("-config.check printed a secret")
		}
	}
}

func TestServeBadConfig(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "bad.yml")
	if err := os.WriteFile(p, []byte("pve:\n  url: https://127.0.0.1:8006\n  token_id: a@pam!b\nmode: yolo\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"serve", "-config.file", p}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), `line 4: mode: "yolo": want dry-run, manual or auto`) {
		t.Errorf("exit %d, stderr %s", code, stderr.String())
	}
	if code := run(context.Background(), []string{"serve", "-log.level", "loud"}, &stdout, &stderr); code != 2 {
		t.Errorf("bad flag: exit %d", code)
	}
}

func TestServeWiring(t *testing.T) {
	sim := pvesimtest.Start(t, pvesimtest.WithPlainHTTP())
	prom := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/status/buildinfo" {
			fmt.Fprint(w, `{"status":"success","data":{"version":"3.0.0"}}`)
			return
		}
		http.NotFound(w, r)
	}))
	defer prom.Close()
	listen := promtest.FreeAddr(t)
	path := writeConfig(t, testConfig{pveURL: sim.BaseURL, promURL: prom.URL, listen: listen, mode: "dry-run",
		extra: "gates:\n  max_concurrent_migrations: 1\n"})
	cfg, err := config.LoadFile(path, config.OSEnv())
	if err != nil {
		t.Fatal(err)
	}
	logs := &promtest.SyncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	execs := make(chan *executor.Executor, 1)
	go func() {
		done <- serve(ctx, path, cfg, config.OSEnv(), func(c executor.Config) (balancerExecutor, error) {
			e, err := executor.New(c)
			if err == nil {
				execs <- e
			}
			return e, err
		}, log.NewLogfmtLogger(logs))
	}()
	base := "http://" + listen
	var resp *http.Response
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp, err = http.Get(base + "/-/ready")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not listening: %v\n%s", err, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("ready: %d %s", resp.StatusCode, body)
	}
	if !strings.Contains(logs.String(), `msg="journal reconciled"`) {
		t.Error("serve did not reconcile the journal before serving")
	}
	// send returns the status and body of a bodiless request.
	send := func(method, path, token string) (int, string) {
		req, _ := http.NewRequest(method, base+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	do := func(method, path, token string) int {
		code, _ := send(method, path, token)
		return code
	}
	exec := <-execs
	if got := exec.MaxConcurrent(); got != 1 {
		t.Errorf("executor max concurrent = %d, want the configured 1", got)
	}
	// A reload changes the executor's cap live (it is not a restart-only setting).
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw = bytes.Replace(raw, []byte("max_concurrent_migrations: 1"), []byte("max_concurrent_migrations: 3"), 1)
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if code := do(http.MethodPost, "/-/reload", "serve-api-token"); code != http.StatusOK {
		t.Errorf("reload: %d", code)
	}
	if got := exec.MaxConcurrent(); got != 3 {
		t.Errorf("executor max concurrent after the reload = %d, want 3", got)
	}
	if strings.Contains(logs.String(), "take effect after a restart") {
		t.Errorf("the reload warned about restart-only settings:\n%s", logs.String())
	}
	if code := do(http.MethodPut, "/api/v1/nodes/pve3/maintenance", "serve-webhook-token"); code != http.StatusUnauthorized {
		t.Errorf("maintenance with the webhook token: %d", code)
	}
	if code := do(http.MethodPut, "/api/v1/nodes/pve3/maintenance", "serve-api-token"); code != http.StatusOK {
		t.Errorf("maintenance: %d", code)
	}
	// The fake Prometheus has no history: the balancer refuses to plan and says why, rather than guessing.
	if code, body := send(http.MethodGet, "/api/v1/nodes/pve3/evacuation", ""); code != http.StatusServiceUnavailable ||
		!strings.Contains(body, "reading history from Prometheus") {
		t.Errorf("evacuation without history: %d %s", code, body)
	}
	if code := do(http.MethodPost, "/api/v1/nodes/pve3/evacuation", ""); code != http.StatusUnauthorized {
		t.Errorf("storing an evacuation without a token: %d", code)
	}
	_, metrics := send(http.MethodGet, "/metrics", "")
	for _, want := range []string{`proxbalance_node_maintenance{node="pve3"} 1`, "proxbalance_config_last_reload_successful 1", "go_goroutines",
		"# TYPE proxbalance_moves_total counter", "# TYPE proxbalance_migrations_in_flight gauge"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// One counter of moves by outcome and one in-flight gauge: the executor registers no copies of its own.
	if strings.Contains(metrics, "proxbalance_executor_") {
		t.Errorf("metrics still have proxbalance_executor_* series:\n%s", grepMetrics(metrics, "proxbalance_executor_"))
	}

	// Readiness needs Prometheus: once it is gone, /-/ready says so.
	prom.Close()
	if code, body := send(http.MethodGet, "/-/ready", ""); code != http.StatusServiceUnavailable || !strings.Contains(body, "prometheus:") {
		t.Errorf("ready with Prometheus closed: %d %s, want 503 naming prometheus", code, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve: %v", err)
	}
	for _, secret := range []string{pvesimtest.TokenSecret, "serve-api-token", "serve-webhook-token"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("a log line shows a secret:\n%s", logs.String())
		}
	}
}

// grepMetrics returns the lines of an exposition that contain sub.
func grepMetrics(exposition, sub string) string {
	var out []string
	for _, l := range strings.Split(exposition, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestStoreRetentionReloadsLive: store.retention reaches the server's settings and a reload applies it; only
// store.path needs a restart.
func TestStoreRetentionReloadsLive(t *testing.T) {
	base := config.Default()
	cases := []struct {
		name        string
		change      func(*config.Config)
		restartOnly []string
	}{
		{"retention", func(c *config.Config) { c.Store.Retention = config.Duration(14 * 24 * time.Hour) }, nil},
		{"path", func(c *config.Config) { c.Store.Path = "/elsewhere/state.db" }, []string{"store.path"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			next := config.Default()
			c.change(&next)
			old, cur := &config.Resolved{Config: &base}, &config.Resolved{Config: &next}
			if got := restartOnly(old, cur); !slices.Equal(got, c.restartOnly) {
				t.Errorf("restartOnly = %v, want %v", got, c.restartOnly)
			}
			if got, want := serverSettings(cur).Retention, time.Duration(next.Store.Retention); got != want {
				t.Errorf("server retention = %v, want %v", got, want)
			}
		})
	}
}
