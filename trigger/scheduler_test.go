package trigger

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presenced/presenced/presence"
)

var monday = time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC) // a Monday

// TestTimedProfileExpiresAcrossRestart: a switch "until" returns to the previous profile at
// that time, fired by a new instance (the first one is gone), exactly once.
func TestTimedProfileExpiresAcrossRestart(t *testing.T) {
	w := newWorld(t, monday, []presence.User{testUser("alice", 1001, "")}, testProfiles(), Options{})
	a := w.instance(t)
	a.switchTo("alice", "lunch", presence.SourceAPI, time.Time{})
	st := a.switchTo("alice", "focus", presence.SourceAPI, monday.Add(30*time.Minute))
	if st.Until == nil || !st.Until.Equal(monday.Add(30*time.Minute)) {
		t.Fatalf("until not recorded in the state: %+v", st.Until)
	}
	a.clock.Advance(29 * time.Minute)
	a.step()
	a.expect("alice", "focus", presence.SourceAPI)

	b := w.instance(t) // the daemon restarted: a new scheduler over the same Redis
	b.clock.Advance(time.Minute)
	b.step()
	b.expect("alice", "lunch", presence.SourceExpiry)
	n := b.journalLen("alice")
	b.clock.Advance(time.Minute)
	b.step()
	a.step()
	if got := b.journalLen("alice"); got != n {
		t.Fatalf("the return fired again: %d journal entries, want %d", got, n)
	}
}

// TestManualSwitchCancelsReturn: a switch by hand (API or feature code) in between cancels the
// return of a timed profile, of a range and of an external trigger.
func TestManualSwitchCancelsReturn(t *testing.T) {
	w := newWorld(t, monday, []presence.User{testUser("alice", 1001, "",
		presence.Schedule{Name: "lunch", From: "12:00", To: "13:00", Profile: "lunch"})}, testProfiles(), Options{})
	r := w.instance(t)
	ctx := context.Background()

	r.switchTo("alice", "focus", presence.SourceAPI, monday.Add(time.Hour))
	r.clock.Advance(10 * time.Minute)
	r.switchTo("alice", "dnd", presence.SourceFeatureCode, time.Time{})
	r.clock.Advance(time.Hour)
	r.step()
	r.expect("alice", "dnd", presence.SourceFeatureCode)

	r.clock.Set(time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC))
	r.step()
	r.expect("alice", "lunch", presence.SourceSchedule)
	r.clock.Advance(20 * time.Minute)
	r.switchTo("alice", "available", presence.SourceAPI, time.Time{})
	r.clock.Advance(time.Hour)
	r.step()
	r.expect("alice", "available", presence.SourceAPI)

	if _, err := r.s.External(ctx, "alice", "cal", true, "meeting", 0); err != nil {
		t.Fatal(err)
	}
	r.switchTo("alice", "focus", presence.SourceAPI, time.Time{})
	res, err := r.s.External(ctx, "alice", "cal", false, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Switched {
		t.Fatalf("end after a manual switch switched: %+v", res)
	}
	r.expect("alice", "focus", presence.SourceAPI)
}

func TestExternalStartEndIdempotent(t *testing.T) {
	w := newWorld(t, monday, []presence.User{testUser("alice", 1001, "")}, testProfiles(), Options{})
	r := w.instance(t)
	ctx := context.Background()
	r.switchTo("alice", "available", presence.SourceAPI, time.Time{})
	for _, step := range []struct {
		start       bool
		wantSwitch  bool
		wantProfile string
		wantSource  presence.Source
	}{
		{false, false, "available", presence.SourceAPI}, // an end without a start
		{true, true, "meeting", presence.SourceExternal},
		{true, false, "meeting", presence.SourceExternal}, // a second start
		{false, true, "available", presence.SourceExternal},
		{false, false, "available", presence.SourceExternal}, // a second end
	} {
		res, err := r.s.External(ctx, "alice", "zoom", step.start, "meeting", 0)
		if err != nil {
			t.Fatal(err)
		}
		if res.Switched != step.wantSwitch {
			t.Errorf("start=%v: %+v, want switched=%v", step.start, res, step.wantSwitch)
		}
		r.expect("alice", step.wantProfile, step.wantSource)
	}
	if _, err := r.s.External(ctx, "alice", "zoom", true, "nope", 0); err == nil {
		t.Error("starting with an unknown profile succeeded")
	}
}

