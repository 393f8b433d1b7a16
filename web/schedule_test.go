package web

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/trigger"
)

// newScheduleApp is the web app with a trigger scheduler (not run: the page only plans and
// reads), on a clock at 2026-06-01 (a Monday) 08:00 UTC, the configured zone UTC.
func newScheduleApp(t *testing.T) *app {
	t.Helper()
	return newScheduleAppWith(t, time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC), nil)
}

// newScheduleAppWith is newScheduleApp at now, with system-wide schedule entries.
func newScheduleAppWith(t *testing.T, now time.Time, system []presence.Schedule) *app {
	t.Helper()
	return newAppWith(t, nil, func(o *Options, rdb *redis.Client) {
		s, err := trigger.New(trigger.Options{Engine: o.Engine, States: o.States, Redis: rdb, DefaultLocation: time.UTC,
			Schedules: system, Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		o.Triggers, o.Now = s, func() time.Time { return now }
	})
}

// TestScheduleTimeZoneOnThePage: My schedule sets the user's own time zone; the week shows their
// entries in it; an unknown zone is refused at the field and changes nothing.
func TestScheduleTimeZoneOnThePage(t *testing.T) {
	a := newScheduleApp(t)
	c := a.client(t)
	c.signIn("alice", testPassword)
	_, body, tok := c.get("/schedule")
	if !strings.Contains(body, `id="time_zone" name="time_zone" value="UTC"`) || !strings.Contains(body, `<option value="Europe/Berlin">`) {
		t.Fatalf("the time zone field: %s", body)
	}
	if code, body, _ := c.post("/schedule", url.Values{"csrf": {tok}, "name": {"early"}, "profile": {"lunch"}, "kind": {"at"}, "at": {"09:30"}}); code != http.StatusSeeOther {
		t.Fatalf("add an entry: %d %s", code, body)
	}
	for _, tc := range []struct {
		zone string
		code int
		want string
	}{
		{"Mars/Base", http.StatusUnprocessableEntity, `<span class="ferr" id="time_zone-err">&#34;Mars/Base&#34; is not a known time zone`},
		{"Local", http.StatusUnprocessableEntity, `id="time_zone-err"`},
		{"Asia/Tokyo", http.StatusSeeOther, ""},
	} {
		code, body, _ := c.post("/schedule/time-zone", url.Values{"csrf": {tok}, "time_zone": {tc.zone}})
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("zone %q: %d %s", tc.zone, code, body)
		}
	}
	loc, own, err := a.h.opts.Triggers.TimeZone(context.Background(), "alice")
	if err != nil || !own || loc.String() != "Asia/Tokyo" {
		t.Fatalf("stored zone %v %v %v", loc, own, err)
	}
	_, body, _ = c.get("/schedule?done=zone")
	if !strings.Contains(body, "Time zone saved.") || !strings.Contains(body, `<strong id="tz">Asia/Tokyo</strong>`) ||
		!strings.Contains(body, `value="Asia/Tokyo"`) {
		t.Errorf("after saving: %s", body)
	}
	// 09:30 in Tokyo: the week (in Tokyo's days) shows it at 09:30, on Tuesday 2 June first (it is
	// 17:00 on Monday in Tokyo).
	if week := between(body, `id="week"`, `</ol>`); !strings.Contains(week, "Tue 2 Jun</h3>\n      <ul><li>") || !strings.Contains(week, "<time>09:30</time> Lunch") {
		t.Errorf("week: %s", week)
	}
	// Bob's zone is his own.
	if loc, own, _ := a.h.opts.Triggers.TimeZone(context.Background(), "bob"); own || loc != time.UTC {
		t.Errorf("bob's zone: %v %v", loc, own)
	}
	// Empty returns to presenced's zone.
	if code, _, _ := c.post("/schedule/time-zone", url.Values{"csrf": {tok}, "time_zone": {""}}); code != http.StatusSeeOther {
		t.Errorf("reset: %d", code)
	}
	if _, own, _ := a.h.opts.Triggers.TimeZone(context.Background(), "alice"); own {
		t.Error("the reset kept the zone")
	}
}

// between is the part of s from the first a to the next b.
func between(s, a, b string) string {
	i := strings.Index(s, a)
	if i < 0 {
		return ""
	}
	s = s[i:]
	if j := strings.Index(s, b); j >= 0 {
		return s[:j]
	}
	return s
}

// officeHours are system-wide entries: from 09:00 to 17:00 on weekdays Available, then back;
// at 12:00 every day Lunch.
var officeHours = []presence.Schedule{
	{Name: "office", Days: []string{"mon", "tue", "wed", "thu", "fri"}, From: "09:00", To: "17:00", Profile: "available"},
	{Name: "lunchtime", At: "12:00", Profile: "lunch"},
}

// TestInheritedScheduleOnThePage: My schedule lists the entries a user inherits from the
// configuration read-only (no form, no button among them), and the week view shows them: a
// from–to entry with both ends on every weekday and not at the weekend, an "at" entry at its
// time; the user's own entries are listed apart, with their buttons.
func TestInheritedScheduleOnThePage(t *testing.T) {
	a := newScheduleAppWith(t, time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC), officeHours)
	c := a.client(t)
	c.signIn("alice", testPassword)
	_, _, tok := c.get("/schedule")
	if code, body, _ := c.post("/schedule", url.Values{"csrf": {tok}, "name": {"focus"}, "profile": {"secret"}, "kind": {"at"}, "at": {"15:00"}, "days": {"wed"}}); code != http.StatusSeeOther {
		t.Fatalf("add an entry: %d %s", code, body)
	}
	code, body, _ := c.get("/schedule")
	if code != http.StatusOK {
		t.Fatalf("schedule page: %d", code)
	}
	inherited := between(body, `id="inh-h"`, `</section>`)
	for _, want := range []string{
		"(read-only: from presenced's configuration)",
		"<strong>office</strong> <span>09:00–17:00 mon, tue, wed, thu, fri → Available</span>",
		"<strong>lunchtime</strong> <span>at 12:00 every day → Lunch</span>",
	} {
		if !strings.Contains(inherited, want) {
			t.Errorf("the inherited section lacks %q: %s", want, inherited)
		}
	}
	for _, never := range []string{"<form", "<button", "<input", "focus"} {
		if strings.Contains(inherited, never) {
			t.Errorf("the inherited section has %q: %s", never, inherited)
		}
	}
	own := between(body, `id="own"`, `</ul>`)
	if !strings.Contains(own, `id="s-focus"`) || !strings.Contains(own, `action="/schedule/focus/toggle"`) || strings.Contains(own, "office") {
		t.Errorf("own entries: %s", own)
	}
	week := between(body, `id="week"`, `</ol>`)
	days := strings.Split(week, `<li class="day">`)[1:]
	if len(days) != 7 {
		t.Fatalf("%d days in the week view", len(days))
	}
	for i, day := range days {
		date := time.Date(2026, 6, 1+i, 0, 0, 0, 0, time.UTC)
		if !strings.Contains(day, "<h3>"+date.Format("Mon 2 Jan")+"</h3>") {
			t.Errorf("day %d: %s", i, day)
		}
		weekday := date.Weekday() != time.Saturday && date.Weekday() != time.Sunday
		if office := strings.Contains(day, "<time>09:00</time>–<time>17:00</time> Available <span class=\"hint\">(office)</span>"); office != weekday {
			t.Errorf("%s: the office range shown %v, want %v: %s", date.Format("Mon"), office, weekday, day)
		}
		if !strings.Contains(day, "<time>12:00</time> Lunch <span class=\"hint\">(lunchtime)</span>") {
			t.Errorf("%s: no lunchtime: %s", date.Format("Mon"), day)
		}
		if focus := strings.Contains(day, "<time>15:00</time> Secret"); focus != (date.Weekday() == time.Wednesday) {
			t.Errorf("%s: own entry shown %v: %s", date.Format("Mon"), focus, day)
		}
	}
}

