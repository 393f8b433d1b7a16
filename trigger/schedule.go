package trigger

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/presenced/presenced/presence"
)

// Holiday modes of a schedule entry (presence.Schedule.Holidays).
const (
	HolidaysSkip = ""     // the entry does not run on holidays
	HolidaysOnly = "only" // the entry runs only on holidays (it replaces the others)
	HolidaysAlso = "also" // the entry runs on holidays too
)

// Entry is a parsed schedule entry.
type Entry struct {
	Name    string
	Profile string
	Days    [7]bool // indexed by time.Weekday
	Range   bool    // From–To rather than At
	// At is the time of day of a point entry, or the start of a range; To ends a range (a To not
	// after At ends on the next day). Both are minutes after midnight, local time.
	At, To   int
	Holidays string
}

var dayNames = map[string]time.Weekday{"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday,
	"wed": time.Wednesday, "thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday}

// ParseEntry checks a schedule entry and returns it parsed. Errors name the entry's field.
func ParseEntry(s presence.Schedule) (Entry, error) {
	var problems []string
	e := Entry{Name: s.Name, Profile: s.Profile, Holidays: s.Holidays}
	if s.Name == "" || strings.ContainsAny(s.Name, "|: ") {
		problems = append(problems, fmt.Sprintf("name: %q must be set and hold no '|', ':' or space", s.Name))
	}
	if s.Profile == "" {
		problems = append(problems, "profile: required")
	}
	if len(s.Days) == 0 {
		for d := range e.Days {
			e.Days[d] = true
		}
	}
	for _, d := range s.Days {
		wd, ok := dayNames[strings.ToLower(d)]
		if !ok {
			problems = append(problems, fmt.Sprintf("days: %q is not one of mon, tue, wed, thu, fri, sat, sun", d))
			continue
		}
		e.Days[wd] = true
	}
	var err error
	switch {
	case s.At != "" && (s.From != "" || s.To != ""):
		problems = append(problems, "at: set either at, or from and to, not both")
	case s.At != "":
		if e.At, err = parseClock(s.At); err != nil {
			problems = append(problems, "at: "+err.Error())
		}
	case s.From != "" && s.To != "":
		e.Range = true
		if e.At, err = parseClock(s.From); err != nil {
			problems = append(problems, "from: "+err.Error())
		}
		if e.To, err = parseClock(s.To); err != nil {
			problems = append(problems, "to: "+err.Error())
		}
		if err == nil && e.At == e.To {
			problems = append(problems, "to: must differ from from")
		}
	default:
		problems = append(problems, "at: set at (a point in time) or from and to (a range)")
	}
	if !slices.Contains([]string{HolidaysSkip, HolidaysOnly, HolidaysAlso}, s.Holidays) {
		problems = append(problems, fmt.Sprintf("holidays: %q is not one of \"\", only, also", s.Holidays))
	}
	if len(problems) > 0 {
		return Entry{}, &presence.ValidationError{Problems: problems}
	}
	return e, nil
}

// ParseEntries parses a list of entries; problems are prefixed with key[i]. Names must be unique.
func ParseEntries(key string, list []presence.Schedule) ([]Entry, error) {
	var problems []string
	out := make([]Entry, 0, len(list))
	seen := map[string]bool{}
	for i, s := range list {
		e, err := ParseEntry(s)
		var verr *presence.ValidationError
		if errors.As(err, &verr) {
			for _, p := range verr.Problems {
				problems = append(problems, fmt.Sprintf("%s[%d].%s", key, i, p))
			}
			continue
		}
		if seen[e.Name] {
			problems = append(problems, fmt.Sprintf("%s[%d].name: %q is used twice", key, i, e.Name))
		}
		seen[e.Name] = true
		out = append(out, e)
	}
	if len(problems) > 0 {
		return nil, &presence.ValidationError{Problems: problems}
	}
	return out, nil
}

// ParseHolidays checks dates written YYYY-MM-DD.
func ParseHolidays(key string, days []string) (map[string]bool, error) {
	out := make(map[string]bool, len(days))
	var problems []string
	for i, d := range days {
		if _, err := time.Parse(time.DateOnly, d); err != nil {
			problems = append(problems, fmt.Sprintf("%s[%d]: %q is not a date YYYY-MM-DD", key, i, d))
			continue
		}
		out[d] = true
	}
	if len(problems) > 0 {
		return nil, &presence.ValidationError{Problems: problems}
	}
	return out, nil
}

func parseClock(s string) (int, error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a time HH:MM", s)
	}
	return t.Hour()*60 + t.Minute(), nil
}

