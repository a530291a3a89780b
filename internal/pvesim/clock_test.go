package pvesim

import (
	"testing"
	"time"
)

func TestClocks(t *testing.T) {
	origin := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	sc := NewScaledClock(origin, 1000)
	time.Sleep(5 * time.Millisecond)
	if d := sc.Now().Sub(origin); d < 5*time.Second {
		t.Errorf("scaled clock at speed 1000 moved %s after 5ms, want ≥ 5s", d)
	}
	mc := NewManualClock(origin)
	mc.Advance(90 * time.Second)
	mc.Advance(-time.Hour)
	if got := mc.Now(); !got.Equal(origin.Add(90 * time.Second)) {
		t.Errorf("manual clock at %s, want +90s and never backwards", got)
	}
}
