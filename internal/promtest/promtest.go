// Package promtest runs real Prometheus, promtool and Alertmanager binaries for tests: each process listens on
// 127.0.0.1 only, keeps its data in the test's temp dir and is stopped by PID when the test ends. A missing binary
// fails the test with the command that installs it, because CI installs them and a skipped test proves nothing.
package promtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// installHint is what a developer must run when a binary is missing.
const installHint = "run `make deps` (installs Debian's prometheus and prometheus-alertmanager packages)"

// LookBinary returns the path of the first of names found in PATH, or fails the test.
func LookBinary(t testing.TB, names ...string) string {
	t.Helper()
	for _, name := range names {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatalf("none of %v found in PATH: %s", names, installHint)
	return ""
}

// FreeAddr returns a 127.0.0.1 address with a port that was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free loopback port: %v", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatalf("releasing port %s: %v", addr, err)
	}
	return addr
}

// Process is a child process owned by a test.
type Process struct {
	Name    string
	Addr    string // host:port it listens on
	LogPath string

	cmd      *exec.Cmd
	done     chan struct{}
	waitErr  error
	stopOnce sync.Once
}

// URL is the process' base URL.
func (p *Process) URL() string { return "http://" + p.Addr }

// start runs bin with args, output to a log file in dir, and registers a cleanup that stops it by PID and shows
// the log when the test failed.
func start(t testing.TB, name, dir, addr, bin string, args ...string) *Process {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("creating %s log: %v", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// Own process group, so a stop also reaches anything the binary forks.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		t.Fatalf("starting %s: %v", name, err)
	}
	p := &Process{Name: name, Addr: addr, LogPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		_ = logFile.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			if b, err := os.ReadFile(logPath); err == nil {
				t.Logf("--- %s log (%s) ---\n%s", name, logPath, tail(b, 8<<10))
			}
		}
	})
	return p
}

// Stop sends SIGTERM to the process group, waits up to 10 s, then kills it.
func (p *Process) Stop() {
	p.stopOnce.Do(func() {
		pgid := -p.cmd.Process.Pid
		_ = syscall.Kill(pgid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(pgid, syscall.SIGKILL)
			<-p.done
		}
	})
}

// Exited reports whether the process has ended, and its wait error.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.waitErr
	default:
		return false, nil
	}
}

// waitReady polls url until it answers 200, the process exits, or the timeout passes.
func (p *Process) waitReady(t testing.TB, path string, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	for {
		if exited, err := p.Exited(); exited {
			b, _ := os.ReadFile(p.LogPath)
			t.Fatalf("%s exited before it was ready (%v):\n%s", p.Name, err, tail(b, 4<<10))
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.URL()+path, nil)
		if resp, err := client.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-ctx.Done():
			b, _ := os.ReadFile(p.LogPath)
			t.Fatalf("%s not ready at %s within %s:\n%s", p.Name, p.URL()+path, timeout, tail(b, 4<<10))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func tail(b []byte, n int) []byte {
	if len(b) <= n {
		return b
	}
	return append([]byte("…"), b[len(b)-n:]...)
}

// PrometheusOptions configure a test Prometheus.
type PrometheusOptions struct {
	// Config is the prometheus.yml content. Rule file paths in it are relative to the temp dir unless absolute.
	Config string
	// Files are written next to the config (name → content), e.g. rule files.
	Files map[string]string
	// DataDir, if set, is used as the TSDB path (e.g. prepared by Backfill); otherwise a fresh temp dir.
	DataDir string
	// ExtraArgs are appended to the command line.
	ExtraArgs []string
}

// StartPrometheus starts Prometheus on a free loopback port and waits until it is ready.
func StartPrometheus(t testing.TB, opts PrometheusOptions) *Process {
	t.Helper()
	bin := LookBinary(t, "prometheus")
	dir := t.TempDir()
	for name, content := range opts.Files {
		writeFile(t, filepath.Join(dir, name), content)
	}
	cfg := filepath.Join(dir, "prometheus.yml")
	writeFile(t, cfg, opts.Config)
	data := opts.DataDir
	if data == "" {
		data = filepath.Join(dir, "data")
	}
	addr := FreeAddr(t)
	args := append([]string{
		"--config.file=" + cfg,
		"--storage.tsdb.path=" + data,
		"--web.listen-address=" + addr,
		"--web.enable-lifecycle",
		"--log.level=warn",
	}, opts.ExtraArgs...)
	p := start(t, "prometheus", dir, addr, bin, args...)
	p.waitReady(t, "/-/ready", 60*time.Second)
	return p
}

// AlertmanagerOptions configure a test Alertmanager.
type AlertmanagerOptions struct {
	// Config is the alertmanager.yml content.
	Config string
}

// StartAlertmanager starts Alertmanager on a free loopback port with clustering off and waits until it is ready.
func StartAlertmanager(t testing.TB, opts AlertmanagerOptions) *Process {
	t.Helper()
	bin := LookBinary(t, "prometheus-alertmanager", "alertmanager")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "alertmanager.yml")
	writeFile(t, cfg, opts.Config)
	addr := FreeAddr(t)
	p := start(t, "alertmanager", dir, addr, bin,
		"--config.file="+cfg,
		"--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		// An empty cluster address disables gossip, which would otherwise listen on every interface.
		"--cluster.listen-address=",
		"--log.level=warn",
	)
	p.waitReady(t, "/-/ready", 60*time.Second)
	return p
}

// Promtool runs promtool with args and returns its combined output; a non-zero exit is returned as an error that
// carries the output.
func Promtool(ctx context.Context, t testing.TB, args ...string) (string, error) {
	t.Helper()
	bin := LookBinary(t, "promtool")
	cmd := exec.CommandContext(ctx, bin, args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			return out.String(), fmt.Errorf("promtool %v: exit %d: %s", args, exitErr.ExitCode(), out.String())
		}
		return out.String(), fmt.Errorf("promtool %v: %w", args, err)
	}
	return out.String(), nil
}

// Backfill writes OpenMetrics text into a new TSDB directory with `promtool tsdb create-blocks-from openmetrics`,
// for a Prometheus that should start with history. The text must end with "# EOF".
func Backfill(t testing.TB, openMetrics string) string {
	t.Helper()
	dir := t.TempDir()
	in := filepath.Join(dir, "input.om")
	writeFile(t, in, openMetrics)
	data := filepath.Join(dir, "data")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := Promtool(ctx, t, "tsdb", "create-blocks-from", "openmetrics", in, data); err != nil {
		t.Fatalf("backfilling: %v", err)
	}
	return data
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatalf("creating %s: %v", filepath.Dir(path), err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatalf("writing %s: %v", path, err)
	}
}
