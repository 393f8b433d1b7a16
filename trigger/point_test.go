package trigger

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/presenced/presenced/presence"
)

// TestPointSwitchesUnlessStickyOrHeld: a point event (a connector's verdict) switches with its
// own source and names itself as the actor; a sticky profile is left alone; while an external
// trigger holds the user it only changes where they return to; an unknown profile is refused.
func TestPointSwitchesUnlessStickyOrHeld(t *testing.T) {
	w := newWorld(t, monday, []presence.User{testUser("alice", 1001, "")}, testProfiles(), Options{})
	r := w.instance(t)
	ctx := context.Background()
	const actor = "3 unanswered calls from queue support"

	r.switchTo("alice", "available", presence.SourceAPI, time.Time{})
	res, err := r.s.Point(ctx, "alice", actor, presence.SourceUnanswered, "lunch")
	if err != nil || !res.Switched || res.Profile != "lunch" {
		t.Fatalf("Point: %+v, %v; want a switch to lunch", res, err)
	}
	r.expect("alice", "lunch", presence.SourceUnanswered)
	if st := r.state("alice"); st.Actor != actor {
		t.Errorf("actor %q, want %q", st.Actor, actor)
	}
	if res, err := r.s.Point(ctx, "alice", actor, presence.SourceUnanswered, "lunch"); err != nil || res.Switched || res.Reason != "already in lunch" {
		t.Errorf("Point to the profile she is in: %+v, %v", res, err)
	}

	r.switchTo("alice", "vacation", presence.SourceAPI, time.Time{})
	if res, err := r.s.Point(ctx, "alice", actor, presence.SourceUnanswered, "lunch"); err != nil || res.Switched || res.Reason != "sticky profile" {
		t.Errorf("Point in a sticky profile: %+v, %v; want skipped", res, err)
	}
	r.expect("alice", "vacation", presence.SourceAPI)

	r.switchTo("alice", "available", presence.SourceAPI, time.Time{})
	if _, err := r.s.External(ctx, "alice", "zoom", true, "meeting", 0); err != nil {
		t.Fatal(err)
	}
	if res, err := r.s.Point(ctx, "alice", actor, presence.SourceUnanswered, "lunch"); err != nil || res.Switched {
		t.Errorf("Point while an external trigger holds her: %+v, %v; want no switch", res, err)
	}
	if _, err := r.s.External(ctx, "alice", "zoom", false, "", 0); err != nil {
		t.Fatal(err)
	}
	r.expect("alice", "lunch", presence.SourceExternal) // she returns where the point event said

	if _, err := r.s.Point(ctx, "alice", actor, presence.SourceUnanswered, "nap"); !errors.Is(err, presence.ErrUnknownProfile) {
		t.Errorf("Point to an unknown profile: %v, want ErrUnknownProfile", err)
	}
}
