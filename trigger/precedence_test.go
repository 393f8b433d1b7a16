package trigger

import (
	"testing"
	"time"

	"github.com/presenced/presenced/presence"
)

func TestPrecedence(t *testing.T) {
	t0 := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	st := func(profile string, src presence.Source, v int64, sticky bool) presence.UserState {
		return presence.UserState{Profile: profile, Source: src, Version: v, Since: t0.Add(time.Duration(v) * time.Minute), Sticky: sticky}
	}
	rec := func(base string, v int64, active ...Activation) *Record {
		return &Record{Base: base, Version: v, Since: t0.Add(time.Duration(v) * time.Minute), Active: active}
	}
	lunch := Activation{Name: "schedule:lunch", Source: presence.SourceSchedule, Profile: "lunch", Priority: 5, Started: t0}
	meeting := Activation{Name: "external:cal", Source: presence.SourceExternal, Profile: "meeting", Priority: 1, Started: t0.Add(time.Minute)}
	timed := Activation{Name: untilName, Source: presence.SourceExpiry, Profile: "focus", Priority: 9, Manual: true, Started: t0}

	for _, tc := range []struct {
		name        string
		d           Decision
		wantSwitch  string // "" for no switch
		wantReason  string
		wantBase    string
		wantActive  int
		wantDeleted bool
	}{
		{name: "range starts from a manual profile", d: Start(st("available", presence.SourceAPI, 1, false), nil, lunch),
			wantSwitch: "lunch", wantBase: "available", wantActive: 1},
		{name: "a user never switched returns to available", d: Start(presence.UserState{}, nil, lunch),
			wantSwitch: "lunch", wantBase: "available", wantActive: 1},
		{name: "sticky profile is not replaced", d: Start(st("vacation", presence.SourceAPI, 1, true), nil, lunch),
			wantReason: "sticky profile", wantDeleted: true},
		{name: "second start is a no-op", d: Start(st("lunch", presence.SourceSchedule, 2, false), rec("available", 2, lunch), lunch),
			wantReason: "already active", wantBase: "available", wantActive: 1},
		{name: "higher priority (lower number) takes over", d: Start(st("lunch", presence.SourceSchedule, 2, false), rec("available", 2, lunch), meeting),
			wantSwitch: "meeting", wantBase: "available", wantActive: 2},
		{name: "lower priority is outranked but remembered", d: Start(st("meeting", presence.SourceExternal, 2, false), rec("available", 2, meeting), lunch),
			wantReason: "outranked by external:cal", wantBase: "available", wantActive: 2},
		{name: "a timed profile outranks automatic triggers", d: Start(st("focus", presence.SourceAPI, 2, false), rec("available", 2, timed), meeting),
			wantReason: "outranked by until", wantBase: "available", wantActive: 2},
		{name: "manual switch since resets the record", d: Start(st("dnd", presence.SourceAPI, 3, false), rec("available", 2, lunch), meeting),
			wantSwitch: "meeting", wantBase: "dnd", wantActive: 1},
		{name: "end returns to the base", d: End(st("lunch", presence.SourceSchedule, 2, false), rec("available", 2, lunch), lunch.Name, presence.SourceSchedule),
			wantSwitch: "available", wantDeleted: true},
		{name: "end returns to the remaining winner", d: End(st("meeting", presence.SourceExternal, 3, false), rec("available", 3, lunch, meeting), meeting.Name, presence.SourceExternal),
			wantSwitch: "lunch", wantBase: "available", wantActive: 1},
		{name: "end of an outranked one keeps the winner", d: End(st("meeting", presence.SourceExternal, 3, false), rec("available", 3, lunch, meeting), lunch.Name, presence.SourceSchedule),
			wantReason: "already in meeting", wantBase: "available", wantActive: 1},
		{name: "end after a manual switch is cancelled", d: End(st("dnd", presence.SourceFeatureCode, 4, false), rec("available", 3, lunch), lunch.Name, presence.SourceSchedule),
			wantReason: "cancelled: switched since", wantDeleted: true},
		{name: "end without start is a no-op", d: End(st("available", presence.SourceAPI, 1, false), nil, "external:cal", presence.SourceExternal),
			wantReason: "not active", wantDeleted: true},
		{name: "sticky set by a trigger returns at its end", d: End(st("vacation", presence.SourceExternal, 2, true), rec("available", 2, Activation{Name: "external:ooo", Profile: "vacation"}), "external:ooo", presence.SourceExternal),
			wantSwitch: "available", wantDeleted: true},
		{name: "at switches", d: At(st("closed", presence.SourceSchedule, 1, false), nil, "schedule:morning", "available"),
			wantSwitch: "available", wantDeleted: true},
		{name: "at does not replace a sticky profile", d: At(st("vacation", presence.SourceAPI, 1, true), nil, "schedule:morning", "available"),
			wantReason: "sticky profile", wantDeleted: true},
		{name: "at during a range changes the return", d: At(st("lunch", presence.SourceSchedule, 2, false), rec("closed", 2, lunch), "schedule:morning", "available"),
			wantReason: "held by schedule:lunch; returns to available", wantBase: "available", wantActive: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.d
			got := ""
			if d.Switch {
				got = d.Profile
			}
			if got != tc.wantSwitch {
				t.Errorf("switch to %q, want %q (reason %q)", got, tc.wantSwitch, d.Reason)
			}
			if tc.wantReason != "" && d.Reason != tc.wantReason {
				t.Errorf("reason %q, want %q", d.Reason, tc.wantReason)
			}
			if tc.wantDeleted != (d.Record == nil) {
				t.Fatalf("record %+v, want deleted=%v", d.Record, tc.wantDeleted)
			}
			if d.Record != nil && (d.Record.Base != tc.wantBase || len(d.Record.Active) != tc.wantActive) {
				t.Errorf("record base %q with %d active, want %q with %d", d.Record.Base, len(d.Record.Active), tc.wantBase, tc.wantActive)
			}
		})
	}
}
