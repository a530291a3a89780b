// Package demo holds the configuration templates of `make demo` (scripts/demo.sh renders them into its work
// directory); its tests check that what the script renders is accepted by every part of the stack. The whole
// stack's run, alert → plan, is `make demo-check` (about 80 seconds), which is not a unit test.
package demo

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/proxbalance/proxbalance/internal/config"
	"github.com/proxbalance/proxbalance/internal/exporter"
)

const script = "../../scripts/demo.sh"

// render runs `scripts/demo.sh --render` into a fresh directory with the given environment additions.
func render(t *testing.T, env ...string) string {
	t.Helper()
	dir := t.TempDir()
	out, err := runScript(t, env, "--render", dir)
	if err != nil {
		t.Fatalf("demo.sh --render: %v\n%s", err, out)
	}
	return dir
}

func runScript(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{script}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// tool returns the path of an external checker; CI installs them with `make deps`, and a skipped check proves
// nothing, so a missing one fails.
func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed: run `make deps`: %v", name, err)
	}
	return p
}

func check(t *testing.T, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, tool(t, name), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func TestRenderedConfigsAreValid(t *testing.T) {
	dir := render(t)
	for _, f := range []string{"pve.yml", "prometheus.yml", "alertmanager.yml", "pb-balancer.yml", "alerts.demo.yml"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if m := regexp.MustCompile(`@[A-Z_]+@`).Find(b); m != nil {
			t.Errorf("%s: placeholder %s left unrendered", f, m)
		}
	}
	for _, f := range []string{"pve-admin-token", "pve-audit-token", "api-token", "webhook-token"} {
		fi, err := os.Stat(filepath.Join(dir, "secrets", f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() < 32 || fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("secret %s: %d bytes, mode %v; want a random token only its owner reads", f, fi.Size(), fi.Mode().Perm())
		}
	}

	// Prometheus loads the configuration with its rule files (rules/recording.yml and the demo alerts).
	check(t, "promtool", "check", "config", filepath.Join(dir, "prometheus.yml"))
	check(t, "amtool", "check-config", filepath.Join(dir, "alertmanager.yml"))

	// The balancer's strict loader, with its secret files, as `pb-balancer serve -config.check` runs it.
	cfg, err := config.LoadFile(filepath.Join(dir, "pb-balancer.yml"), config.OSEnv())
	if err != nil {
		t.Fatalf("pb-balancer.yml: %v", err)
	}
	if cfg.Config.Mode != "manual" {
		t.Errorf("mode %q, want manual: the demo shows approval", cfg.Config.Mode)
	}

	// The exporter's strict module loader; the CA file is fetched from pve-sim when the demo starts.
	if err := os.WriteFile(filepath.Join(dir, "pve-sim-ca.pem"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	mods, err := exporter.LoadConfigFile(filepath.Join(dir, "pve.yml"))
	if err != nil {
		t.Fatalf("pve.yml: %v", err)
	}
	if mod, ok := mods.Modules[exporter.DefaultModule]; !ok || mod.TokenName != "proxbalance-audit" {
		t.Errorf("pve.yml default module %+v: want the simulator's read-only token", mod)
	}
}

// TestDemoAlertsAreTheRealOnesWithShortFor pins the demo copy to rules/alerts.yml: the same text except every
// `for:`, which is PB_DEMO_ALERT_FOR.
func TestDemoAlertsAreTheRealOnesWithShortFor(t *testing.T) {
	real, err := os.ReadFile("../../rules/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"1m", "30s"} {
		t.Run(want, func(t *testing.T) {
			dir := render(t, "PB_DEMO_ALERT_FOR="+want)
			demo, err := os.ReadFile(filepath.Join(dir, "alerts.demo.yml"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(demo, []byte("DEMO COPY")) {
				t.Error("the demo copy does not say it is one")
			}
			forLine := regexp.MustCompile(`(?m)^(\s+for:\s*)\S+$`)
			got := forLine.ReplaceAll(stripComments(demo), []byte("${1}X"))
			wantText := forLine.ReplaceAll(stripComments(real), []byte("${1}X"))
			if !bytes.Equal(got, wantText) {
				t.Error("the demo copy differs from rules/alerts.yml outside its for: lines")
			}
			fors := forLine.FindAllSubmatch(demo, -1)
			if len(fors) == 0 || len(fors) != len(forLine.FindAll(real, -1)) {
				t.Fatalf("%d for: lines in the demo copy", len(fors))
			}
			for _, m := range regexp.MustCompile(`(?m)^\s+for:\s*(\S+)$`).FindAllSubmatch(demo, -1) {
				if string(m[1]) != want {
					t.Errorf("for: %s, want %s", m[1], want)
				}
			}
			check(t, "promtool", "check", "rules", filepath.Join(dir, "alerts.demo.yml"))
		})
	}
}

func stripComments(b []byte) []byte {
	var out [][]byte
	for _, l := range bytes.Split(b, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(l), []byte("#")) {
			out = append(out, l)
		}
	}
	return bytes.Join(out, []byte("\n"))
}

// TestTakenPortIsRefused: nothing starts when a port is in use, and the message names the port and the variable
// that moves it.
func TestTakenPortIsRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	bin := t.TempDir()
	for _, b := range []string{"pve-sim", "pve-exporter", "pb-balancer"} {
		// Stand-ins that fail loudly if the script went on to start anything.
		if err := os.WriteFile(filepath.Join(bin, b), []byte("#!/bin/sh\necho started >&2\nexit 3\n"), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{"PB_DEMO_BIN=" + bin, "PB_DEMO_PROMETHEUS_PORT=" + port}
	// The other ports are free ones, so that a demo running on the defaults does not change the answer.
	for _, v := range []string{"PB_DEMO_SIM_PORT", "PB_DEMO_EXPORTER_PORT", "PB_DEMO_ALERTMANAGER_PORT", "PB_DEMO_BALANCER_PORT"} {
		env = append(env, v+"="+freePort(t))
	}
	out, err := runScript(t, env, "--check")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("exit %v, want 1:\n%s", err, out)
	}
	if !strings.Contains(out, "127.0.0.1:"+port+" for Prometheus is taken") || !strings.Contains(out, "PB_DEMO_PROMETHEUS_PORT") {
		t.Errorf("message does not name the port and its variable:\n%s", out)
	}
	if strings.Contains(out, "started") {
		t.Errorf("something started:\n%s", out)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}
