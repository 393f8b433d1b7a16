package calendar

import (
	"strings"
	"testing"
	"time"

	"github.com/presenced/presenced/presence"
)

func TestMatch(t *testing.T) {
	rules := []presence.CalendarRule{
		{TitlePrefix: "m:", Profile: "meeting"},
		{TitlePrefix: "h:", Profile: "holiday"},
		{ShowAs: "busy", AllDay: new(false), Profile: "busy", Priority: 50},
		{TitleContains: "out of office", AllDay: new(true), Profile: "holiday", Priority: 10},
		{ShowAs: "OOF", Profile: "away", Priority: -1},
	}
	for _, tc := range []struct {
		name string
		o    Occurrence
		want string // "" for no rule
	}{
		{"prefix, any case and leading space", Occurrence{Summary: "  M: Budget", ShowAs: ShowFree}, "meeting"},
		{"prefix beats busy by priority", Occurrence{Summary: "m: Budget", ShowAs: ShowBusy}, "meeting"},
		{"busy timed event", Occurrence{Summary: "Dentist", ShowAs: ShowBusy}, "busy"},
		{"busy all-day event matches no busy rule", Occurrence{Summary: "Conference", ShowAs: ShowBusy, AllDay: true}, ""},
		{"free event", Occurrence{Summary: "Optional", ShowAs: ShowFree}, ""},
		{"all-day out of office", Occurrence{Summary: "Out of Office - Alice", ShowAs: ShowFree, AllDay: true}, "holiday"},
		{"timed out of office is not all-day", Occurrence{Summary: "out of office", ShowAs: ShowFree}, ""},
		{"oof status wins with the lowest priority", Occurrence{Summary: "h: trip", ShowAs: ShowOOF}, "away"},
		{"prefix needs the start", Occurrence{Summary: "Team m: sync", ShowAs: ShowTentative}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, ok := Match(sortRules(rules), tc.o)
			if got := r.Profile; ok != (tc.want != "") || got != tc.want {
				t.Fatalf("Match = %q, %v; want %q", got, ok, tc.want)
			}
		})
	}
}

func TestCheckRules(t *testing.T) {
	has := func(p string) bool { return p == "meeting" }
	problems := CheckRules("calendar.rules", []presence.CalendarRule{
		{TitlePrefix: "m:", Profile: "meeting"},
		{Profile: "meeting"},
		{ShowAs: "away", Profile: "meeting"},
		{TitlePrefix: "x", Profile: "nap"},
		{TitlePrefix: "y"},
	}, has)
	want := []string{
		"calendar.rules[1]: no condition",
		`calendar.rules[2].show_as: "away"`,
		`calendar.rules[3].profile: "nap" is not a system-wide profile`,
		"calendar.rules[4].profile: missing",
	}
	if len(problems) != len(want) {
		t.Fatalf("problems %q, want %d", problems, len(want))
	}
	for i, w := range want {
		if !strings.Contains(problems[i], w) {
			t.Errorf("problem %d: %q, want %q", i, problems[i], w)
		}
	}
}

func TestLabel(t *testing.T) {
	berlin := mustLoc(t, "Europe/Berlin")
	at := func(s string) time.Time {
		tm, err := time.ParseInLocation("2006-01-02 15:04", s, berlin)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	for _, tc := range []struct {
		it   Item
		want string
	}{
		{Item{Summary: "m: Budget review", Start: at("2027-03-01 14:00"), End: at("2027-03-01 15:00")},
			"calendar event 'm: Budget review' 14:00–15:00"},
		{Item{Summary: "Offsite", Start: at("2027-03-01 14:00"), End: at("2027-03-02 11:00")},
			"calendar event 'Offsite' Mon 1 Mar 14:00–Tue 2 Mar 11:00"},
		{Item{Summary: "Out of office", AllDay: true, Start: at("2027-03-04 00:00"), End: at("2027-03-05 00:00")},
			"calendar event 'Out of office' all day Thu 4 Mar"},
		{Item{Summary: "h: Holiday", AllDay: true, Start: at("2027-03-04 00:00"), End: at("2027-03-09 00:00")},
			"calendar event 'h: Holiday' Thu 4 Mar–Mon 8 Mar"},
		{Item{Summary: "a\nb\x00c", Start: at("2027-03-01 09:00"), End: at("2027-03-01 09:30")},
			"calendar event 'a b c' 09:00–09:30"},
		{Item{Summary: strings.Repeat("x", 100), Start: at("2027-03-01 09:00"), End: at("2027-03-01 09:30")},
			"calendar event '" + strings.Repeat("x", 79) + "…' 09:00–09:30"},
	} {
		// The user's wall clock, whatever zone the times come in.
		tc.it.Start, tc.it.End = tc.it.Start.UTC(), tc.it.End.UTC()
		if got := label(tc.it, berlin); got != tc.want {
			t.Errorf("label = %q, want %q", got, tc.want)
		}
	}
}
