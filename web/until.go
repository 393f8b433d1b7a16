package web

import (
	"fmt"
	"time"
)

// untilChoices are the ends a switch may have on the status page, besides none.
var untilChoices = []struct{ Value, Label string }{
	{"", "No end"},
	{"30m", "for 30 minutes"},
	{"1h", "for 1 hour"},
	{"2h", "for 2 hours"},
	{"4h", "for 4 hours"},
	{"at", "until the time below"},
	{"tomorrow", "until tomorrow 08:00"},
}

// parseUntil turns the switch form's until choice (and, for "at", the time "HH:MM") into
// the moment the profile ends, in loc, relative to now; zero for no end. A time of day that
// has passed today means tomorrow.
func parseUntil(choice, at string, now time.Time, loc *time.Location) (time.Time, error) {
	now = now.In(loc)
	switch choice {
	case "":
		return time.Time{}, nil
	case "30m", "1h", "2h", "4h":
		d, _ := time.ParseDuration(choice)
		return now.Add(d), nil
	case "tomorrow":
		y, m, d := now.AddDate(0, 0, 1).Date()
		return time.Date(y, m, d, 8, 0, 0, 0, loc), nil
	case "at":
		t, err := time.ParseInLocation("15:04", at, loc)
		if err != nil {
			return time.Time{}, fmt.Errorf("%q is not a time such as 16:00", at)
		}
		y, m, d := now.Date()
		end := time.Date(y, m, d, t.Hour(), t.Minute(), 0, 0, loc)
		if !end.After(now) {
			end = end.AddDate(0, 0, 1)
		}
		return end, nil
	}
	return time.Time{}, fmt.Errorf("%q is not one of the choices", choice)
}
