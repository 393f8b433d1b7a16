package web

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/presenced/presenced/trigger"
)

// newScheduleApp is the web app with a trigger scheduler (not run: the page only plans and
// reads), on a clock at 2026-06-01 08:00 UTC, the configured zone UTC.
func newScheduleApp(t *testing.T) *app {
	t.Helper()
	now := time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC)
	return newAppWith(t, nil, func(o *Options, rdb *redis.Client) {
		s, err := trigger.New(trigger.Options{Engine: o.Engine, States: o.States, Redis: rdb, DefaultLocation: time.UTC,
			Now: func() time.Time { return now }})
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
