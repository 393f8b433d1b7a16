package calendar

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-ical"
	"github.com/teambition/rrule-go"
)

// ShowAs is an event's free/busy status.
type ShowAs string

// The free/busy statuses an event shows as: X-MICROSOFT-CDO-BUSYSTATUS where the calendar
// has it (Exchange, Outlook), else TRANSP:TRANSPARENT is free, STATUS:TENTATIVE tentative,
// anything else busy.
const (
	ShowBusy      ShowAs = "busy"
	ShowFree      ShowAs = "free"
	ShowTentative ShowAs = "tentative"
	ShowOOF       ShowAs = "oof"
)

// Occurrence is one instance of a calendar event, in absolute time.
type Occurrence struct {
	UID string `json:"uid"`
	// Recurrence is the instance's original start (its RECURRENCE-ID) for an instance of a
	// recurring event; zero for a one-off.
	Recurrence time.Time `json:"recurrence,omitzero"`
	Summary    string    `json:"summary"`
	Start      time.Time `json:"start"`
	End        time.Time `json:"end"`
	AllDay     bool      `json:"all_day,omitempty"`
	ShowAs     ShowAs    `json:"show_as"`
}

// Key identifies the occurrence across polls: its UID, original start and start. A moved
// instance is a new key (the old one ends, the new one starts); a changed end or title is not.
func (o Occurrence) Key() string {
	h := sha256.Sum256(fmt.Appendf(nil, "%s|%d|%d", o.UID, o.Recurrence.Unix(), o.Start.Unix()))
	return hex.EncodeToString(h[:8])
}

// maxSteps bounds the instances one recurring event is expanded to, however dense its rule.
const maxSteps = 100000

// Expand lists the instances of the calendars' events that overlap [from, to), sorted by
// start: recurring events (RRULE, RDATE, EXDATE) expanded in their time zone (TZID; a
// floating time or a date is in loc), RECURRENCE-ID instances replacing the ones they
// override, cancelled events and instances left out. An event that cannot be read is left out
// and named in problems; the others still count.
func Expand(cals []*ical.Calendar, loc *time.Location, from, to time.Time) (occs []Occurrence, problems []string) {
	type group struct {
		master    *ical.Component
		overrides []*ical.Component
	}
	groups := map[string]*group{}
	var order []string
	for _, cal := range cals {
		if cal == nil {
			continue
		}
		for _, c := range cal.Children {
			if c.Name != ical.CompEvent {
				continue
			}
			uid := propText(c, ical.PropUID)
			g := groups[uid]
			if g == nil {
				g = &group{}
				groups[uid] = g
				order = append(order, uid)
			}
			if c.Props.Get(ical.PropRecurrenceID) != nil {
				g.overrides = append(g.overrides, c)
			} else {
				g.master = c
			}
		}
	}
	for _, uid := range order {
		got, more := expandGroup(uid, groups[uid].master, groups[uid].overrides, loc, from, to)
		occs, problems = append(occs, got...), append(problems, more...)
	}
	slices.SortFunc(occs, func(a, b Occurrence) int {
		return cmp.Or(a.Start.Compare(b.Start), cmp.Compare(a.UID, b.UID))
	})
	return occs, problems
}

// expandGroup lists the instances of one event (its master and the instances overriding it)
// overlapping [from, to). A panic of the recurrence library is a problem of this event only.
func expandGroup(uid string, master *ical.Component, overrides []*ical.Component, loc *time.Location, from, to time.Time) (occs []Occurrence, problems []string) {
	defer func() {
		if r := recover(); r != nil {
			occs, problems = nil, append(problems, fmt.Sprintf("event %q: cannot be expanded: %v", uid, r))
		}
	}()
	overridden := map[int64]bool{}
	for _, c := range overrides {
		rid, _, err := propTime(c.Props.Get(ical.PropRecurrenceID), loc)
		if err != nil {
			problems = append(problems, fmt.Sprintf("event %q: RECURRENCE-ID: %v", uid, err))
			continue
		}
		overridden[rid.Unix()] = true
		o, err := single(c, uid, loc)
		if err != nil {
			problems = append(problems, fmt.Sprintf("event %q instance %s: %v", uid, rid.Format(time.RFC3339), err))
			continue
		}
		if o == nil || !overlaps(*o, from, to) {
			continue
		}
		o.Recurrence = rid
		occs = append(occs, *o)
	}
	if master == nil {
		return occs, problems
	}
	got, err := expandMaster(master, uid, loc, from, to, overridden)
	if err != nil {
		return occs, append(problems, fmt.Sprintf("event %q: %v", uid, err))
	}
	return append(occs, got...), problems
}

