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
	if err := r.s.SavePersonal(ctx, "alice", PersonalEntry{Schedule: presence.Schedule{Name: "nap", At: "08:02", Profile: "vacation"}, Disabled: true}); err != nil {
		t.Fatal(err)
	}
	r.clock.Add(time.Minute)
	r.step()
	r.expect("alice", "focus", presence.SourceSchedule)
	r.clock.Add(time.Minute)
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
