package trigger

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/presenced/presenced/presence"
)

// TestPersonalSchedule: a user's own entry, saved a minute before it is due after the
// scheduler planned its window, fires; a disabled one does not; a range's priority still
// decides against an inherited range (precedence unchanged); entries are checked like the
// configuration's, for the user's own profiles.
func TestPersonalSchedule(t *testing.T) {
	w := newWorld(t, monday, []presence.User{testUser("alice", 1001, "")}, testProfiles(),
		Options{Schedules: []presence.Schedule{{Name: "standup", From: "09:00", To: "09:30", Profile: "lunch"}}})
	r := w.instance(t)
	ctx := context.Background()
	r.switchTo("alice", "closed", presence.SourceAPI, time.Time{})
	r.step() // plans the coming window: nothing of alice's own yet

	// monday is 08:00 UTC: an entry at 08:01 fires at 08:01.
	if err := r.s.SavePersonal(ctx, "alice", PersonalEntry{Schedule: presence.Schedule{Name: "deep", At: "08:01", Profile: "focus"}}); err != nil {
		t.Fatal(err)
	}
	if err := r.s.SavePersonal(ctx, "alice", PersonalEntry{Schedule: presence.Schedule{Name: "nap", At: "08:02", Profile: "vacation", Disabled: true}}); err != nil {
		t.Fatal(err)
	}
	r.clock.Advance(time.Minute)
	r.step()
	r.expect("alice", "focus", presence.SourceSchedule)
	r.clock.Advance(time.Minute)
	r.step()
	r.expect("alice", "focus", presence.SourceSchedule) // nap is disabled

	// Precedence: alice's own range in meeting (priority 1) over the inherited standup in lunch
	// (priority 5).
	if err := r.s.SavePersonal(ctx, "alice", PersonalEntry{Schedule: presence.Schedule{Name: "review", From: "08:55", To: "09:45", Profile: "meeting"}}); err != nil {
		t.Fatal(err)
	}
	r.clock.Set(monday.Add(55 * time.Minute))
	r.step()
	r.expect("alice", "meeting", presence.SourceSchedule)
	r.clock.Set(monday.Add(61 * time.Minute)) // standup starts at 09:00: lower priority, meeting stays
	r.step()
	r.expect("alice", "meeting", presence.SourceSchedule)

	week, err := r.s.Week(ctx, "alice", r.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]int{}
	for _, o := range week {
		names[o.Entry.Name]++
	}
	if names["deep"] != 7 || names["review"] != 7 || names["standup"] != 7 || names["nap"] != 0 {
		t.Errorf("week occurrences by entry: %v", names)
	}

	own, err := r.s.Personal(ctx, "alice")
	if err != nil || len(own) != 3 || own[0].Name != "deep" || !own[1].Disabled {
		t.Fatalf("Personal: %+v, %v", own, err)
	}
	for _, tc := range []struct {
		e    PersonalEntry
		want string
	}{
		{PersonalEntry{Schedule: presence.Schedule{Name: "standup", At: "08:00", Profile: "focus"}}, "inherit"},
		{PersonalEntry{Schedule: presence.Schedule{Name: "x", At: "08:00", Profile: "nope"}}, "none of your profiles"},
		{PersonalEntry{Schedule: presence.Schedule{Name: "x", At: "25:00", Profile: "focus"}}, "at:"},
		{PersonalEntry{Schedule: presence.Schedule{Name: "a b", At: "08:00", Profile: "focus"}}, "name:"},
	} {
		err := r.s.SavePersonal(ctx, "alice", tc.e)
		var ve *presence.ValidationError
		if !errors.As(err, &ve) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("SavePersonal(%+v) = %v, want a problem with %q", tc.e, err, tc.want)
		}
	}
	if ok, err := r.s.DeletePersonal(ctx, "alice", "deep"); !ok || err != nil {
		t.Fatalf("DeletePersonal: %v %v", ok, err)
	}
	if ok, _ := r.s.DeletePersonal(ctx, "alice", "deep"); ok {
		t.Fatal("deleted twice")
	}
}

