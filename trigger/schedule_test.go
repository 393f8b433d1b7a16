package trigger

import (
	"testing"
	"time"

	"github.com/presenced/presenced/presence"
)

func TestWallClockAcrossDST(t *testing.T) {
	berlin, ny := mustLoad(t, "Europe/Berlin"), mustLoad(t, "America/New_York")
	for _, tc := range []struct {
		name    string
		date    string
		clock   int
		loc     *time.Location
		wantUTC string
	}{
		{"ordinary day", "2026-03-27", 9 * 60, berlin, "2026-03-27T08:00:00Z"},
		{"spring forward: 02:30 does not exist, fires at the jump (03:00 CEST)", "2026-03-29", 2*60 + 30, berlin, "2026-03-29T01:00:00Z"},
		{"spring forward: 03:30 exists", "2026-03-29", 3*60 + 30, berlin, "2026-03-29T01:30:00Z"},
		{"autumn Berlin: 02:30 twice, the first (CEST)", "2026-10-25", 2*60 + 30, berlin, "2026-10-25T00:30:00Z"},
		{"autumn New York: 01:30 twice, the first (EDT)", "2026-11-01", 60 + 30, ny, "2026-11-01T05:30:00Z"},
		{"spring New York: 02:30 does not exist, 03:00 EDT", "2026-03-08", 2*60 + 30, ny, "2026-03-08T07:00:00Z"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, _ := time.Parse(time.DateOnly, tc.date)
			got := WallClock(d.Year(), d.Month(), d.Day(), tc.clock, tc.loc)
			if s := got.UTC().Format(time.RFC3339); s != tc.wantUTC {
				t.Fatalf("got %s (%s local), want %s", s, got.In(tc.loc), tc.wantUTC)
			}
		})
	}
}

func mustEntries(t *testing.T, list ...presence.Schedule) []Entry {
	t.Helper()
	es, err := ParseEntries("schedules", list)
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// TestOccurrencesFireOnceAcrossDST: a daily 02:30 in Berlin fires once on every day of the
// spring-forward week end (at 03:00 CEST on the day itself), a daily 01:30 in New York once on
// the autumn day although the clock shows 01:30 twice.
func TestOccurrencesFireOnceAcrossDST(t *testing.T) {
	berlin, ny := mustLoad(t, "Europe/Berlin"), mustLoad(t, "America/New_York")
	e := mustEntries(t, presence.Schedule{Name: "night", At: "02:30", Profile: "closed"})
	got := Occurrences(e, nil, berlin, time.Date(2026, 3, 28, 0, 0, 0, 0, berlin), time.Date(2026, 3, 31, 0, 0, 0, 0, berlin))
	var times []string
	for _, o := range got {
		times = append(times, o.Start.In(berlin).Format("01-02 15:04 MST"))
	}
	if want := []string{"03-28 02:30 CET", "03-29 03:00 CEST", "03-30 02:30 CEST"}; !equal(times, want) {
		t.Errorf("Berlin 02:30: %v, want %v", times, want)
	}
	e = mustEntries(t, presence.Schedule{Name: "early", At: "01:30", Profile: "closed"})
	got = Occurrences(e, nil, ny, time.Date(2026, 11, 1, 0, 0, 0, 0, ny), time.Date(2026, 11, 1, 5, 0, 0, 0, ny))
	if len(got) != 1 || got[0].Start.UTC().Format(time.RFC3339) != "2026-11-01T05:30:00Z" {
		t.Errorf("New York 01:30 on the autumn day: %v", got)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestOccurrencesDaysRangesHolidays(t *testing.T) {
	utc := time.UTC
	hol := map[string]bool{"2026-12-25": true}
	entries := mustEntries(t,
		presence.Schedule{Name: "morning", Days: []string{"mon", "tue", "wed", "thu", "fri"}, At: "09:00", Profile: "available"},
		presence.Schedule{Name: "lunch", Days: []string{"mon", "tue", "wed", "thu", "fri"}, From: "12:00", To: "13:00", Profile: "lunch"},
		presence.Schedule{Name: "night", From: "22:00", To: "06:00", Profile: "closed", Holidays: HolidaysAlso},
		presence.Schedule{Name: "holiday", At: "08:00", Profile: "closed", Holidays: HolidaysOnly},
	)
	// Thu 24 Dec to Sat 26 Dec 2026; the 25th is a holiday.
	got := Occurrences(entries, hol, utc, time.Date(2026, 12, 24, 0, 0, 0, 0, utc), time.Date(2026, 12, 27, 0, 0, 0, 0, utc))
	var s []string
	for _, o := range got {
		x := o.Start.Format("02 15:04") + " " + o.Entry.Name
		if o.Entry.Range {
			x += " until " + o.End.Format("02 15:04")
		}
		s = append(s, x)
	}
	want := []string{
		"24 09:00 morning", "24 12:00 lunch until 24 13:00", "24 22:00 night until 25 06:00",
		"25 08:00 holiday", "25 22:00 night until 26 06:00",
		"26 22:00 night until 27 06:00",
	}
	if !equal(s, want) {
		t.Errorf("occurrences\n got %q\nwant %q", s, want)
	}
}

func TestParseEntryNamesTheField(t *testing.T) {
	for _, tc := range []struct {
		in   presence.Schedule
		want string
	}{
		{presence.Schedule{Name: "x", At: "25:00", Profile: "p"}, "schedules[0].at: \"25:00\" is not a time HH:MM"},
		{presence.Schedule{Name: "x", Days: []string{"mo"}, At: "09:00", Profile: "p"}, "schedules[0].days: \"mo\" is not one of mon, tue, wed, thu, fri, sat, sun"},
		{presence.Schedule{Name: "x", From: "12:00", Profile: "p"}, "schedules[0].at: set at (a point in time) or from and to (a range)"},
		{presence.Schedule{Name: "x", At: "09:00", Profile: "p", Holidays: "never"}, "schedules[0].holidays: \"never\" is not one of \"\", only, also"},
		{presence.Schedule{Name: "x", At: "09:00"}, "schedules[0].profile: required"},
	} {
		_, err := ParseEntries("schedules", []presence.Schedule{tc.in})
		if err == nil || err.Error() != "invalid configuration: "+tc.want && !contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.in, err, tc.want)
		}
	}
}

func contains(s, sub string) bool {
	return len(sub) > 0 && len(s) >= len(sub) && (s == sub || index(s, sub) >= 0)
}

func index(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}
