package trigger

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/presenced/presenced/presence"
)

// TestConnectorHoldRelease: a connector's activation switches with its label as the actor,
// returns at its release, is outranked by a lower priority number, leaves a sticky profile
// alone and its names are checked.
func TestConnectorHoldRelease(t *testing.T) {
	w := newWorld(t, monday, []presence.User{testUser("alice", 1001, "")}, testProfiles(), Options{})
	r := w.instance(t)
	ctx := context.Background()
	r.switchTo("alice", "focus", presence.SourceAPI, time.Time{})

	hold := func(name, profile, label string) *ExternalResult {
		t.Helper()
		res, err := r.s.Hold(ctx, "alice", Activation{Name: name, Profile: profile, Label: label})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	release := func(name string) *ExternalResult {
		t.Helper()
		res, err := r.s.Release(ctx, "alice", name)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := hold("calendar:a1", "lunch", "calendar event 'Lunch' 12:00–13:00"); !res.Switched || res.Profile != "lunch" {
		t.Fatalf("hold: %+v", res)
	}
	st := r.state("alice")
	if st.Actor != "calendar event 'Lunch' 12:00–13:00" || st.Source != presence.SourceExternal {
		t.Fatalf("actor %q source %s", st.Actor, st.Source)
	}
	if res := hold("calendar:a1", "lunch", "again"); res.Switched || res.Reason != "already active" {
		t.Fatalf("second hold: %+v", res)
	}
	// meeting (priority 1) outranks lunch (5); its release returns to lunch, the last to focus.
	if res := hold("calendar:b2", "meeting", "calendar event 'm: Review' 12:15–12:45"); !res.Switched {
		t.Fatalf("meeting hold: %+v", res)
	}
	if res := release("calendar:b2"); !res.Switched || res.Profile != "lunch" {
		t.Fatalf("meeting release: %+v", res)
	}
	if st := r.state("alice"); st.Actor != "calendar event 'm: Review' 12:15–12:45" {
		t.Fatalf("return's actor %q, want the ended event's label", st.Actor)
	}
	if res := release("calendar:a1"); !res.Switched || res.Profile != "focus" {
		t.Fatalf("lunch release: %+v", res)
	}
	if res := release("calendar:a1"); res.Switched || res.Reason != "not active" {
		t.Fatalf("second release: %+v", res)
	}
	r.switchTo("alice", "vacation", presence.SourceAPI, time.Time{})
	if res := hold("calendar:c3", "meeting", ""); res.Switched || res.Reason != "sticky profile" {
		t.Fatalf("hold over a sticky profile: %+v", res)
	}
	r.expect("alice", "vacation", presence.SourceAPI)

	for _, name := range []string{"nocolon", "schedule:x", "external:x", "until:x", "calendar:", "calendar:a b", ":x"} {
		if _, err := r.s.Hold(ctx, "alice", Activation{Name: name, Profile: "meeting"}); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("Hold(%q): %v, want an error naming it", name, err)
		}
	}
}