func overlaps(o Occurrence, from, to time.Time) bool {
	return o.Start.Before(to) && o.End.After(from)
}

// single reads one event (a one-off, or one instance overriding a recurring event); nil when
// it is cancelled.
func single(c *ical.Component, uid string, loc *time.Location) (*Occurrence, error) {
	if strings.EqualFold(propText(c, ical.PropStatus), string(ical.EventCancelled)) {
		return nil, nil
	}
	start, allDay, err := propTime(c.Props.Get(ical.PropDateTimeStart), loc)
	if err != nil {
		return nil, fmt.Errorf("DTSTART: %w", err)
	}
	end, err := eventEnd(c, start, allDay, loc)
	if err != nil {
		return nil, err
	}
	return &Occurrence{UID: uid, Summary: propText(c, ical.PropSummary), Start: start, End: end, AllDay: allDay,
		ShowAs: showAs(c)}, nil
}

// eventEnd is DTEND, else DTSTART + DURATION, else the end of the day of an all-day event,
// else DTSTART (an instant).
func eventEnd(c *ical.Component, start time.Time, allDay bool, loc *time.Location) (time.Time, error) {
	if p := c.Props.Get(ical.PropDateTimeEnd); p != nil {
		end, _, err := propTime(p, loc)
		if err != nil {
			return time.Time{}, fmt.Errorf("DTEND: %w", err)
		}
		if end.Before(start) {
			return time.Time{}, fmt.Errorf("DTEND %s is before DTSTART %s", end.Format(time.RFC3339), start.Format(time.RFC3339))
		}
		return end, nil
	}
	if p := c.Props.Get(ical.PropDuration); p != nil {
		d, err := p.Duration()
		if err != nil || d < 0 {
			return time.Time{}, fmt.Errorf("DURATION %q: not a positive duration", p.Value)
		}
		if allDay && d%(24*time.Hour) == 0 {
			return start.AddDate(0, 0, int(d/(24*time.Hour))), nil
		}
		return start.Add(d), nil
	}
	if allDay {
		return start.AddDate(0, 0, 1), nil
	}
	return start, nil
}

