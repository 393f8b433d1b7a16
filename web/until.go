package web

import (
	"fmt"
	"regexp"
	"time"

	"github.com/presenced/presenced/trigger"
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
	switch choice {
	case "":
		return time.Time{}, nil
	case "30m", "1h", "2h", "4h":
		d, _ := time.ParseDuration(choice)
		return now.Add(d), nil
	case "tomorrow":
		return trigger.ParseUntil("tomorrow 08:00", now, loc)
	case "at":
		if !clockPattern.MatchString(at) {
			return time.Time{}, fmt.Errorf("%q is not a time such as 16:00", at)
		}
		return trigger.ParseUntil(at, now, loc)
	}
	return time.Time{}, fmt.Errorf("%q is not one of the choices", choice)
}

// clockPattern is a time of day as the form's time field gives it.
var clockPattern = regexp.MustCompile(`^([01]?[0-9]|2[0-3]):[0-5][0-9]$`)
