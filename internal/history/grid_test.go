package history

import (
	"strings"
	"testing"
	"time"
)

func TestChooseStep(t *testing.T) {
	const day = 24 * time.Hour
	tests := []struct {
		name      string
		window    time.Duration
		minStep   time.Duration
		maxPoints int
		want      time.Duration
		points    int
	}{
		{"1h at 1s fits whole", time.Hour, time.Second, PrometheusMaxPoints, time.Second, 3600},
		{"24h at 1s needs 10s", day, time.Second, PrometheusMaxPoints, 10 * time.Second, 8640},
		{"7d at 1s needs 1m", 7 * day, time.Second, PrometheusMaxPoints, time.Minute, 10080},
		{"1h at default 5m", time.Hour, DefaultResolution, PrometheusMaxPoints, 5 * time.Minute, 12},
		{"24h at default 5m", day, DefaultResolution, PrometheusMaxPoints, 5 * time.Minute, 288},
		{"7d at default 5m", 7 * day, DefaultResolution, PrometheusMaxPoints, 5 * time.Minute, 2016},
		{"90d at 5m needs 15m", 90 * day, DefaultResolution, PrometheusMaxPoints, 15 * time.Minute, 8640},
		{"minimum between ladder steps rounds up", time.Hour, 40 * time.Second, PrometheusMaxPoints, time.Minute, 60},
		{"exactly at the limit", 11000 * time.Second, time.Second, PrometheusMaxPoints, time.Second, 11000},
		{"one past the limit", 11001 * time.Second, time.Second, PrometheusMaxPoints, 2 * time.Second, 5501},
		{"uneven window rounds points up", 61 * time.Minute, 5 * time.Minute, PrometheusMaxPoints, 5 * time.Minute, 13},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ChooseStep(tt.window, tt.minStep, tt.maxPoints)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("ChooseStep(%s, %s, %d) = %s, want %s", tt.window, tt.minStep, tt.maxPoints, got, tt.want)
			}
			if p := pointsFor(tt.window, got); p != tt.points || p > tt.maxPoints {
				t.Fatalf("points = %d, want %d (max %d)", p, tt.points, tt.maxPoints)
			}
		})
	}
}

func TestChooseStepErrors(t *testing.T) {
	tests := []struct {
		window    time.Duration
		maxPoints int
		want      string
	}{
		{0, 100, "window 0s: must be positive"},
		{time.Hour, 0, "max points 0: must be at least 1"},
		{400 * 24 * time.Hour, 10, "no step up to 24h0m0s keeps it within 10 points"},
	}
	for _, tt := range tests {
		_, err := ChooseStep(tt.window, time.Second, tt.maxPoints)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ChooseStep(%s, 1s, %d) error = %v, want it to contain %q", tt.window, tt.maxPoints, err, tt.want)
		}
	}
}

func TestAlignedGrid(t *testing.T) {
	at := time.Date(2026, 11, 27, 10, 17, 42, 500, time.UTC)
	tests := []struct {
		name      string
		at        time.Time
		window    time.Duration
		step      time.Duration
		wantStart time.Time
		wantEnd   time.Time
		wantCount int
	}{
		{"1h at 5m", at, time.Hour, 5 * time.Minute,
			time.Date(2026, 11, 27, 9, 20, 0, 0, time.UTC), time.Date(2026, 11, 27, 10, 15, 0, 0, time.UTC), 12},
		{"7d at 5m", at, 7 * 24 * time.Hour, 5 * time.Minute,
			time.Date(2026, 11, 20, 10, 20, 0, 0, time.UTC), time.Date(2026, 11, 27, 10, 15, 0, 0, time.UTC), 2016},
		{"exactly on a boundary", time.Date(2026, 11, 27, 10, 15, 0, 0, time.UTC), 15 * time.Minute, 5 * time.Minute,
			time.Date(2026, 11, 27, 10, 5, 0, 0, time.UTC), time.Date(2026, 11, 27, 10, 15, 0, 0, time.UTC), 3},
		{"other time zone aligns the same", at.In(time.FixedZone("X", 3*3600+1800)), time.Hour, time.Hour,
			time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC), time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC), 1},
		{"before the epoch", time.Unix(-301, 0), 10 * time.Minute, 5 * time.Minute,
			time.Unix(-900, 0).UTC(), time.Unix(-600, 0).UTC(), 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := AlignedGrid(tt.at, tt.window, tt.step)
			if err != nil {
				t.Fatal(err)
			}
			if !g.Start.Equal(tt.wantStart) || !g.End().Equal(tt.wantEnd) || g.Count != tt.wantCount {
				t.Fatalf("grid = %s..%s ×%d, want %s..%s ×%d", g.Start, g.End(), g.Count, tt.wantStart, tt.wantEnd, tt.wantCount)
			}
			if g.Start.Unix()%int64(tt.step/time.Second) != 0 {
				t.Fatalf("start %s is not a multiple of %s", g.Start, tt.step)
			}
		})
	}
	// Two cycles within one step see the same grid.
	a, _ := AlignedGrid(at, time.Hour, 5*time.Minute)
	b, _ := AlignedGrid(at.Add(2*time.Minute), time.Hour, 5*time.Minute)
	if a != b {
		t.Fatalf("grids within one step differ: %+v vs %+v", a, b)
	}
	if _, err := AlignedGrid(at, time.Hour, 1500*time.Millisecond); err == nil {
		t.Fatal("a fractional-second step was accepted")
	}
}

func TestGridIndexAndTail(t *testing.T) {
	g := Grid{Start: time.Unix(600, 0), Step: time.Minute, Count: 5}
	tests := []struct {
		ms     int64
		want   int
		wantOK bool
	}{
		{600_000, 0, true},
		{840_000, 4, true},
		{900_000, 0, false}, // one past the end
		{540_000, 0, false}, // before the start
		{630_000, 0, false}, // between two points
	}
	for _, tt := range tests {
		if i, ok := g.index(tt.ms); i != tt.want || ok != tt.wantOK {
			t.Errorf("index(%d) = %d, %v; want %d, %v", tt.ms, i, ok, tt.want, tt.wantOK)
		}
	}
	tail, off := g.Tail(2)
	if off != 3 || tail.Count != 2 || !tail.Start.Equal(time.Unix(780, 0)) || !tail.End().Equal(g.End()) {
		t.Fatalf("Tail(2) = %+v, %d", tail, off)
	}
	if all, off := g.Tail(99); off != 0 || all != g {
		t.Fatalf("Tail(99) = %+v, %d; want the whole grid", all, off)
	}
	if g.Window() != 5*time.Minute {
		t.Fatalf("Window() = %s", g.Window())
	}
}
