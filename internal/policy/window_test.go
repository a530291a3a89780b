package policy

import (
	"testing"
	"time"
)

func mustLoad(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("loading %s: %v", name, err)
	}
	return loc
}

func TestWindowContains(t *testing.T) {
	berlin := mustLoad(t, "Europe/Berlin")
	ny := mustLoad(t, "America/New_York")
	weekdays := []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday}
	cases := []struct {
		name string
		w    Window
		at   time.Time
		want bool
	}{
		{"inside a day window", Window{Start: 9 * 60, End: 17 * 60}, time.Date(2026, 3, 4, 9, 0, 0, 0, time.UTC), true},
		{"end is exclusive", Window{Start: 9 * 60, End: 17 * 60}, time.Date(2026, 3, 4, 17, 0, 0, 0, time.UTC), false},
		{"whole day", Window{}, time.Date(2026, 3, 4, 23, 59, 0, 0, time.UTC), true},
		{"over midnight, evening", Window{Start: 22 * 60, End: 6 * 60}, time.Date(2026, 3, 4, 23, 0, 0, 0, time.UTC), true},
		{"over midnight, morning", Window{Start: 22 * 60, End: 6 * 60}, time.Date(2026, 3, 5, 5, 59, 0, 0, time.UTC), true},
		{"over midnight, afternoon", Window{Start: 22 * 60, End: 6 * 60}, time.Date(2026, 3, 5, 12, 0, 0, 0, time.UTC), false},
		// Fri 22:00 opens the window, so Sat 03:00 belongs to Friday's window; Sat 23:00 opens none.
		{"weekday window spills into Saturday", Window{Days: weekdays, Start: 22 * 60, End: 6 * 60}, time.Date(2026, 3, 7, 3, 0, 0, 0, time.UTC), true},
		{"no window opens on Saturday", Window{Days: weekdays, Start: 22 * 60, End: 6 * 60}, time.Date(2026, 3, 7, 23, 0, 0, 0, time.UTC), false},
		{"Monday morning belongs to Sunday", Window{Days: weekdays, Start: 22 * 60, End: 6 * 60}, time.Date(2026, 3, 9, 3, 0, 0, 0, time.UTC), false},
		{"time zone applies", Window{Start: 22 * 60, End: 23 * 60, Location: berlin}, time.Date(2026, 1, 10, 21, 30, 0, 0, time.UTC), true},
		{"time zone applies in summer", Window{Start: 22 * 60, End: 23 * 60, Location: berlin}, time.Date(2026, 7, 10, 21, 30, 0, 0, time.UTC), false},
		// 2026-03-29: Berlin springs forward at 02:00 CET → 03:00 CEST.
		{"DST spring: before the jump", Window{Start: 1 * 60, End: 3 * 60, Location: berlin}, time.Date(2026, 3, 29, 0, 30, 0, 0, time.UTC), true},
		{"DST spring: after the jump the window is over", Window{Start: 1 * 60, End: 3 * 60, Location: berlin}, time.Date(2026, 3, 29, 1, 0, 0, 0, time.UTC), false},
		// 2026-10-25: Berlin falls back at 03:00 CEST → 02:00 CET; 02:30 happens twice, both inside.
		{"DST fall: first 02:30", Window{Start: 2 * 60, End: 3 * 60, Location: berlin}, time.Date(2026, 10, 25, 0, 30, 0, 0, time.UTC), true},
		{"DST fall: second 02:30", Window{Start: 2 * 60, End: 3 * 60, Location: berlin}, time.Date(2026, 10, 25, 1, 30, 0, 0, time.UTC), true},
		{"DST fall over midnight in New York", Window{Days: []time.Weekday{time.Saturday}, Start: 23 * 60, End: 2 * 60, Location: ny}, time.Date(2026, 11, 1, 6, 30, 0, 0, time.UTC), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.w.Contains(c.at); got != c.want {
				t.Errorf("%s Contains(%s) = %v, want %v", c.w, c.at.In(c.w.Location).Format(time.RFC3339), got, c.want)
			}
		})
	}
}

func TestParseClockAndDay(t *testing.T) {
	for in, want := range map[string]int{"00:00": 0, "06:30": 390, "24:00": 1440} {
		if got, err := ParseClock(in); err != nil || got != want {
			t.Errorf("ParseClock(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"6:30", "25:00", "24:01", "12:60", "ab:cd", ""} {
		if _, err := ParseClock(bad); err == nil {
			t.Errorf("ParseClock(%q): want an error", bad)
		}
	}
	for in, want := range map[string]time.Weekday{"mon": time.Monday, "Sunday": time.Sunday, "SAT": time.Saturday} {
		if got, err := ParseDay(in); err != nil || got != want {
			t.Errorf("ParseDay(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"mo", "monx", "funday"} {
		if _, err := ParseDay(bad); err == nil {
			t.Errorf("ParseDay(%q): want an error", bad)
		}
	}
}
