package pvesim

import (
	"sync"
	"time"
)

// Clock tells the simulated time. Everything the simulator shows is a function of it.
type Clock interface {
	Now() time.Time
}

// ScaledClock runs simulated time at Speed times the wall clock, starting at Origin.
type ScaledClock struct {
	origin    time.Time
	wallStart time.Time
	speed     float64
}

// NewScaledClock starts a clock at origin that advances speed simulated seconds per wall second.
func NewScaledClock(origin time.Time, speed float64) *ScaledClock {
	if speed <= 0 {
		speed = 1
	}
	return &ScaledClock{origin: origin, wallStart: time.Now(), speed: speed}
}

// Now is origin + speed × wall time elapsed.
func (c *ScaledClock) Now() time.Time {
	return c.origin.Add(time.Duration(float64(time.Since(c.wallStart)) * c.speed))
}

// ManualClock only moves when told to; tests and /_sim/clock use it.
type ManualClock struct {
	mu sync.Mutex
	t  time.Time
}

// NewManualClock returns a clock stopped at t.
func NewManualClock(t time.Time) *ManualClock { return &ManualClock{t: t} }

// Now returns the current simulated time.
func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d (negative d is ignored: time never runs backwards).
func (c *ManualClock) Advance(d time.Duration) {
	if d <= 0 {
		return
	}
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}