// TestPersonalTimeZone: a user's own entries run in the time zone they chose, the entries they
// inherit in the configuration's: at 08:00 UTC on monday (11:00 in Europe/Helsinki, summer
// time) an own entry "at 11:05" fires at 08:05 UTC, five minutes later, not at 11:05 UTC; set
// back to the configured zone, it is planned again, at 11:05 UTC. An unknown zone is refused naming the
// field; the zone is stored beside the entries without becoming one.
func TestPersonalTimeZone(t *testing.T) {
	w := newWorld(t, monday, []presence.User{testUser("alice", 1001, "")}, testProfiles(),
		Options{DefaultLocation: time.UTC, Schedules: []presence.Schedule{{Name: "lunchtime", At: "08:10", Profile: "lunch"}}})
	r := w.instance(t)
	ctx := context.Background()
	r.switchTo("alice", "closed", presence.SourceAPI, time.Time{})
	r.step()

	for _, bad := range []string{"Mars/Olympus_Mons", "Local", "../../etc/passwd", "Europe/Berlin\n", strings.Repeat("a", 100)} {
		err := r.s.SetTimeZone(ctx, "alice", bad)
		var ve *presence.ValidationError
		if !errors.As(err, &ve) || !strings.HasPrefix(ve.Problems[0], "time_zone: ") {
			t.Errorf("SetTimeZone(%q) = %v, want a problem at time_zone", bad, err)
		}
	}
	if err := r.s.SetTimeZone(ctx, "nobody", "Europe/Helsinki"); !errors.Is(err, presence.ErrUnknownUser) {
		t.Errorf("unknown user: %v", err)
	}
	if err := r.s.SavePersonal(ctx, "alice", PersonalEntry{Schedule: presence.Schedule{Name: "deep", At: "11:05", Profile: "focus"}}); err != nil {
		t.Fatal(err)
	}
	if err := r.s.SetTimeZone(ctx, "alice", "Europe/Helsinki"); err != nil {
		t.Fatal(err)
	}
	loc, own, err := r.s.TimeZone(ctx, "alice")
	if err != nil || !own || loc.String() != "Europe/Helsinki" || r.s.Location("alice") != time.UTC {
		t.Fatalf("TimeZone = %v %v %v; Location %v", loc, own, err, r.s.Location("alice"))
	}
	if es, err := r.s.Personal(ctx, "alice"); err != nil || len(es) != 1 {
		t.Fatalf("the zone shows as an entry: %+v %v", es, err)
	}
	if deleted, err := r.s.DeletePersonal(ctx, "alice", timeZoneField); deleted || err != nil {
		t.Fatalf("the zone deleted as an entry: %v %v", deleted, err)
	}
	week, err := r.s.Week(ctx, "alice", r.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	starts := map[string]time.Time{}
	for _, o := range week {
		if _, seen := starts[o.Entry.Name]; !seen {
			starts[o.Entry.Name] = o.Start
		}
	}
	if !starts["deep"].Equal(monday.Add(5*time.Minute)) || !starts["lunchtime"].Equal(monday.Add(10*time.Minute)) {
		t.Errorf("first occurrences: %v (want deep at 08:05 UTC, lunchtime at 08:10 UTC)", starts)
	}
	r.clock.Advance(4 * time.Minute)
	r.step()
	r.expect("alice", "closed", presence.SourceAPI)
	r.clock.Advance(time.Minute) // 08:05 UTC = 11:05 in Helsinki
	r.step()
	r.expect("alice", "focus", presence.SourceSchedule)
	if why, err := r.s.Why(ctx, "alice", r.state("alice")); err != nil || why.Next == nil || !why.Next.At.Equal(monday.Add(10*time.Minute)) {
		t.Errorf("next change: %+v %v", why, err)
	}

	// Back to the configured zone (UTC): 11:05 is 11:05 UTC, planned again.
	if err := r.s.SetTimeZone(ctx, "alice", ""); err != nil {
		t.Fatal(err)
	}
	if loc, own, _ := r.s.TimeZone(ctx, "alice"); own || loc != time.UTC {
		t.Errorf("after the reset: %v %v", loc, own)
	}
	week, _ = r.s.Week(ctx, "alice", r.clock.Now())
	for _, o := range week {
		if o.Entry.Name == "deep" && (o.Start.UTC().Hour() != 11 || o.Start.UTC().Minute() != 5) {
			t.Errorf("deep after the reset at %v, want 11:05 UTC", o.Start.UTC())
		}
	}
	r.switchTo("alice", "closed", presence.SourceAPI, time.Time{})
	r.clock.Set(monday.Add(3*time.Hour + 5*time.Minute)) // 11:05 UTC
	r.step()
	r.expect("alice", "focus", presence.SourceSchedule)
}

// TestDisabledAndPersonalProfileEntries: an entry of the configuration with disabled: true is
// kept (it is listed) and does not fire, system-wide or in users[].schedules; a user's own
// entry may switch to one of their personal profiles, and it fires.
func TestDisabledAndPersonalProfileEntries(t *testing.T) {
	bob := testUser("bob", 1002, "", presence.Schedule{Name: "early", At: "08:01", Profile: "lunch", Disabled: true})
	w := newWorld(t, monday, []presence.User{testUser("alice", 1001, ""), bob}, testProfiles(),
		Options{Schedules: []presence.Schedule{
			{Name: "off", At: "08:01", Profile: "closed", Disabled: true},
			{Name: "on", At: "08:02", Profile: "lunch"},
		}})
	r := w.instance(t)
	ctx := context.Background()
	r.switchTo("alice", "available", presence.SourceAPI, time.Time{})
	r.switchTo("bob", "available", presence.SourceAPI, time.Time{})
	if err := r.e.SaveProfile(ctx, "alice", &presence.Profile{ID: "garden", Name: "In the garden", Presence: "away"}); err != nil {
		t.Fatal(err)
	}
	if err := r.s.SavePersonal(ctx, "alice", PersonalEntry{Schedule: presence.Schedule{Name: "outside", At: "08:03", Profile: "garden"}}); err != nil {
		t.Fatal(err)
	}
	r.step()
	r.clock.Set(monday.Add(time.Minute))
	r.step()
	r.expect("alice", "available", presence.SourceAPI) // "off" is disabled
	r.expect("bob", "available", presence.SourceAPI)   // bob's own "early" is disabled, and he inherits nothing
	r.clock.Set(monday.Add(2 * time.Minute))
	r.step()
	r.expect("alice", "lunch", presence.SourceSchedule)
	r.expect("bob", "available", presence.SourceAPI)
	r.clock.Set(monday.Add(3 * time.Minute))
	r.step()
	r.expect("alice", "garden", presence.SourceSchedule)
	if got := r.s.Inherited("alice"); len(got) != 2 || !got[0].Disabled {
		t.Fatalf("inherited entries %+v, want both, the first disabled", got)
	}
}
