package calendar

import (
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-ical"
)

func parseICS(t testing.TB, body string) *ical.Calendar {
	t.Helper()
	body = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//presenced//test//EN\r\n" +
		strings.ReplaceAll(strings.TrimSpace(body), "\n", "\r\n") + "\r\nEND:VCALENDAR\r\n"
	cal, err := ical.NewDecoder(strings.NewReader(body)).Decode()
	if err != nil {
		t.Fatalf("decode: %v\n%s", err, body)
	}
	return cal
}

func mustLoc(t testing.TB, name string) *time.Location {
	t.Helper()
	l, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestExpand: the instances of events in a window, as a calendar client shows them.
func TestExpand(t *testing.T) {
	berlin := mustLoc(t, "Europe/Berlin")
	ny := mustLoc(t, "America/New_York")
	at := func(loc *time.Location, s string) time.Time {
		tm, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	type span struct {
		summary    string
		start, end time.Time
	}
	for _, tc := range []struct {
		name     string
		ics      string
		loc      *time.Location
		from, to time.Time
		want     []span
		problems int
	}{
		{
			name: "one-off in UTC",
			ics: `BEGIN:VEVENT
UID:one
DTSTART:20260302T130000Z
DTEND:20260302T140000Z
SUMMARY:m: Budget review
END:VEVENT`,
			loc: berlin, from: at(time.UTC, "2026-03-01 00:00"), to: at(time.UTC, "2026-03-08 00:00"),
			want: []span{{"m: Budget review", at(time.UTC, "2026-03-02 13:00"), at(time.UTC, "2026-03-02 14:00")}},
		},
		{
			// Weekly at 09:00 Berlin time: the same wall clock before and after the change to
			// summer time (29 March 2026); one instance excluded, one moved, one cancelled.
			name: "weekly across DST with EXDATE and overrides",
			ics: `BEGIN:VEVENT
UID:weekly
DTSTART;TZID=Europe/Berlin:20260316T090000
DTEND;TZID=Europe/Berlin:20260316T093000
RRULE:FREQ=WEEKLY;BYDAY=MO;UNTIL=20260420T070000Z
EXDATE;TZID=Europe/Berlin:20260330T090000
SUMMARY:m: Standup
END:VEVENT
BEGIN:VEVENT
UID:weekly
RECURRENCE-ID;TZID=Europe/Berlin:20260406T090000
DTSTART;TZID=Europe/Berlin:20260406T150000
DTEND;TZID=Europe/Berlin:20260406T160000
SUMMARY:m: Standup (moved)
END:VEVENT
BEGIN:VEVENT
UID:weekly
RECURRENCE-ID:20260413T070000Z
DTSTART;TZID=Europe/Berlin:20260413T090000
DTEND;TZID=Europe/Berlin:20260413T093000
STATUS:CANCELLED
SUMMARY:m: Standup
END:VEVENT`,
			loc: time.UTC, from: at(time.UTC, "2026-03-01 00:00"), to: at(time.UTC, "2026-05-01 00:00"),
			want: []span{
				{"m: Standup", at(berlin, "2026-03-16 09:00"), at(berlin, "2026-03-16 09:30")},
				{"m: Standup", at(berlin, "2026-03-23 09:00"), at(berlin, "2026-03-23 09:30")},
				{"m: Standup (moved)", at(berlin, "2026-04-06 15:00"), at(berlin, "2026-04-06 16:00")},
				{"m: Standup", at(berlin, "2026-04-20 09:00"), at(berlin, "2026-04-20 09:30")},
			},
		},
		{
			name: "all-day event in the user's zone, DTEND exclusive",
			ics: `BEGIN:VEVENT
UID:ooo
DTSTART;VALUE=DATE:20260710
DTEND;VALUE=DATE:20260712
SUMMARY:Out of office
END:VEVENT`,
			loc: ny, from: at(time.UTC, "2026-07-01 00:00"), to: at(time.UTC, "2026-08-01 00:00"),
			want: []span{{"Out of office", at(ny, "2026-07-10 00:00"), at(ny, "2026-07-12 00:00")}},
		},
		{
			name: "daily all-day with COUNT and a date EXDATE, no DTEND",
			ics: `BEGIN:VEVENT
UID:daily
DTSTART;VALUE=DATE:20261024
RRULE:FREQ=DAILY;COUNT=3
EXDATE;VALUE=DATE:20261025
SUMMARY:h: Trip
END:VEVENT`,
			loc: berlin, from: at(time.UTC, "2026-10-01 00:00"), to: at(time.UTC, "2026-11-01 00:00"),
			want: []span{
				{"h: Trip", at(berlin, "2026-10-24 00:00"), at(berlin, "2026-10-25 00:00")},
				// 26 October follows the change back to winter time: the day is still midnight to midnight.
				{"h: Trip", at(berlin, "2026-10-26 00:00"), at(berlin, "2026-10-27 00:00")},
			},
		},
		{
			name: "floating time and DURATION in the user's zone; window clips",
			ics: `BEGIN:VEVENT
UID:float
DTSTART:20260505T100000
DURATION:PT2H
SUMMARY:m: Workshop
END:VEVENT
BEGIN:VEVENT
UID:outside
DTSTART:20260601T100000
DURATION:PT2H
SUMMARY:m: Later
END:VEVENT`,
			loc: ny, from: at(ny, "2026-05-05 11:00"), to: at(ny, "2026-05-06 00:00"),
			want: []span{{"m: Workshop", at(ny, "2026-05-05 10:00"), at(ny, "2026-05-05 12:00")}},
		},
		{
			name: "Windows zone name and multi-valued EXDATE",
			ics: `BEGIN:VEVENT
UID:win
DTSTART;TZID=W. Europe Standard Time:20260105T140000
DTEND;TZID=W. Europe Standard Time:20260105T150000
RRULE:FREQ=DAILY;COUNT=4
EXDATE;TZID=W. Europe Standard Time:20260106T140000,20260107T140000
SUMMARY:m: Daily
END:VEVENT`,
			loc: time.UTC, from: at(time.UTC, "2026-01-01 00:00"), to: at(time.UTC, "2026-02-01 00:00"),
			want: []span{
				{"m: Daily", at(berlin, "2026-01-05 14:00"), at(berlin, "2026-01-05 15:00")},
				{"m: Daily", at(berlin, "2026-01-08 14:00"), at(berlin, "2026-01-08 15:00")},
			},
		},
		{
			name: "cancelled event and an unreadable one",
			ics: `BEGIN:VEVENT
UID:gone
DTSTART:20260302T130000Z
DTEND:20260302T140000Z
STATUS:CANCELLED
SUMMARY:m: Gone
END:VEVENT
BEGIN:VEVENT
UID:bad
DTSTART:2026-03-02
SUMMARY:m: Bad
END:VEVENT
BEGIN:VEVENT
UID:ok
DTSTART:20260303T130000Z
DTEND:20260303T140000Z
SUMMARY:m: Fine
END:VEVENT`,
			loc: time.UTC, from: at(time.UTC, "2026-03-01 00:00"), to: at(time.UTC, "2026-03-08 00:00"),
			want:     []span{{"m: Fine", at(time.UTC, "2026-03-03 13:00"), at(time.UTC, "2026-03-03 14:00")}},
			problems: 1,
		},
		{
			name: "endless rule: only the window",
			ics: `BEGIN:VEVENT
UID:endless
DTSTART:20000101T120000Z
DTEND:20000101T121500Z
RRULE:FREQ=DAILY
SUMMARY:m: Ping
END:VEVENT`,
			loc: time.UTC, from: at(time.UTC, "2026-03-01 12:10"), to: at(time.UTC, "2026-03-02 13:00"),
			want: []span{
				{"m: Ping", at(time.UTC, "2026-03-01 12:00"), at(time.UTC, "2026-03-01 12:15")},
				{"m: Ping", at(time.UTC, "2026-03-02 12:00"), at(time.UTC, "2026-03-02 12:15")},
			},
		},
		{
			name: "a rule denser than the expansion allows is cut, and said so",
			ics: `BEGIN:VEVENT
UID:dense
DTSTART:20000101T120000Z
DTEND:20000101T120001Z
RRULE:FREQ=MINUTELY
SUMMARY:m: Spam
END:VEVENT`,
			loc: time.UTC, from: at(time.UTC, "2026-03-01 11:00"), to: at(time.UTC, "2026-03-01 13:00"),
			problems: 1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			occs, problems := Expand([]*ical.Calendar{parseICS(t, tc.ics)}, tc.loc, tc.from, tc.to)
			if len(problems) != tc.problems {
				t.Errorf("problems %q, want %d", problems, tc.problems)
			}
			var got []span
			for _, o := range occs {
				got = append(got, span{o.Summary, o.Start, o.End})
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d instances %v, want %d %v", len(got), got, len(tc.want), tc.want)
			}
			for i := range got {
				if got[i].summary != tc.want[i].summary || !got[i].start.Equal(tc.want[i].start) || !got[i].end.Equal(tc.want[i].end) {
					t.Errorf("instance %d: %s %s–%s, want %s %s–%s", i, got[i].summary, got[i].start, got[i].end,
						tc.want[i].summary, tc.want[i].start, tc.want[i].end)
				}
			}
		})
	}
}

// TestShowAs: the free/busy status an event shows as, from Exchange's property where it is,
// else from TRANSP and STATUS.
func TestShowAs(t *testing.T) {
	for _, tc := range []struct {
		props string
		want  ShowAs
	}{
		{"", ShowBusy},
		{"TRANSP:OPAQUE", ShowBusy},
		{"TRANSP:TRANSPARENT", ShowFree},
		{"STATUS:TENTATIVE", ShowTentative},
		{"X-MICROSOFT-CDO-BUSYSTATUS:OOF", ShowOOF},
		{"X-MICROSOFT-CDO-BUSYSTATUS:FREE\nTRANSP:OPAQUE", ShowFree},
		{"X-MICROSOFT-CDO-BUSYSTATUS:WORKINGELSEWHERE", ShowFree},
		{"X-MICROSOFT-CDO-BUSYSTATUS:TENTATIVE", ShowTentative},
		{"X-MICROSOFT-CDO-BUSYSTATUS:BUSY\nTRANSP:TRANSPARENT", ShowBusy},
	} {
		ics := "BEGIN:VEVENT\nUID:x\nDTSTART:20270301T090000Z\nDTEND:20270301T100000Z\nSUMMARY:x\n"
		if tc.props != "" {
			ics += tc.props + "\n"
		}
		ics += "END:VEVENT"
		from := time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC)
		occs, _ := Expand([]*ical.Calendar{parseICS(t, ics)}, time.UTC, from, from.Add(24*time.Hour))
		if len(occs) != 1 || occs[0].ShowAs != tc.want {
			t.Errorf("%q: %+v, want %s", tc.props, occs, tc.want)
		}
	}
}
