package calendar

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/presenced/presenced/presence"
)

// TestReconfigure: a reload puts calendars in force without a restart. A configuration that
// does not validate changes nothing; one that keeps a calendar keeps it (and what it holds);
// one that takes a user's calendar away releases the user from the event in progress at the
// next Act, as if it had been cancelled, and forgets the plan; one that gives it back reads the
// calendar again at the next poll.
func TestReconfigure(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "text/calendar")
		rw.Write([]byte(vcalendar(`BEGIN:VEVENT
UID:long@test
DTSTART:20270301T120000Z
DTEND:20270301T140000Z
SUMMARY:Workshop
END:VEVENT`)))
	}))
	t.Cleanup(srv.Close)
	src := &presence.CalendarSource{Type: "ics", URL: srv.URL + "/bob.ics",
		Rules: []presence.CalendarRule{{ShowAs: "busy", Profile: "meeting"}}}
	bob := labUser(t, "bob", src)
	at := func(hhmm string) time.Time {
		tm, _ := time.Parse("2006-01-02 15:04", "2027-03-01 "+hhmm)
		return tm
	}
	w := newWorld(t, at("11:00"), []presence.User{bob}, Options{})
	ctx := context.Background()
	catalog := func(cal *presence.CalendarSource) *presence.Catalog {
		u := bob
		u.Calendar = cal
		cat, err := presence.NewCatalogFrom(presence.CatalogConfig{Users: []presence.User{u}, Profiles: testProfiles()})
		if err != nil {
			t.Fatal(err)
		}
		return cat
	}
	w.switchTo("bob", "available")
	w.poll()
	w.at(at("12:00"))
	w.expect(bob, "meeting", presence.SourceExternal, "'Workshop' 12:00–14:00", "Meeting")

	// Not a calendar: refused, nothing changes.
	bad := *src
	bad.URL = "ftp://example.org/bob.ics"
	if err := w.conn.Reconfigure(catalog(&bad), nil, 0, 0); err == nil {
		t.Fatal("Reconfigure accepted an ftp URL")
	}
	if got := w.conn.Users(); !slices.Equal(got, []presence.UserID{"bob"}) {
		t.Fatalf("after a refused reconfiguration the calendars are %v", got)
	}
	// The same calendar: kept, and so is the event in progress.
	if err := w.conn.Reconfigure(catalog(src), nil, 0, 0); err != nil {
		t.Fatal(err)
	}
	w.at(at("12:10"))
	w.expect(bob, "meeting", presence.SourceExternal, "'Workshop' 12:00–14:00", "Meeting")

	// The calendar is taken away: bob returns at once, the plan is forgotten.
	if err := w.conn.Reconfigure(catalog(nil), nil, 0, 0); err != nil {
		t.Fatal(err)
	}
	if got := w.conn.Users(); len(got) != 0 {
		t.Fatalf("calendars after removing bob's: %v", got)
	}
	w.at(at("12:20"))
	w.expect(bob, "available", presence.SourceExternal, "Workshop", "")
	if _, ok, err := w.conn.Status(ctx, "bob"); ok || err != nil {
		t.Errorf("Status of bob without a calendar: ok %v, err %v", ok, err)
	}
	for _, k := range []string{w.conn.planKey("bob"), w.conn.heldKey("bob")} {
		if n, err := w.rdb.Exists(ctx, k).Result(); err != nil || n != 0 {
			t.Errorf("%s left behind (exists %d, %v)", k, n, err)
		}
	}

	// Given back: read at the next poll, and the event in progress holds bob again.
	if err := w.conn.Reconfigure(catalog(src), nil, 0, 0); err != nil {
		t.Fatal(err)
	}
	w.conn.Poll(ctx, false)
	w.at(at("12:30"))
	w.expect(bob, "meeting", presence.SourceExternal, "'Workshop' 12:00–14:00", "Meeting")
	w.at(at("14:00"))
	w.expect(bob, "available", presence.SourceExternal, "Workshop", "")
}
