package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/proxbalance/proxbalance/internal/promtest"
	"github.com/proxbalance/proxbalance/internal/pvesim"
	"github.com/proxbalance/proxbalance/internal/pvesim/pvesimtest"
)

// buildBinary compiles a command of this module into dir.
func buildBinary(t *testing.T, dir, pkg, name string) string {
	t.Helper()
	out := filepath.Join(dir, name)
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build %s: %v", pkg, err)
	}
	cmd := exec.Command(goBin, "build", "-o", out, pkg)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", pkg, err, b)
	}
	return out
}

// emptyPrometheus answers like a Prometheus without data: every query succeeds with no series.
func emptyPrometheus(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/api/v1/query_range":
			fmt.Fprint(w, `{"status":"success","data":{"resultType":"matrix","result":[]}}`)
		case "/api/v1/query":
			fmt.Fprint(w, `{"status":"success","data":{"resultType":"vector","result":[]}}`)
		case "/api/v1/status/buildinfo":
			fmt.Fprint(w, `{"status":"success","data":{"version":"3.0.0"}}`)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// killScenario: evacuating pve1 moves qemu/100 with a 40 GiB local disk; at 512 MiB per simulated second and
// 10 simulated seconds per second, its migration runs for about 8 s of wall time.
const killScenario = `name: kill
migration_bandwidth: 512MiB
nodes:
  - {name: pve1, cores: 16, memory: 64GiB}
  - {name: pve2, cores: 16, memory: 64GiB}
storages:
  - {id: local-zfs, type: zfspool, content: "images,rootdir", size: 1TiB}
guests:
  - {vmid: 100, name: web, node: pve1, cores: 2, memory: 4GiB, disks: [{storage: local-zfs, size: 40GiB}]}
`

type process struct {
	cmd  *exec.Cmd
	logs *promtest.SyncBuffer
}

func startProcess(t *testing.T, bin string, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(bin, args...), logs: &promtest.SyncBuffer{}}
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
		}
	})
	return p
}

func getJSON(t *testing.T, url, auth string, v any) int {
	t.Helper()
	return doJSON(t, http.MethodGet, url, auth, v)
}

// doJSON sends a bodiless request and decodes a 200 answer into v; it returns the status, 0 when unreachable.
func doJSON(t *testing.T, method, url, auth string, v any) int {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if v != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s: %v\n%s", url, err, b)
		}
	}
	return resp.StatusCode
}