// expandMaster lists the instances of a (possibly recurring) event overlapping [from, to),
// but those in overridden (original starts, Unix seconds).
func expandMaster(c *ical.Component, uid string, loc *time.Location, from, to time.Time, overridden map[int64]bool) ([]Occurrence, error) {
	first, err := single(c, uid, loc)
	if err != nil || first == nil {
		return nil, err
	}
	rule := c.Props.Get(ical.PropRecurrenceRule)
	rdates := c.Props.Values(ical.PropRecurrenceDates)
	if rule == nil && len(rdates) == 0 {
		if overridden[first.Start.Unix()] || !overlaps(*first, from, to) {
			return nil, nil
		}
		return []Occurrence{*first}, nil
	}
	set := &rrule.Set{}
	if rule != nil {
		opt, err := rrule.StrToROptionInLocation(rule.Value, first.Start.Location())
		if err != nil {
			return nil, fmt.Errorf("RRULE %q: %w", rule.Value, err)
		}
		opt.Dtstart = first.Start
		r, err := rrule.NewRRule(*opt)
		if err != nil {
			return nil, fmt.Errorf("RRULE %q: %w", rule.Value, err)
		}
		set.RRule(r)
	} else {
		set.RDate(first.Start) // DTSTART is the first instance
	}
	set.DTStart(first.Start)
	for _, p := range rdates {
		if strings.EqualFold(p.Params.Get(ical.ParamValue), "PERIOD") {
			continue // periods are rare enough: their start is not read
		}
		ts, err := propTimes(&p, loc)
		if err != nil {
			return nil, fmt.Errorf("RDATE: %w", err)
		}
		for _, t := range ts {
			set.RDate(t)
		}
	}
	for _, p := range c.Props.Values(ical.PropExceptionDates) {
		ts, err := propTimes(&p, loc)
		if err != nil {
			return nil, fmt.Errorf("EXDATE: %w", err)
		}
		for _, t := range ts {
			set.ExDate(t)
		}
	}
	length := first.End.Sub(first.Start)
	days := 0
	if first.AllDay {
		days = int(first.End.Sub(first.Start).Round(24*time.Hour) / (24 * time.Hour))
	}
	var occs []Occurrence
	next := set.Iterator()
	for steps := 0; ; steps++ {
		if steps >= maxSteps {
			return occs, fmt.Errorf("more than %d instances before %s: expanded that far only", maxSteps, to.Format(time.RFC3339))
		}
		start, ok := next()
		if !ok || !start.Before(to) {
			return occs, nil
		}
		o := *first
		o.Start, o.End, o.Recurrence = start, start.Add(length), start
		if first.AllDay {
			o.End = start.AddDate(0, 0, days)
		}
		if overridden[start.Unix()] || !overlaps(o, from, to) {
			continue
		}
		occs = append(occs, o)
	}
}

func propText(c *ical.Component, name string) string {
	p := c.Props.Get(name)
	if p == nil {
		return ""
	}
	if s, err := p.Text(); err == nil {
		return s
	}
	return p.Value
}

func showAs(c *ical.Component) ShowAs {
	switch strings.ToUpper(propText(c, "X-MICROSOFT-CDO-BUSYSTATUS")) {
	case "FREE", "WORKINGELSEWHERE":
		return ShowFree
	case "TENTATIVE":
		return ShowTentative
	case "OOF":
		return ShowOOF
	case "BUSY":
		return ShowBusy
	}
	if strings.EqualFold(propText(c, ical.PropTransparency), "TRANSPARENT") {
		return ShowFree
	}
	if strings.EqualFold(propText(c, ical.PropStatus), string(ical.EventTentative)) {
		return ShowTentative
	}
	return ShowBusy
}

const (
	dateLayout     = "20060102"
	dateTimeLayout = "20060102T150405"
)

// propTime reads a DATE or DATE-TIME property: UTC ("Z"), in its TZID, or floating (in loc);
// a date is midnight in loc and reported as all-day.
func propTime(p *ical.Prop, loc *time.Location) (time.Time, bool, error) {
	if p == nil {
		return time.Time{}, false, fmt.Errorf("missing")
	}
	ts, err := propTimes(p, loc)
	if err != nil {
		return time.Time{}, false, err
	}
	if len(ts) != 1 {
		return time.Time{}, false, fmt.Errorf("%q: want one value", p.Value)
	}
	return ts[0], isDate(p, p.Value), nil
}

func isDate(p *ical.Prop, v string) bool {
	return strings.EqualFold(p.Params.Get(ical.ParamValue), "DATE") || len(v) == len(dateLayout)
}

// propTimes reads a property holding a comma-separated list of dates or date-times (EXDATE,
// RDATE).
func propTimes(p *ical.Prop, loc *time.Location) ([]time.Time, error) {
	zone := loc
	if tzid := p.Params.Get(ical.PropTimezoneID); tzid != "" {
		zone = location(tzid, loc)
	}
	var ts []time.Time
	for v := range strings.SplitSeq(p.Value, ",") {
		v = strings.TrimSpace(v)
		var (
			t   time.Time
			err error
		)
		switch {
		case isDate(p, v):
			t, err = time.ParseInLocation(dateLayout, v, loc)
		case strings.HasSuffix(v, "Z"):
			t, err = time.ParseInLocation(dateTimeLayout+"Z", v, time.UTC)
		default:
			t, err = time.ParseInLocation(dateTimeLayout, v, zone)
		}
		if err != nil {
			return nil, fmt.Errorf("%q is not an iCalendar date or date-time", v)
		}
		ts = append(ts, t)
	}
	return ts, nil
}

