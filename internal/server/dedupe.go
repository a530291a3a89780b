package server

import (
	"sync"
	"time"
)

// deliveryKey identifies one state of one alert: Alertmanager redelivers it (retries, HA pairs) with the same
// fingerprint, start time and status.
type deliveryKey struct {
	fingerprint string
	startsAt    int64
	status      string
}

// dedupeCache remembers deliveries for a fixed time, in memory, bounded. Every entry lives equally long, so
// insertion order is expiry order and a FIFO evicts both the expired and, when full, the oldest.
//
// It is deliberately not durable: answering a storm of 1,000 alerts must not cost 1,000 fsyncs. After a
// restart a redelivered alert may ask for a plan again; plan IDs are deterministic and every approved move is
// re-validated against the live cluster, so nothing moves twice.
type dedupeCache struct {
	mu    sync.Mutex
	ttl   time.Duration
	max   int
	seen  map[deliveryKey]time.Time
	order []deliveryKey
	head  int
}

func newDedupeCache(ttl time.Duration, max int) *dedupeCache {
	return &dedupeCache{ttl: ttl, max: max, seen: make(map[deliveryKey]time.Time)}
}

// first records k at now and reports whether it was not already remembered.
func (c *dedupeCache) first(k deliveryKey, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.head < len(c.order) {
		oldest := c.order[c.head]
		if exp, ok := c.seen[oldest]; ok && now.Before(exp) && len(c.seen) < c.max {
			break
		}
		delete(c.seen, oldest)
		c.head++
	}
	if c.head > len(c.order)/2 && c.head > 1024 { // compact the FIFO now and then
		c.order = append([]deliveryKey(nil), c.order[c.head:]...)
		c.head = 0
	}
	if exp, ok := c.seen[k]; ok && now.Before(exp) {
		return false
	}
	c.seen[k] = now.Add(c.ttl)
	c.order = append(c.order, k)
	return true
}

func (c *dedupeCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}