// TestStatusNextLine: the status page's "Next" says the next scheduled change: when, to what
// (or back) and which entry; none before the user has a profile.
func TestStatusNextLine(t *testing.T) {
	monday := func(h, m int) time.Time { return time.Date(2026, 6, 1, h, m, 0, 0, time.UTC) }
	for _, tc := range []struct {
		name string
		now  time.Time
		want string
	}{
		{"before the office range", monday(8, 0), "09:00: Available (schedule office)"},
		{"before lunch", monday(10, 30), "12:00: Lunch (schedule lunchtime)"},
		{"before the range ends", monday(13, 0), "17:00: back to the previous profile (schedule office)"},
		{"in the evening", monday(18, 0), "tomorrow 09:00: Available (schedule office)"},
		{"on a Friday evening", time.Date(2026, 6, 5, 18, 0, 0, 0, time.UTC), "tomorrow 12:00: Lunch (schedule lunchtime)"}, // no office at the weekend,
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newScheduleAppWith(t, tc.now, officeHours)
			c := a.client(t)
			c.signIn("alice", testPassword)
			if _, body, _ := c.get("/"); strings.Contains(body, `id="next"`) {
				t.Errorf("a Next line before any switch: %s", between(body, `id="next"`, "</dd>"))
			}
			if _, err := a.engine.Switch(context.Background(), presence.SwitchRequest{User: "alice", Profile: "secret", Source: presence.SourceAPI, Actor: "alice"}); err != nil {
				t.Fatal(err)
			}
			_, body, _ := c.get("/")
			if got := between(body, `<dd id="next">`, "</dd>"); got != `<dd id="next">`+tc.want {
				t.Errorf("Next: %q, want %q", got, tc.want)
			}
		})
	}
}
