package policy

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Window is a recurring weekly period in a time zone, e.g. Mon–Fri 22:00–06:00 Europe/Berlin. Times are wall
// clock: across a DST change the window keeps its local hours (a 01:00–03:00 window is one hour long on the
// night clocks spring forward). End before Start spans midnight; Days then name the day the window opens on.
type Window struct {
	// Days the window opens on; empty means every day.
	Days []time.Weekday
	// Start and End are minutes after local midnight, End exclusive; Start == End means the whole day.
	Start, End int
	// Location is the time zone; nil means UTC.
	Location *time.Location
}

// ParseClock reads "HH:MM" (00:00–24:00) into minutes after midnight.
func ParseClock(s string) (int, error) {
	var h, m int
	if len(s) != 5 || s[2] != ':' {
		return 0, fmt.Errorf("time %q: want HH:MM", s)
	}
	if _, err := fmt.Sscanf(s, "%02d:%02d", &h, &m); err != nil {
		return 0, fmt.Errorf("time %q: want HH:MM", s)
	}
	if h < 0 || m < 0 || m > 59 || h > 24 || (h == 24 && m != 0) {
		return 0, fmt.Errorf("time %q: out of range", s)
	}
	return h*60 + m, nil
}

var dayNames = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

// ParseDay reads a three-letter day name ("mon") or a full one ("Monday"), case-insensitively.
func ParseDay(s string) (time.Weekday, error) {
	k := strings.ToLower(strings.TrimSpace(s))
	if len(k) >= 3 {
		if d, ok := dayNames[k[:3]]; ok && (len(k) == 3 || strings.EqualFold(k, d.String())) {
			return d, nil
		}
	}
	return 0, fmt.Errorf("day %q: want mon, tue, wed, thu, fri, sat or sun", s)
}

// Validate checks the bounds.
func (w Window) Validate() error {
	if w.Start < 0 || w.Start > 24*60 || w.End < 0 || w.End > 24*60 {
		return errors.New("start and end must be within 00:00–24:00")
	}
	return nil
}

func (w Window) opensOn(d time.Weekday) bool {
	if len(w.Days) == 0 {
		return true
	}
	for _, x := range w.Days {
		if x == d {
			return true
		}
	}
	return false
}

// Contains reports whether t is inside the window.
func (w Window) Contains(t time.Time) bool {
	loc := w.Location
	if loc == nil {
		loc = time.UTC
	}
	lt := t.In(loc)
	min := lt.Hour()*60 + lt.Minute()
	start, end := w.Start%(24*60), w.End%(24*60)
	switch {
	case start == end: // the whole day
		return w.opensOn(lt.Weekday())
	case start < end:
		return w.opensOn(lt.Weekday()) && min >= start && min < end
	default: // over midnight: the evening part belongs to today, the morning part to yesterday
		if min >= start {
			return w.opensOn(lt.Weekday())
		}
		return min < end && w.opensOn((lt.Weekday()+6)%7)
	}
}

// String renders the window as "mon,tue 22:00-06:00 Europe/Berlin".
func (w Window) String() string {
	var b strings.Builder
	for i, d := range w.Days {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strings.ToLower(d.String()[:3]))
	}
	if len(w.Days) > 0 {
		b.WriteByte(' ')
	}
	fmt.Fprintf(&b, "%02d:%02d-%02d:%02d", w.Start/60, w.Start%60, w.End/60, w.End%60)
	if w.Location != nil {
		b.WriteString(" " + w.Location.String())
	}
	return b.String()
}
