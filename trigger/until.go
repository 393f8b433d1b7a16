package trigger

import (
	"fmt"
	"strings"
	"time"
)

// DefaultUntilClock is the time of day of an until that names a day without a time
// ("tomorrow", "monday"): the start of a working day.
const DefaultUntilClock = 8 * 60

// weekdays are the names an until may give a day by, full and as schedules abbreviate them.
var weekdays = map[string]time.Weekday{
	"sunday": time.Sunday, "monday": time.Monday, "tuesday": time.Tuesday, "wednesday": time.Wednesday,
	"thursday": time.Thursday, "friday": time.Friday, "saturday": time.Saturday,
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

// ParseUntil reads when a timed profile ends, as people say it, relative to now and in loc
// (the user's time zone):
//
//   - an RFC 3339 time: 2026-06-01T16:00:00+02:00;
//   - a duration: 90m, 1h30m;
//   - a time of day: 16:00, today, or tomorrow when 16:00 has passed;
//   - tomorrow, with a time or without (08:00): "tomorrow 08:00", "tomorrow";
//   - a weekday, with a time or without (08:00), the next such day after today: "monday",
//     "fri 12:30".
//
// Times of day follow the zone's daylight-saving changes as schedules do (WallClock): 16:00 is
// 16:00 on the wall clock that day, and a time the clock skips is the moment it jumps.
func ParseUntil(s string, now time.Time, loc *time.Location) (time.Time, error) {
	in := strings.ToLower(strings.Join(strings.Fields(s), " "))
	if t, err := time.Parse(time.RFC3339, strings.TrimSpace(s)); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(in); err == nil {
		return now.Add(d), nil
	}
	bad := fmt.Errorf(`%q is neither an RFC 3339 time, a duration such as 90m, a time such as 16:00, "tomorrow 08:00" nor a weekday such as "monday" or "fri 12:30"`, s)
	local := now.In(loc)
	day, clock, _ := strings.Cut(in, " ")
	minutes := DefaultUntilClock
	if clock != "" {
		m, err := parseClock(clock)
		if err != nil {
			return time.Time{}, bad
		}
		minutes = m
	}
	y, mo, d := local.Date()
	at := func(days int) time.Time {
		t := time.Date(y, mo, d+days, 12, 0, 0, 0, loc) // noon: the date, whatever the zone does
		ty, tm, td := t.Date()
		return WallClock(ty, tm, td, minutes, loc)
	}
	switch wd, isDay := weekdays[day]; {
	case day == "tomorrow":
		return at(1), nil
	case isDay:
		ahead := (int(wd) - int(local.Weekday()) + 7) % 7
		if ahead == 0 {
			ahead = 7
		}
		return at(ahead), nil
	case clock == "":
		m, err := parseClock(day)
		if err != nil {
			return time.Time{}, bad
		}
		minutes = m
		if t := at(0); t.After(now) {
			return t, nil
		}
		return at(1), nil
	}
	return time.Time{}, bad
}