// location is the zone a TZID names: an IANA name (also with a leading "/" or a vendor
// prefix like "/mozilla.org/20050126_1/Europe/Berlin"), one of the Windows names Exchange
// writes, else def.
func location(tzid string, def *time.Location) *time.Location {
	name := strings.Trim(tzid, "\"")
	if l, err := time.LoadLocation(name); err == nil {
		return l
	}
	if iana, ok := windowsZones[name]; ok {
		if l, err := time.LoadLocation(iana); err == nil {
			return l
		}
	}
	// The longest tail of the path that names a zone: ".../Europe/Berlin", ".../UTC".
	parts := strings.Split(strings.Trim(name, "/"), "/")
	for i := range parts {
		if l, err := time.LoadLocation(strings.Join(parts[i:], "/")); err == nil && parts[i] != "" {
			return l
		}
	}
	return def
}

// windowsZones maps the Windows zone names Exchange and Outlook write as TZID to IANA zones
// (the common ones of CLDR's windowsZones.xml, territory 001).
var windowsZones = map[string]string{
	"UTC":                             "UTC",
	"GMT Standard Time":               "Europe/London",
	"Greenwich Standard Time":         "Atlantic/Reykjavik",
	"W. Europe Standard Time":         "Europe/Berlin",
	"Central Europe Standard Time":    "Europe/Budapest",
	"Central European Standard Time":  "Europe/Warsaw",
	"Romance Standard Time":           "Europe/Paris",
	"E. Europe Standard Time":         "Europe/Chisinau",
	"FLE Standard Time":               "Europe/Kiev",
	"GTB Standard Time":               "Europe/Bucharest",
	"Russian Standard Time":           "Europe/Moscow",
	"Turkey Standard Time":            "Europe/Istanbul",
	"Israel Standard Time":            "Asia/Jerusalem",
	"South Africa Standard Time":      "Africa/Johannesburg",
	"Arabian Standard Time":           "Asia/Dubai",
	"India Standard Time":             "Asia/Calcutta",
	"China Standard Time":             "Asia/Shanghai",
	"Singapore Standard Time":         "Asia/Singapore",
	"Tokyo Standard Time":             "Asia/Tokyo",
	"AUS Eastern Standard Time":       "Australia/Sydney",
	"New Zealand Standard Time":       "Pacific/Auckland",
	"Eastern Standard Time":           "America/New_York",
	"Central Standard Time":           "America/Chicago",
	"Mountain Standard Time":          "America/Denver",
	"US Mountain Standard Time":       "America/Phoenix",
	"Pacific Standard Time":           "America/Los_Angeles",
	"Alaskan Standard Time":           "America/Anchorage",
	"Hawaiian Standard Time":          "Pacific/Honolulu",
	"Atlantic Standard Time":          "America/Halifax",
	"E. South America Standard Time":  "America/Sao_Paulo",
	"Argentina Standard Time":         "America/Buenos_Aires",
	"Pacific SA Standard Time":        "America/Santiago",
	"SA Pacific Standard Time":        "America/Bogota",
	"Central Standard Time (Mexico)":  "America/Mexico_City",
	"Canada Central Standard Time":    "America/Regina",
	"Newfoundland Standard Time":      "America/St_Johns",
	"W. Central Africa Standard Time": "Africa/Lagos",
	"Egypt Standard Time":             "Africa/Cairo",
	"Korea Standard Time":             "Asia/Seoul",
	"SE Asia Standard Time":           "Asia/Bangkok",
	"Taipei Standard Time":            "Asia/Taipei",
	"W. Australia Standard Time":      "Australia/Perth",
	"Cen. Australia Standard Time":    "Australia/Adelaide",
	"E. Australia Standard Time":      "Australia/Brisbane",
}