// TestExternalTriggersPerUserAreBounded: a user can be held by at most limits.external_triggers
// external triggers at once; starting one more is refused naming the limit, an active one
// may be started again, and once one ends another may start.
func TestExternalTriggersPerUserAreBounded(t *testing.T) {
	w := newWorld(t, monday, []presence.User{testUser("alice", 1001, "")}, testProfiles(), Options{})
	r := w.instance(t)
	ctx := context.Background()
	r.switchTo("alice", "available", presence.SourceAPI, time.Time{})
	limit := presence.DefaultLimits().ExternalTriggers
	for i := range limit {
		if _, err := r.s.External(ctx, "alice", fmt.Sprint("cal", i), true, "meeting", 0); err != nil {
			t.Fatalf("trigger %d: %v", i, err)
		}
	}
	_, err := r.s.External(ctx, "alice", "one-more", true, "meeting", 0)
	var invalid *presence.ValidationError
	if !errors.As(err, &invalid) || !strings.Contains(err.Error(), "limits.external_triggers") {
		t.Fatalf("trigger %d: %v, want the limit named", limit+1, err)
	}
	if _, err := r.s.External(ctx, "alice", "cal0", true, "meeting", 0); err != nil {
		t.Fatalf("an active trigger started again: %v", err)
	}
	if _, err := r.s.External(ctx, "alice", "cal0", false, "", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := r.s.External(ctx, "alice", "one-more", true, "meeting", 0); err != nil {
		t.Fatalf("after one ended: %v", err)
	}
}

func TestTriggerNamesAreText(t *testing.T) {
	for _, name := range []string{"a\r\nb", "a\u000bb", "\u0001", "a b", "a:b", ""} {
		if err := TriggerName(name); err == nil {
			t.Errorf("%q accepted", name)
		}
	}
	for _, name := range []string{"zoom", "calendar-1", "teams_meeting.2"} {
		if err := TriggerName(name); err != nil {
			t.Errorf("%q: %v", name, err)
		}
	}
}

// TestOverlapsAndPriorities: a range and an external trigger overlap; the lower priority
// number wins, and ends return to whatever is still active, then to the profile before.
func TestOverlapsAndPriorities(t *testing.T) {
	w := newWorld(t, monday, []presence.User{testUser("alice", 1001, "")}, testProfiles(), Options{
		Schedules: []presence.Schedule{{Name: "lunch", Days: []string{"mon"}, From: "12:00", To: "13:00", Profile: "lunch"}},
	})
	r := w.instance(t)
	ctx := context.Background()
	at := func(hh, mm int) { r.clock.Set(time.Date(2026, 6, 1, hh, mm, 0, 0, time.UTC)); r.step() }

	r.switchTo("alice", "available", presence.SourceAPI, time.Time{})
	at(11, 50)
	if _, err := r.s.External(ctx, "alice", "cal", true, "meeting", 0); err != nil { // priority 1
		t.Fatal(err)
	}
	at(12, 0) // lunch, priority 5: outranked
	r.expect("alice", "meeting", presence.SourceExternal)
	at(12, 10)
	if _, err := r.s.External(ctx, "alice", "cal", false, "", 0); err != nil {
		t.Fatal(err)
	}
	r.expect("alice", "lunch", presence.SourceExternal) // the range is still active
	if st := r.state("alice"); st.Until == nil || !st.Until.Equal(time.Date(2026, 6, 1, 13, 0, 0, 0, time.UTC)) {
		t.Errorf("until of the range: %v", st.Until)
	}
	at(12, 30)
	if _, err := r.s.External(ctx, "alice", "cal", true, "meeting", 0); err != nil {
		t.Fatal(err)
	}
	r.expect("alice", "meeting", presence.SourceExternal)
	at(13, 0) // the lunch range ends under the meeting: nothing visible changes
	r.expect("alice", "meeting", presence.SourceExternal)
	if _, err := r.s.External(ctx, "alice", "cal", false, "", 0); err != nil {
		t.Fatal(err)
	}
	r.expect("alice", "available", presence.SourceExternal)
}

func TestStickyIsNotReplaced(t *testing.T) {
	w := newWorld(t, monday, []presence.User{testUser("alice", 1001, "")}, testProfiles(), Options{
		Schedules: []presence.Schedule{
			{Name: "morning", At: "09:00", Profile: "available"},
			{Name: "lunch", From: "12:00", To: "13:00", Profile: "lunch"},
		},
	})
	r := w.instance(t)
	r.switchTo("alice", "vacation", presence.SourceAPI, time.Time{})
	for _, hh := range []int{9, 12, 13} {
		r.clock.Set(time.Date(2026, 6, 1, hh, 0, 0, 0, time.UTC))
		r.step()
		r.expect("alice", "vacation", presence.SourceAPI)
	}
	res, err := r.s.External(context.Background(), "alice", "cal", true, "meeting", 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Switched || res.Reason != "sticky profile" {
		t.Fatalf("external start on a sticky profile: %+v", res)
	}
	r.expect("alice", "vacation", presence.SourceAPI)
}

// TestScheduleAcrossDST steps a controllable clock through the spring and autumn changes: a
// daily 02:30 in Berlin fires once at 03:00 CEST on the spring day; a daily 01:30 in New York
// fires once on the autumn day. After each firing the user switches back by hand, so a second
// firing would show.
func TestScheduleAcrossDST(t *testing.T) {
	for _, tc := range []struct {
		name, zone, at string
		from, to       time.Time
		want           string // the firing, UTC
	}{
		{"spring Berlin", "Europe/Berlin", "02:30", time.Date(2026, 3, 28, 22, 0, 0, 0, time.UTC), time.Date(2026, 3, 29, 6, 0, 0, 0, time.UTC), "2026-03-29T01:00:00Z"},
		{"autumn New York", "America/New_York", "01:30", time.Date(2026, 11, 1, 3, 0, 0, 0, time.UTC), time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC), "2026-11-01T05:30:00Z"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, tc.from, []presence.User{testUser("alice", 1001, tc.zone,
				presence.Schedule{Name: "night", At: tc.at, Profile: "closed"})}, testProfiles(), Options{MaxLate: time.Minute})
			r := w.instance(t)
			r.switchTo("alice", "available", presence.SourceAPI, time.Time{})
			var fired []string
			for now := tc.from; !now.After(tc.to); now = now.Add(5 * time.Minute) {
				r.clock.Set(now)
				r.step()
				if st := r.state("alice"); st.Profile == "closed" {
					fired = append(fired, st.Since.UTC().Format(time.RFC3339))
					r.switchTo("alice", "available", presence.SourceAPI, time.Time{})
				}
			}
			if len(fired) != 1 || fired[0] != tc.want {
				t.Fatalf("fired at %v, want once at %s", fired, tc.want)
			}
		})
	}
}

