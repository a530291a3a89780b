package promtest

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// TestSyncBufferConcurrentWrites writes from many goroutines while reading; -race proves the locking and the
// count proves no line is lost or torn.
func TestSyncBufferConcurrentWrites(t *testing.T) {
	const writers, lines = 8, 100
	var buf SyncBuffer
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range lines {
				fmt.Fprintf(&buf, "writer=%d line=%d\n", w, i)
				_ = buf.String()
			}
		})
	}
	wg.Wait()
	got := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(got) != writers*lines {
		t.Fatalf("%d lines, want %d", len(got), writers*lines)
	}
	for _, line := range got {
		var w, i int
		if _, err := fmt.Sscanf(line, "writer=%d line=%d", &w, &i); err != nil {
			t.Errorf("torn line %q: %v", line, err)
		}
	}
}
