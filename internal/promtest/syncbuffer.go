package promtest

import (
	"bytes"
	"sync"
)

// SyncBuffer collects the log lines of code under test that logs from several goroutines (concurrent scrapes,
// a server's handlers, a child process's output) while the test reads them. The zero value is ready to use.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}
