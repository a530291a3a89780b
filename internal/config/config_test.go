package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/proxbalance/proxbalance/internal/policy"
)

// testEnv reads real files and a fixed environment.
func testEnv(vars map[string]string) Env {
	return Env{
		LookupEnv: func(k string) (string, bool) { v, ok := vars[k]; return v, ok },
		ReadFile:  os.ReadFile,
	}
}

func TestLoadValid(t *testing.T) {
	r, err := LoadFile("testdata/valid.yml", testEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"mode", r.Mode, policy.ModeManual},
		{"threshold set", r.Placement.Thresholds.CPU, 0.7},
		{"threshold default kept", r.Placement.Thresholds.Memory, 0.70},
		{"placement min improvement", r.Placement.MinImprovement, 10.0},
		{"rollback window", r.PolicyGates.RollbackWindow, 48 * time.Hour},
		{"max per run", r.PolicyGates.MaxPerRun, 2},
		{"max concurrent default", r.PolicyGates.MaxConcurrent, policy.DefaultMaxConcurrent},
		{"quorum default", r.PolicyGates.RequireQuorum, true},
		{"whitelist", r.PolicyGates.Whitelist, true},
		{"windows", len(r.PolicyGates.Windows), 1},
		{"window zone", r.PolicyGates.Windows[0].Location.String(), "Europe/Berlin"},
		{"window start", r.PolicyGates.Windows[0].Start, 22 * 60},
		{"blackout days", fmt.Sprint(r.PolicyGates.Blackouts[0].Days), "[Saturday]"},
		{"selector", r.Prometheus.Selector["cluster"], "lab"},
		{"plan ttl", r.Plans.TTL, 30 * time.Minute},
		{"store retention", time.Duration(r.Store.Retention), 30 * 24 * time.Hour},
		{"max body default", r.Web.MaxBodyBytes, int64(1 << 20)},
		{"pve secret", string(r.PVETokenSecret), "pve-secret-value"},
		{"api token", string(r.APIToken), "api-secret-value"},
		{"webhook token", string(r.WebhookToken), "webhook-secret-value"},
		{"pve config secret", string(r.PVEConfig().TokenSecret), "pve-secret-value"},
		{"history windows", fmt.Sprint(r.HistoryConfig().Windows), "[1h0m0s 168h0m0s]"},
		{"history resolution default", r.HistoryConfig().Resolution, 5 * time.Minute},
		{"history horizon", r.History.Horizon.String(), "1w"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if err := r.PolicyGates.Validate(); err != nil {
		t.Errorf("derived gates invalid: %v", err)
	}
	if err := r.PVEConfig().Validate(); err != nil {
		t.Errorf("derived PVE config invalid: %v", err)
	}
}

func TestSecretsFromEnvironment(t *testing.T) {
	yml := "pve:\n  url: https://127.0.0.1:8006\n  token_id: balancer@pve!pb\n"
	r, err := Load([]byte(yml), testEnv(map[string]string{
		DefaultPVETokenEnv: " pve-env \n", DefaultAPITokenEnv: "api-env",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if r.PVETokenSecret != "pve-env" || r.APIToken != "api-env" {
		t.Errorf("secrets = %q, %q", r.PVETokenSecret, r.APIToken)
	}
	if r.WebhookToken != r.APIToken {
		t.Errorf("webhook token defaults to the API token; got a different one")
	}
	_, err = Load([]byte(yml), testEnv(map[string]string{DefaultAPITokenEnv: "api-env"}))
	if want := "line 1: pve.token_secret_env: $PB_PVE_TOKEN_SECRET is not set"; err == nil || err.Error() != want {
		t.Errorf("missing env: err = %v, want %q", err, want)
	}
	_, err = Load([]byte(yml+"auth:\n  token_file: testdata/nope.txt\n"), testEnv(map[string]string{DefaultPVETokenEnv: "x"}))
	if err == nil || !strings.HasPrefix(err.Error(), "line 5: auth.token_file: reading secret: open testdata/nope.txt") {
		t.Errorf("missing file: err = %v", err)
	}
}

func TestSecretsNeverPrinted(t *testing.T) {
	r, err := LoadFile("testdata/valid.yml", testEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{r.Redacted(), fmt.Sprintf("%v %+v %#v", r, *r, r.APIToken), fmt.Sprint(r.PVETokenSecret, r.WebhookToken)} {
		for _, secret := range []string{"pve-secret-value", "api-secret-value", "webhook-secret-value"} {
			if strings.Contains(s, secret) {
				t.Errorf("output shows %s:\n%s", secret, s)
			}
		}
	}
	if got := r.APIToken.String(); got != "<secret>" {
		t.Errorf("String() = %q", got)
	}
}

func TestLoadInvalid(t *testing.T) {
	cases := []struct{ file, want string }{
		{"invalid-cooldowns.yml", "line 9: gates.failure_cooldown: 1h0m0s is shorter than gates.cooldown 2h0m0s"},
		{"invalid-day.yml", `line 9: gates.windows[0].days: day "funday": want mon, tue, wed, thu, fri, sat or sun`},
		{"invalid-duplicate-key.yml", `line 8: mode: mapping key "mode" already defined at line 7`},
		{"invalid-empty.yml", "empty config"},
		{"invalid-history-resolution.yml", "line 9: history: resolution 500ms: must be a whole number of seconds, at least 1s"},
		{"invalid-history-window.yml", `line 8: history.windows: unknown unit "x" in duration "7x"`},
		{"invalid-inline-secret.yml", `line 4: pve: unknown field "token_secret" (known: ca_file, insecure_skip_verify, timeout, token_id, token_secret_env, token_secret_file, url)`},
		{"invalid-listen-address.yml", `line 8: web.listen_address: "9876": want host:port`},
		{"invalid-mode.yml", `line 7: mode: "yolo": want dry-run, manual or auto`},
		{"invalid-no-auth.yml", "line 5: auth: set token_file or token_env: mutating endpoints need a bearer token"},
		{"invalid-no-token-id.yml", "line 1: pve.token_id: missing"},
		{"invalid-not-mapping.yml", "line 1: the config must be a mapping"},
		{"invalid-plan-ttl.yml", "line 8: plans.ttl: 10s is shorter than 1m"},
		{"invalid-prometheus-url.yml", `line 8: prometheus.url: "127.0.0.1:9090" is not an http(s) URL`},
		{"invalid-pve-url.yml", `line 2: pve.url "ftp://pve": scheme must be https (or http for a simulator)`},
		{"invalid-retention-failure-cooldown.yml", "line 10: store.retention: 30d is shorter than gates.failure_cooldown 1000h0m0s: the cooldown gates read the last attempt from the journal"},
		{"invalid-retention-rollback-window.yml", "line 8: gates.rollback_window: 200h0m0s is outside [1h, 168h]\nline 10: store.retention: 8d is shorter than gates.rollback_window 200h0m0s: the rollback gate reads departures from the journal"},
		{"invalid-retention-short.yml", "line 8: store.retention: 3d is shorter than 1w"},
		{"invalid-retention-unit.yml", `line 8: store.retention: not a valid duration string: "90"`},
		{"invalid-retention-zero.yml", "line 9: store.retention: 0s is shorter than 1w"},
		{"invalid-rollback-window.yml", "line 8: gates.rollback_window: 200h0m0s is outside [1h, 168h]"},
		{"invalid-threshold.yml", "line 9: placement.thresholds.cpu: 1.5 is outside [0.01, 0.99]"},
		{"invalid-time-zone.yml", `line 11: gates.blackouts[0].time_zone: "Mars/Olympus" is not a known IANA time zone`},
		{"invalid-type.yml", "line 8: gates.max_migrations_per_run: cannot unmarshal !!str `three` into int"},
		{"invalid-unknown-field.yml", `line 8: gates: unknown field "max_migration_per_run" (known: blackouts, cooldown, failure_cooldown, max_concurrent_migrations, max_migrations_per_run, min_confidence, min_improvement, require_quorum, rollback_window, whitelist, windows)`},
		{"invalid-unknown-in-list.yml", `line 11: gates.windows[0]: unknown field "timezone" (known: days, end, start, time_zone)`},
		{"invalid-unknown-nested.yml", `line 9: placement.thresholds: unknown field "cpuu" (known: cpu, iowait, memory)`},
		{"invalid-window-time.yml", `line 9: gates.windows[0].start: time "25:00": out of range`},
	}
	files, _ := filepath.Glob("testdata/invalid-*.yml")
	if len(files) != len(cases) {
		t.Errorf("%d invalid-*.yml files, %d cases: every file needs its expected message", len(files), len(cases))
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", c.file))
			if err != nil {
				t.Fatal(err)
			}
			_, err = Load(data, testEnv(nil))
			if err == nil {
				t.Fatalf("loaded; want %q", c.want)
			}
			if err.Error() != c.want {
				t.Errorf("error:\n got  %s\n want %s", err, c.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yml")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("pve: &a {url: x}\nprometheus: *a\n"))
	f.Add([]byte("gates:\n  windows: [{start: '24:00', end: '00:00'}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		// Whatever parses is valid and survives a round trip through its own rendering.
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted a config that Validate rejects: %v", err)
		}
		if _, err := Parse([]byte(c.Redacted())); err != nil {
			t.Fatalf("re-parsing the rendered config: %v\n%s", err, c.Redacted())
		}
	})
}

// TestDocumentedExample keeps docs/pb-balancer.example.yml valid and its comments true.
func TestDocumentedExample(t *testing.T) {
	data, err := os.ReadFile("../../docs/pb-balancer.example.yml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	def := Default()
	if c.Gates.RollbackWindow != def.Gates.RollbackWindow || c.Gates.MaxMigrationsPerRun != def.Gates.MaxMigrationsPerRun ||
		c.Mode != def.Mode || c.Plans != def.Plans || c.Store.Retention != def.Store.Retention || c.History.Horizon != def.History.Horizon || len(c.History.Windows) != 3 || c.Web != def.Web || c.Placement.Thresholds != def.Placement.Thresholds {
		t.Errorf("the example claims to show defaults but differs:\n%s", c.Redacted())
	}
}