// OnDay reports whether the entry runs on the local date d, given whether d is a holiday.
func (e Entry) OnDay(d time.Weekday, holiday bool) bool {
	switch {
	case e.Holidays == HolidaysOnly:
		return holiday && e.Days[d]
	case holiday && e.Holidays == HolidaysSkip:
		return false
	}
	return e.Days[d]
}

// WallClock returns the instant the local clock of loc first shows minutes after midnight of
// the date y-m-d. Daylight-saving changes:
//
//   - a time that does not exist (02:30 on a spring-forward day in Europe/Berlin) is the
//     instant the clock jumps over it (03:00 CEST): the event fires once, at the jump;
//   - a time that exists twice (01:30 on an autumn day in America/New_York) is its first
//     occurrence (01:30 EDT): the event fires once.
func WallClock(y int, m time.Month, d int, minutes int, loc *time.Location) time.Time {
	h, mi := minutes/60, minutes%60
	t := time.Date(y, m, d, h, mi, 0, 0, loc)
	if t.Hour() != h || t.Minute() != mi || t.Day() != d {
		// In a gap: time.Date normalised to a clock before or after it; the jump is the end or
		// the start of the zone period it landed in.
		start, end := t.ZoneBounds()
		if before := t.Day() < d || t.Day() == d && t.Hour()*60+t.Minute() < minutes; before && !end.IsZero() {
			return end
		}
		if !start.IsZero() {
			return start
		}
		return t
	}
	// The same wall clock may exist earlier, before a backward change.
	for _, back := range []time.Duration{30 * time.Minute, time.Hour, 2 * time.Hour} {
		e := t.Add(-back)
		if l := e.In(loc); l.Hour() == h && l.Minute() == mi && l.Day() == d {
			return e
		}
	}
	return t
}

// Occurrence is one firing of a schedule entry: Start (At of a point entry, or the start of a
// range) and, for a range, End.
type Occurrence struct {
	Entry Entry
	Start time.Time
	End   time.Time // zero for a point entry
}

// Occurrences lists the occurrences of the entries whose start lies in (from, to], in time
// order, evaluated in loc with the holiday set (dates YYYY-MM-DD in loc).
func Occurrences(entries []Entry, holidays map[string]bool, loc *time.Location, from, to time.Time) []Occurrence {
	var out []Occurrence
	lf := from.In(loc)
	day := time.Date(lf.Year(), lf.Month(), lf.Day(), 0, 0, 0, 0, time.UTC).AddDate(0, 0, -1)
	for ; ; day = day.AddDate(0, 0, 1) {
		y, m, d := day.Date()
		if WallClock(y, m, d, 0, loc).After(to) {
			break
		}
		holiday := holidays[day.Format(time.DateOnly)]
		for _, e := range entries {
			if !e.OnDay(day.Weekday(), holiday) {
				continue
			}
			start := WallClock(y, m, d, e.At, loc)
			if !start.After(from) || start.After(to) {
				continue
			}
			o := Occurrence{Entry: e, Start: start}
			if e.Range {
				ed := day
				if e.To <= e.At {
					ed = day.AddDate(0, 0, 1)
				}
				ey, em, edd := ed.Date()
				o.End = WallClock(ey, em, edd, e.To, loc)
			}
			out = append(out, o)
		}
	}
	slices.SortStableFunc(out, func(a, b Occurrence) int { return a.Start.Compare(b.Start) })
	return out
}
