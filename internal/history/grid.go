package history

import (
	"fmt"
	"time"
)

// PrometheusMaxPoints is the most points Prometheus returns per series of one range query: it refuses a query
// whose (end-start)/step exceeds 11,000.
const PrometheusMaxPoints = 11000

// steps are the step sizes a grid may use. Each divides a day, so a grid aligned to multiples of its step from the
// Unix epoch is also aligned to the hour and the day, and consecutive planning cycles land on the same timestamps
// (the same samples, and the same entries in Prometheus' and any proxy's caches).
var steps = []time.Duration{
	time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second, 30 * time.Second,
	time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
	time.Hour, 2 * time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour,
}

// ChooseStep returns the smallest step from a fixed ladder of day-dividing durations (1s, 2s, 5s, ... 1m, 2m, 5m,
// ... 1h ... 24h) that is at least minStep and keeps a grid over window within maxPoints points.
func ChooseStep(window, minStep time.Duration, maxPoints int) (time.Duration, error) {
	if window <= 0 {
		return 0, fmt.Errorf("window %s: must be positive", window)
	}
	if maxPoints < 1 {
		return 0, fmt.Errorf("max points %d: must be at least 1", maxPoints)
	}
	for _, s := range steps {
		if s < minStep {
			continue
		}
		if pointsFor(window, s) <= maxPoints {
			return s, nil
		}
	}
	return 0, fmt.Errorf("window %s: no step up to %s keeps it within %d points (minimum step %s)",
		window, steps[len(steps)-1], maxPoints, minStep)
}

// pointsFor is the number of grid points that cover window at step: each point summarises the step before it.
func pointsFor(window, step time.Duration) int {
	return int((window + step - 1) / step)
}

// Grid is a shared time axis: Count points at Start, Start+Step, ..., End(). Each point stands for the step that
// ends at it (the recorded 5-minute averages, or the exporter's metrics averaged over max(step, 5m)).
type Grid struct {
	Start time.Time
	Step  time.Duration
	Count int
}

// AlignedGrid returns the grid of the given step that covers window and ends at the last multiple of step (since
// the Unix epoch) at or before at. Repeated calls within one step return the same grid.
func AlignedGrid(at time.Time, window, step time.Duration) (Grid, error) {
	if step <= 0 || step%time.Second != 0 {
		return Grid{}, fmt.Errorf("step %s: must be a positive whole number of seconds", step)
	}
	if window <= 0 {
		return Grid{}, fmt.Errorf("window %s: must be positive", window)
	}
	stepS := int64(step / time.Second)
	endS := at.Unix()
	endS -= mod(endS, stepS)
	n := pointsFor(window, step)
	start := time.Unix(endS-int64(n-1)*stepS, 0).UTC()
	return Grid{Start: start, Step: step, Count: n}, nil
}

// mod is the non-negative remainder, so times before 1970 align the same way.
func mod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

// End is the time of the last point.
func (g Grid) End() time.Time { return g.Time(g.Count - 1) }

// Time is the time of point i.
func (g Grid) Time(i int) time.Time { return g.Start.Add(time.Duration(i) * g.Step) }

// Window is the span the grid's points summarise: Count steps.
func (g Grid) Window() time.Duration { return time.Duration(g.Count) * g.Step }

// Tail returns the grid of the last n points (all of them when n exceeds Count) and the index of its first
// point in g.
func (g Grid) Tail(n int) (Grid, int) {
	if n > g.Count {
		n = g.Count
	}
	if n < 0 {
		n = 0
	}
	off := g.Count - n
	return Grid{Start: g.Time(off), Step: g.Step, Count: n}, off
}

// index maps a sample timestamp (milliseconds since the epoch, as Prometheus sends it) to a grid point. ok is
// false when it lies outside the grid or between two points.
func (g Grid) index(tsMillis int64) (i int, ok bool) {
	stepMs := g.Step.Milliseconds()
	d := tsMillis - g.Start.UnixMilli()
	if d < 0 || d%stepMs != 0 {
		return 0, false
	}
	i64 := d / stepMs
	if i64 >= int64(g.Count) {
		return 0, false
	}
	return int(i64), true
}
