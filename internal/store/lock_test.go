package store

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestHelperHoldStore is not a test: run by TestOpenLockedByAnotherProcess in a child process, it opens the
// store named by PB_STORE_HOLD, says "open", and holds it until its stdin closes.
func TestHelperHoldStore(t *testing.T) {
	path := os.Getenv("PB_STORE_HOLD")
	if path == "" {
		t.Skip("helper process only")
	}
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("helper: %v", err)
	}
	defer s.Close()
	os.Stdout.WriteString("open\n")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
}

func TestOpenLockedByAnotherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHoldStore$")
	cmd.Env = append(os.Environ(), "PB_STORE_HOLD="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "open" {
		t.Fatalf("helper said %q, %v", line, err)
	}

	start := time.Now()
	s, err := Open(path, Options{LockTimeout: 300 * time.Millisecond})
	if err == nil {
		_ = s.Close()
		t.Fatal("Open succeeded while another process holds the store")
	}
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), path) {
		t.Errorf("err = %v, want ErrLocked naming %s", err, path)
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Errorf("Open waited %s", waited)
	}

	// Once the other process is gone the store opens.
	_ = stdin.Close()
	_ = cmd.Wait()
	s, err = Open(path, Options{LockTimeout: time.Second})
	if err != nil {
		t.Fatalf("Open after the other process ended: %v", err)
	}
	_ = s.Close()
}