func TestHolidaysSuppressAndReplace(t *testing.T) {
	w := newWorld(t, time.Date(2026, 12, 25, 7, 0, 0, 0, time.UTC), []presence.User{testUser("alice", 1001, "")}, testProfiles(), Options{
		Schedules: []presence.Schedule{
			{Name: "morning", Days: []string{"mon", "tue", "wed", "thu", "fri"}, At: "09:00", Profile: "available"},
			{Name: "holiday", At: "08:00", Profile: "closed", Holidays: HolidaysOnly},
		},
		Holidays: []string{"2026-12-25"},
	})
	r := w.instance(t)
	r.switchTo("alice", "lunch", presence.SourceAPI, time.Time{})
	r.clock.Set(time.Date(2026, 12, 25, 8, 0, 0, 0, time.UTC))
	r.step()
	r.expect("alice", "closed", presence.SourceSchedule)
	r.clock.Set(time.Date(2026, 12, 25, 9, 0, 0, 0, time.UTC))
	r.step()
	r.expect("alice", "closed", presence.SourceSchedule) // the Friday 09:00 is suppressed
}

// TestTwoInstancesFireOnce: two daemons on one Redis, both ticking at 09:00: every user
// switches exactly once.
func TestTwoInstancesFireOnce(t *testing.T) {
	var us []presence.User
	for i := range 20 {
		us = append(us, testUser("u"+string(rune('a'+i)), 2000+i, ""))
	}
	w := newWorld(t, monday, us, testProfiles(), Options{
		Schedules: []presence.Schedule{{Name: "morning", At: "09:00", Profile: "lunch"}},
	})
	a, b := w.instance(t), w.instance(t)
	a.step()
	b.step()
	w.clock.Set(time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC))
	var wg sync.WaitGroup
	for _, r := range []*rig{a, b, a, b} {
		wg.Go(func() {
			if err := r.s.Step(context.Background()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for _, u := range us {
		a.expect(u.ID, "lunch", presence.SourceSchedule)
		if n := a.journalLen(u.ID); n != 1 {
			t.Errorf("%s switched %d times, want once", u.ID, n)
		}
	}
}

func TestWhy(t *testing.T) {
	w := newWorld(t, monday, []presence.User{testUser("alice", 1001, "Europe/Berlin")}, testProfiles(), Options{
		Schedules: []presence.Schedule{{Name: "lunch", Days: []string{"mon"}, From: "12:00", To: "13:00", Profile: "lunch"}},
	})
	r := w.instance(t)
	st := r.switchTo("alice", "focus", presence.SourceAPI, monday.Add(time.Hour)) // 10:00 Berlin → 11:00
	why, err := r.s.Why(context.Background(), "alice", st)
	if err != nil {
		t.Fatal(err)
	}
	if why.Trigger != "alice" || why.ReturnsTo != "available" || why.Next == nil ||
		why.Next.Kind != kindExpiry || !why.Next.At.Equal(monday.Add(time.Hour)) {
		t.Fatalf("why: %+v next %+v", why, why.Next)
	}
	r.clock.Advance(time.Hour)
	r.step()
	st = r.state("alice")
	why, err = r.s.Why(context.Background(), "alice", st)
	if err != nil {
		t.Fatal(err)
	}
	// 12:00 Berlin is 10:00 UTC.
	if why.Next == nil || why.Next.Trigger != "schedule:lunch" || !why.Next.At.Equal(time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)) {
		t.Fatalf("next: %+v", why.Next)
	}
}

// TestOverlappingRanges: two ranges overlap; the lower priority number wins while both are
// active and the user returns through them in order.
func TestOverlappingRanges(t *testing.T) {
	w := newWorld(t, monday, []presence.User{testUser("alice", 1001, "")}, testProfiles(), Options{
		Schedules: []presence.Schedule{
			{Name: "lunch", From: "12:00", To: "13:00", Profile: "lunch"}, // priority 5
			{Name: "focus", From: "12:30", To: "14:00", Profile: "focus"}, // priority 3
			{Name: "late", From: "13:30", To: "15:00", Profile: "closed"}, // priority 0 (unset): wins
		},
	})
	r := w.instance(t)
	r.switchTo("alice", "available", presence.SourceAPI, time.Time{})
	for _, step := range []struct {
		hh, mm  int
		profile string
	}{
		{12, 0, "lunch"}, {12, 30, "focus"}, {13, 0, "focus"}, {13, 30, "closed"}, {14, 0, "closed"}, {15, 0, "available"},
	} {
		r.clock.Set(time.Date(2026, 6, 1, step.hh, step.mm, 0, 0, time.UTC))
		r.step()
		if st := r.state("alice"); st.Profile != step.profile {
			t.Fatalf("%02d:%02d: alice in %q, want %q", step.hh, step.mm, st.Profile, step.profile)
		}
	}
}

// TestRestartCatchesUpMissedStart: no instance ran at 12:00; the one started at 12:20 starts
// the lunch range late, and ends it on time.
func TestRestartCatchesUpMissedStart(t *testing.T) {
	w := newWorld(t, monday, []presence.User{testUser("alice", 1001, "")}, testProfiles(), Options{
		Schedules: []presence.Schedule{{Name: "lunch", From: "12:00", To: "13:00", Profile: "lunch"}},
	})
	a := w.instance(t)
	a.switchTo("alice", "available", presence.SourceAPI, time.Time{})
	w.clock.Set(time.Date(2026, 6, 1, 12, 20, 0, 0, time.UTC))
	b := w.instance(t)
	b.step()
	b.expect("alice", "lunch", presence.SourceSchedule)
	w.clock.Set(time.Date(2026, 6, 1, 13, 0, 0, 0, time.UTC))
	b.step()
	b.expect("alice", "available", presence.SourceSchedule)
}

// TestSetSchedulesTakesEffectAtOnce reloads the schedules of a running scheduler: an entry
// added fires within the horizon already planned, and an entry moved fires at its new time,
// not at the time it was planned for.
func TestSetSchedulesTakesEffectAtOnce(t *testing.T) {
	start := time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC)
	w := newWorld(t, start, []presence.User{testUser("alice", 1001, "UTC"), testUser("bob", 1002, "UTC")}, testProfiles(),
		Options{Schedules: []presence.Schedule{{Name: "lunch", At: "08:10", Profile: "lunch"}}})
	r := w.instance(t)
	r.switchTo("alice", "available", presence.SourceAPI, time.Time{})
	r.switchTo("bob", "available", presence.SourceAPI, time.Time{})
	r.step() // plans 08:00-08:15: lunch at 08:10

	// The reload moves lunch to 08:12 and adds a meeting at 08:05.
	if err := r.s.SetSchedules([]presence.Schedule{{Name: "lunch", At: "08:12", Profile: "lunch"},
		{Name: "standup", At: "08:05", Profile: "meeting"}}, nil, time.UTC); err != nil {
		t.Fatal(err)
	}
	r.clock.Set(start.Add(5 * time.Minute))
	r.step()
	r.expect("alice", "meeting", presence.SourceSchedule)
	r.switchTo("alice", "available", presence.SourceAPI, time.Time{})
	r.switchTo("bob", "available", presence.SourceAPI, time.Time{})
	r.clock.Set(start.Add(10 * time.Minute))
	r.step()
	r.expect("alice", "available", presence.SourceAPI) // 08:10 is no longer lunch's time
	r.clock.Set(start.Add(12 * time.Minute))
	r.step()
	r.expect("alice", "lunch", presence.SourceSchedule)
	r.expect("bob", "lunch", presence.SourceSchedule)

	// An invalid reload changes nothing.
	if err := r.s.SetSchedules([]presence.Schedule{{Name: "x", At: "25:00", Profile: "lunch"}}, nil, time.UTC); err == nil {
		t.Fatal("SetSchedules took an entry at 25:00")
	}
	if got := r.s.Inherited("alice"); len(got) != 2 {
		t.Fatalf("inherited entries after a bad SetSchedules: %v", got)
	}
}

// TestExternalTriggerWithoutEndReturnsAtMaxDuration: a meeting whose end never comes holds
// the user for its max_duration (the start's, else the configured default) and no longer:
// then the user returns as if the end had come, journaled as the max_duration's. A trigger
// ended and started again is not ended by its first start's safety end.
func TestExternalTriggerWithoutEndReturnsAtMaxDuration(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
	w := newWorld(t, start, []presence.User{testUser("alice", 1001, "UTC")}, testProfiles(), Options{ExternalMaxDuration: 3 * time.Hour})
	r := w.instance(t)
	r.switchTo("alice", "available", presence.SourceAPI, time.Time{})

	res, err := r.s.External(ctx, "alice", "zoom", true, "meeting", 2*time.Hour)
	if err != nil || !res.Switched || res.Until == nil || !res.Until.Equal(start.Add(2*time.Hour)) {
		t.Fatalf("start: %+v %v, want switched until 11:00", res, err)
	}
	r.expect("alice", "meeting", presence.SourceExternal)
	r.clock.Set(start.Add(2*time.Hour - time.Second))
	r.step()
	r.expect("alice", "meeting", presence.SourceExternal)
	r.clock.Set(start.Add(2 * time.Hour))
	r.step()
	r.expect("alice", "available", presence.SourceExternal)
	if st := r.state("alice"); st.Actor != "external:zoom (max_duration)" {
		t.Fatalf("returned by %q, want the max_duration", st.Actor)
	}
	j, err := r.states.Journal(ctx, "alice", 1)
	if err != nil || len(j) != 1 || j[0].Actor != "external:zoom (max_duration)" || j[0].To != "available" {
		t.Fatalf("journal %+v %v", j, err)
	}
	// The end that comes late changes nothing.
	if res, err := r.s.External(ctx, "alice", "zoom", false, "", 0); err != nil || res.Switched {
		t.Fatalf("late end: %+v %v", res, err)
	}

	// The configured default; a restart of the trigger has an end of its own.
	now := start.Add(3 * time.Hour) // 12:00
	r.clock.Set(now)
	if _, err := r.s.External(ctx, "alice", "cal", true, "meeting", 0); err != nil { // until 15:00
		t.Fatal(err)
	}
	r.clock.Set(now.Add(time.Hour))
	if _, err := r.s.External(ctx, "alice", "cal", false, "", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := r.s.External(ctx, "alice", "cal", true, "meeting", 0); err != nil { // 13:00, until 16:00
		t.Fatal(err)
	}
	r.clock.Set(now.Add(3 * time.Hour)) // 15:00: the first start's end, superseded
	r.step()
	r.expect("alice", "meeting", presence.SourceExternal)
	r.clock.Set(now.Add(4 * time.Hour)) // 16:00
	r.step()
	r.expect("alice", "available", presence.SourceExternal)

	if _, err := r.s.External(ctx, "alice", "cal", true, "meeting", 8*24*time.Hour); err == nil {
		t.Fatal("a max_duration over a week was accepted")
	}
}