func poll(t *testing.T, what string, timeout time.Duration, logs func() string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s\n%s", what, logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestKillDuringMigrationThenRestart runs the real binaries: pve-sim, and pb-balancer serve, killed with
// SIGKILL while a migration runs and started again. The restarted balancer adopts the running task from
// /cluster/tasks: the guest migrates exactly once and the journal records the outcome.
func TestKillDuringMigrationThenRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries")
	}
	dir := t.TempDir()
	balancer := buildBinary(t, dir, ".", "pb-balancer")
	simBin := buildBinary(t, dir, "../pve-sim", "pve-sim")
	for name, content := range map[string]string{"scenario.yml": killScenario, "sim-token": "sim-admin-secret\n", "audit-token": "sim-audit-secret\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	simAddr := promtest.FreeAddr(t)
	sim := startProcess(t, simBin, "-web.listen-address", simAddr, "-plain-http", "-speed", "10",
		"-scenario", filepath.Join(dir, "scenario.yml"), "-token-file", filepath.Join(dir, "sim-token"),
		"-audit-token-file", filepath.Join(dir, "audit-token"), "-log.level", "warn")
	simURL := "http://" + simAddr
	simAuth := "PVEAPIToken=" + pvesim.AdminTokenID + "=sim-admin-secret"
	poll(t, "pve-sim", 20*time.Second, sim.logs.String, func() bool {
		return getJSON(t, simURL+"/api2/json/version", simAuth, nil) == http.StatusOK
	})

	prom := emptyPrometheus(t)
	listen := promtest.FreeAddr(t)
	cfgPath := writeConfig(t, testConfig{pveURL: simURL, promURL: prom.URL, listen: listen, mode: "manual", pveSecret: "sim-admin-secret"})
	cfgText, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + listen
	const apiAuth = "Bearer serve-api-token"

	first := startProcess(t, balancer, "serve", "-config.file", cfgPath, "-log.level", "debug")
	poll(t, "the balancer", 20*time.Second, first.logs.String, func() bool { return getJSON(t, base+"/-/ready", "", nil) == http.StatusOK })
	var plan struct {
		Plan struct {
			ID    string
			Moves []struct{ Guest, Target string }
		} `json:"plan"`
	}
	if code := doJSON(t, http.MethodPost, base+"/api/v1/nodes/pve1/evacuation", apiAuth, &plan); code != http.StatusOK || len(plan.Plan.Moves) != 1 {
		t.Fatalf("evacuation plan: %d %+v\n%s", code, plan, first.logs.String())
	}
	req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/plans/"+plan.Plan.ID+"/approve", strings.NewReader(`{"by":"alice"}`))
	req.Header.Set("Authorization", apiAuth)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("approve: %d\n%s", resp.StatusCode, first.logs.String())
	}
	poll(t, "the migration to run", 20*time.Second, first.logs.String, func() bool {
		var active []map[string]any
		return getJSON(t, base+"/api/v1/migrations/active", "", &active) == http.StatusOK && len(active) == 1
	})

	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.cmd.Wait()

	second := startProcess(t, balancer, "serve", "-config.file", cfgPath, "-log.level", "debug")
	type row struct{ Guest, Target, Outcome, UPID string }
	var rows []row
	poll(t, "the restarted balancer to settle the migration", 60*time.Second, second.logs.String, func() bool {
		rows = nil
		return getJSON(t, base+"/api/v1/migrations", "", &rows) == http.StatusOK && len(rows) == 1 && rows[0].Outcome == "succeeded"
	})
	if rows[0].Guest != "qemu/100" || rows[0].Target != plan.Plan.Moves[0].Target {
		t.Errorf("journal: %+v", rows)
	}
	// Depending on timing the restarted balancer finds the task still running (followed) or already ended
	// (closed), or, when the kill came between the migrate call and journaling its UPID, finds it in the
	// cluster task list (adopted); either way it re-issues nothing (counted below).
	if l := second.logs.String(); !strings.Contains(l, "journal reconciled") ||
		!(strings.Contains(l, "followed=1") || strings.Contains(l, "closed=1") || strings.Contains(l, "adopted=1")) {
		t.Errorf("the restart did not settle the running migration:\n%s", l)
	}

	var tasks struct {
		Data []struct {
			Type, ID, Status string
		} `json:"data"`
	}
	if code := getJSON(t, simURL+"/api2/json/cluster/tasks", simAuth, &tasks); code != http.StatusOK {
		t.Fatalf("cluster tasks: %d", code)
	}
	migrations := 0
	for _, task := range tasks.Data {
		if task.Type == "qmigrate" && task.ID == "100" {
			migrations++
			if task.Status != "OK" && !strings.HasPrefix(task.Status, "WARNINGS") {
				t.Errorf("migration task ended %q", task.Status)
			}
		}
	}
	if migrations != 1 {
		t.Errorf("%d migration tasks for qemu/100, want exactly 1", migrations)
	}
	var res struct {
		Data []struct {
			ID, Node string
		} `json:"data"`
	}
	getJSON(t, simURL+"/api2/json/cluster/resources?type=vm", simAuth, &res)
	for _, r := range res.Data {
		if r.ID == "qemu/100" && r.Node != plan.Plan.Moves[0].Target {
			t.Errorf("qemu/100 is on %s, want %s", r.Node, plan.Plan.Moves[0].Target)
		}
	}
	// SIGHUP reloads through the same path as POST /-/reload: a good file is applied, a bad one is refused and
	// the balancer keeps serving with the previous configuration.
	poll(t, "the restarted balancer to listen", 20*time.Second, second.logs.String, func() bool {
		return getJSON(t, base+"/-/healthy", "", nil) == http.StatusOK
	})
	hup := func(want string) {
		t.Helper()
		before := strings.Count(second.logs.String(), want)
		if err := second.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		poll(t, want, 10*time.Second, second.logs.String, func() bool { return strings.Count(second.logs.String(), want) > before })
	}
	hup("configuration reloaded")
	if err := os.WriteFile(cfgPath, append(cfgText, []byte("gates:\n  rollback_window: 1000h\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	hup("reload failed; keeping the previous configuration")
	if !strings.Contains(second.logs.String(), "gates.rollback_window: 1000h0m0s is outside [1h, 168h]") {
		t.Errorf("the failed reload does not say why:\n%s", second.logs.String())
	}
	if code := getJSON(t, base+"/-/healthy", "", nil); code != http.StatusOK {
		t.Errorf("after a bad reload: %d", code)
	}

	for _, p := range []*process{first, second} {
		for _, secret := range []string{"serve-api-token", "serve-webhook-token", "sim-admin-secret"} {
			if strings.Contains(p.logs.String(), secret) {
				t.Errorf("a balancer log line shows a secret")
			}
		}
	}
}

// plannedMove is a move as GET /api/v1/plans/{id} shows it.
type plannedMove struct{ Guest, Source, Target string }

// movesLanded checks that the guest of every started move is on its target in the simulator and returns how
// many are.
func movesLanded(t *testing.T, sim *pvesimtest.Server, moves []plannedMove, started map[string]bool) int {
	t.Helper()
	landed := 0
	for _, m := range moves {
		if !started[m.Guest] {
			continue
		}
		var vmid int
		fmt.Sscanf(m.Guest[strings.Index(m.Guest, "/")+1:], "%d", &vmid)
		if node, _, _ := sim.Sim.GuestNode(vmid); node != m.Target {
			t.Errorf("%s is on %s, want %s", m.Guest, node, m.Target)
		} else {
			landed++
		}
	}
	return landed
}
