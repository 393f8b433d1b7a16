package calendar

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/presenced/presenced/internal/lab"
	"github.com/presenced/presenced/presence"
)

// TestCalDAVSwitchesOnThePBX: events created over CalDAV on the lab Radicale switch the user
// at their start and return them at their end, judged on the lab Asterisk (the user's queue
// paused with the profile's reason, unpaused after): a one-off meeting; a recurring meeting
// (Europe/Berlin) with an excluded and a moved instance; an all-day out-of-office; an event
// moved and one deleted before they start; an event with no rule. The calendar then becomes
// unreadable (its password file changed): the last known plan stays in force and the status
// and metrics say so. A restart mid-event (a new instance over the same Redis) ends it on
// time, and a switch by hand during an event is left alone at its end.
func TestCalDAVSwitchesOnThePBX(t *testing.T) {
	berlin := mustLoc(t, "Europe/Berlin")
	day := func(d int, hhmm string, loc *time.Location) time.Time {
		tm, err := time.ParseInLocation("2006-01-02 15:04", "2027-03-0"+string(rune('0'+d))+" "+hhmm, loc)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	cal := newCalendar(t, lab.RadicaleUser, lab.RadicalePassword)
	pwFile := secretFile(t, lab.RadicalePassword)
	alice := labUser(t, "alice", &presence.CalendarSource{Type: "caldav", URL: cal.collection,
		Username: lab.RadicaleUser, PasswordFile: pwFile})
	reg := prometheus.NewRegistry()
	w := newWorld(t, day(1, "07:00", time.UTC), []presence.User{alice}, Options{Registerer: reg})

	cal.put("budget", `BEGIN:VEVENT
UID:budget@test
DTSTAMP:20270201T000000Z
DTSTART:20270301T090000Z
DTEND:20270301T100000Z
SUMMARY:m: Budget review
END:VEVENT`)
	cal.put("standup", `BEGIN:VEVENT
UID:standup@test
DTSTAMP:20270201T000000Z
DTSTART;TZID=Europe/Berlin:20270301T120000
DTEND;TZID=Europe/Berlin:20270301T121500
RRULE:FREQ=DAILY;COUNT=3
EXDATE;TZID=Europe/Berlin:20270302T120000
SUMMARY:m: Standup
END:VEVENT
BEGIN:VEVENT
UID:standup@test
DTSTAMP:20270201T000000Z
RECURRENCE-ID;TZID=Europe/Berlin:20270303T120000
DTSTART;TZID=Europe/Berlin:20270303T150000
DTEND;TZID=Europe/Berlin:20270303T153000
SUMMARY:m: Standup (later)
END:VEVENT`)
	cal.put("ooo", `BEGIN:VEVENT
UID:ooo@test
DTSTAMP:20270201T000000Z
DTSTART;VALUE=DATE:20270304
DTEND;VALUE=DATE:20270305
SUMMARY:Out of office
END:VEVENT`)
	cal.put("moved", `BEGIN:VEVENT
UID:moved@test
DTSTAMP:20270201T000000Z
DTSTART:20270301T140000Z
DTEND:20270301T150000Z
SUMMARY:m: Design sync
END:VEVENT`)
	cal.put("deleted", `BEGIN:VEVENT
UID:deleted@test
DTSTAMP:20270201T000000Z
DTSTART:20270301T163000Z
DTEND:20270301T170000Z
SUMMARY:m: Cancelled later
END:VEVENT`)
	cal.put("lunch", `BEGIN:VEVENT
UID:lunch@test
DTSTAMP:20270201T000000Z
DTSTART:20270301T120000Z
DTEND:20270301T130000Z
SUMMARY:Lunch with Bob
END:VEVENT`)

	w.switchTo("alice", "available")
	w.poll()
	st, ok, err := w.conn.Status(context.Background(), "alice")
	if err != nil || !ok {
		t.Fatalf("status: %v %v", ok, err)
	}
	if st.Stale || st.Error != "" || len(st.Items) != 6 {
		t.Fatalf("plan after the first poll: stale %v, error %q, %d items %+v; want 6 items", st.Stale, st.Error, len(st.Items), st.Items)
	}

	// The one-off meeting, with a restart in the middle of it.
	w.at(day(1, "08:59", time.UTC))
	w.expect(alice, "available", presence.SourceAPI, "alice", "")
	w.at(day(1, "09:00", time.UTC))
	w.expect(alice, "meeting", presence.SourceExternal, "calendar event 'm: Budget review' 09:00–10:00", "Meeting")
	w.restart()
	w.at(day(1, "09:30", time.UTC))
	w.expect(alice, "meeting", presence.SourceExternal, "m: Budget review", "Meeting")
	w.at(day(1, "10:00", time.UTC))
	w.expect(alice, "available", presence.SourceExternal, "m: Budget review", "")

	// The recurring meeting at 12:00 Berlin time (11:00 UTC in winter).
	w.at(day(1, "11:00", time.UTC))
	w.expect(alice, "meeting", presence.SourceExternal, "calendar event 'm: Standup' 11:00–11:15", "Meeting")
	w.at(day(1, "11:15", time.UTC))
	w.expect(alice, "available", presence.SourceExternal, "m: Standup", "")
	// The event without a rule switches nothing.
	w.at(day(1, "12:30", time.UTC))
	w.expect(alice, "available", presence.SourceExternal, "m: Standup", "")

	// Moved (14:00 → 15:30) and deleted before they start: sync-collection brings both.
	cal.put("moved", `BEGIN:VEVENT
UID:moved@test
DTSTAMP:20270201T000000Z
SEQUENCE:1
DTSTART:20270301T153000Z
DTEND:20270301T160000Z
SUMMARY:m: Design sync
END:VEVENT`)
	cal.delete("deleted")
	w.poll()
	w.at(day(1, "14:00", time.UTC))
	w.expect(alice, "available", presence.SourceExternal, "m: Standup", "")
	w.at(day(1, "15:30", time.UTC))
	w.expect(alice, "meeting", presence.SourceExternal, "'m: Design sync' 15:30–16:00", "Meeting")
	w.at(day(1, "16:00", time.UTC))
	w.expect(alice, "available", presence.SourceExternal, "m: Design sync", "")
	w.at(day(1, "16:45", time.UTC))
	w.expect(alice, "available", presence.SourceExternal, "m: Design sync", "")

	// Day 2: the excluded instance; day 3: the instance moved to 15:00 Berlin, and a switch
	// by hand during it, which its end leaves alone.
	w.at(day(2, "11:00", time.UTC))
	w.expect(alice, "available", presence.SourceExternal, "m: Design sync", "")
	w.at(day(3, "11:00", time.UTC))
	w.expect(alice, "available", presence.SourceExternal, "m: Design sync", "")
	w.at(day(3, "15:00", berlin))
	w.expect(alice, "meeting", presence.SourceExternal, "'m: Standup (later)' 14:00–14:30", "Meeting")
	w.switchTo("alice", "available")
	w.at(day(3, "15:10", berlin))
	w.expect(alice, "available", presence.SourceAPI, "alice", "")
	w.at(day(3, "15:30", berlin))
	w.expect(alice, "available", presence.SourceAPI, "alice", "")

	// The calendar becomes unreadable: the last known plan stays, and says so.
	if err := os.WriteFile(pwFile, []byte("wrong\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	w.poll()
	st, _, err = w.conn.Status(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if !st.Stale || st.Error == "" || len(st.Items) == 0 {
		t.Fatalf("status of an unreadable calendar: stale %v, error %q, %d items", st.Stale, st.Error, len(st.Items))
	}
	if got := testutil.ToFloat64(w.conn.m.failing); got != 1 {
		t.Fatalf("presenced_calendar_sources_failing = %v, want 1", got)
	}
	if got := testutil.ToFloat64(w.conn.m.polls.WithLabelValues("caldav", "error")); got != 1 {
		t.Fatalf("presenced_calendar_polls_total{caldav,error} = %v, want 1", got)
	}
	// The all-day out-of-office of day 4 (midnight to midnight, the user's zone: UTC).
	w.at(day(3, "23:59", time.UTC))
	w.expect(alice, "available", presence.SourceAPI, "alice", "")
	w.at(day(4, "00:00", time.UTC))
	w.expect(alice, "holiday", presence.SourceExternal, "calendar event 'Out of office' all day Thu 4 Mar", "Holiday")
	w.at(day(5, "00:00", time.UTC))
	w.expect(alice, "available", presence.SourceExternal, "Out of office", "")

	// Readable again.
	if err := os.WriteFile(pwFile, []byte(lab.RadicalePassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	w.poll()
	if st, _, _ = w.conn.Status(context.Background(), "alice"); st.Stale {
		t.Fatalf("still stale after a good poll: %q", st.Error)
	}
	if got := testutil.ToFloat64(w.conn.m.failing); got != 0 {
		t.Fatalf("presenced_calendar_sources_failing = %v, want 0", got)
	}
	if got := testutil.ToFloat64(w.conn.m.switches.WithLabelValues("start", "switched")); got < 1 {
		t.Fatalf("presenced_calendar_switches_total{start,switched} = %v", got)
	}
	j, err := w.states.Journal(context.Background(), "alice", 100)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range j {
		if e.Actor == "calendar event 'm: Budget review' 09:00–10:00" && e.To == "meeting" {
			found = true
		}
	}
	if !found {
		t.Fatalf("no journal entry names the budget review: %+v", j)
	}
}

// TestICSFeed: an iCalendar feed served over HTTP (Bearer token from a file) switches the user;
// an instance cancelled in the feed before it starts switches nothing; a feed answering 500
// keeps the last plan; an event moved while it is in progress ends at once and starts again
// at its new time; a sticky profile is not replaced.
func TestICSFeed(t *testing.T) {
	var mu sync.Mutex
	feed, status := "", http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer feed-token" {
			http.Error(rw, "no", http.StatusUnauthorized)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if status != http.StatusOK {
			http.Error(rw, "down", status)
			return
		}
		rw.Header().Set("Content-Type", "text/calendar")
		rw.Write([]byte(vcalendar(feed)))
	}))
	t.Cleanup(srv.Close)
	setFeed := func(s string, code int) { mu.Lock(); defer mu.Unlock(); feed, status = s, code }

	bob := labUser(t, "bob", &presence.CalendarSource{Type: "ics", URL: srv.URL + "/bob.ics",
		TokenFile: secretFile(t, "feed-token"),
		Rules: []presence.CalendarRule{
			{ShowAs: "busy", Profile: "meeting", Priority: 5},
			{TitlePrefix: "h:", Profile: "holiday"},
		}})
	at := func(hhmm string) time.Time {
		tm, _ := time.Parse("2006-01-02 15:04", "2027-03-01 "+hhmm)
		return tm
	}
	w := newWorld(t, at("07:00"), []presence.User{bob}, Options{})
	const weekly = `BEGIN:VEVENT
UID:call@test
DTSTART:20270301T090000Z
DTEND:20270301T093000Z
RRULE:FREQ=WEEKLY
SUMMARY:Customer call
END:VEVENT
BEGIN:VEVENT
UID:free@test
DTSTART:20270301T100000Z
DTEND:20270301T110000Z
TRANSP:TRANSPARENT
SUMMARY:Optional talk
END:VEVENT
BEGIN:VEVENT
UID:long@test
DTSTART:20270301T120000Z
DTEND:20270301T140000Z
SUMMARY:Workshop
END:VEVENT`
	setFeed(weekly+`
BEGIN:VEVENT
UID:call@test
RECURRENCE-ID:20270301T090000Z
DTSTART:20270301T090000Z
DTEND:20270301T093000Z
STATUS:CANCELLED
SUMMARY:Customer call
END:VEVENT`, http.StatusOK)
	w.switchTo("bob", "available")
	w.poll()
	w.at(at("09:00"))
	w.expect(bob, "available", presence.SourceAPI, "bob", "") // that instance is cancelled
	w.at(at("10:00"))
	w.expect(bob, "available", presence.SourceAPI, "bob", "") // shows as free: no rule

	// The feed fails: the plan stays in force.
	setFeed("", http.StatusInternalServerError)
	w.poll()
	w.at(at("12:00"))
	w.expect(bob, "meeting", presence.SourceExternal, "calendar event 'Workshop' 12:00–14:00", "Meeting")

	// The workshop moves to 13:00 while it is in progress: it ends now and begins again at 13:00.
	setFeed(`BEGIN:VEVENT
UID:long@test
DTSTART:20270301T130000Z
DTEND:20270301T150000Z
SUMMARY:Workshop
END:VEVENT`, http.StatusOK)
	w.poll()
	w.at(at("12:30"))
	w.expect(bob, "available", presence.SourceExternal, "Workshop", "")
	w.at(at("13:00"))
	w.expect(bob, "meeting", presence.SourceExternal, "'Workshop' 13:00–15:00", "Meeting")
	w.at(at("15:00"))
	w.expect(bob, "available", presence.SourceExternal, "Workshop", "")

	// A sticky profile is never replaced by a calendar event.
	setFeed(`BEGIN:VEVENT
UID:trip@test
DTSTART:20270301T160000Z
DTEND:20270301T170000Z
SUMMARY:h: trip
END:VEVENT`, http.StatusOK)
	w.poll()
	w.switchTo("bob", "vacation")
	w.at(at("16:00"))
	w.expect(bob, "vacation", presence.SourceAPI, "bob", "Vacation")
	w.at(at("17:00"))
	w.expect(bob, "vacation", presence.SourceAPI, "bob", "Vacation")
}
