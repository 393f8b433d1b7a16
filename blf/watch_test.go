package blf_test

import (
	"testing"
	"time"

	"github.com/presenced/presenced/blf"
	"github.com/presenced/presenced/callstate"
	"github.com/presenced/presenced/internal/lab"
	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/presencetest"
)

// TestWatchNamesTheUserOfALampAndAPhone: a user's DND lamp and presence set by hand (a phone's
// DND key, an admin), and a state change of one of their phones, are reported as that user's
// changes, with what the events showed (which desired states agree with them); other lamps and
// devices are not.
func TestWatchNamesTheUserOfALampAndAPhone(t *testing.T) {
	ctx := lab.Context(t)
	ext := "97" + lab.Unique("")[len(lab.Unique(""))-4:]
	phone := "Custom:" + lab.Unique("phone")
	// Watch reads only the users of the catalog: a Custom: device stands in for a phone here
	// (a real phone's state changes need a call), which a validated catalog would refuse.
	cat := &presence.Catalog{Users: []*presence.User{{ID: "watched", Extension: ext,
		Devices: []presence.Device{{Dial: phone, Family: presence.FamilyDesk}}}}}
	events := env.AMI(t, false, nil) // the daemon's user: system,call,agent,user
	c, err := blf.New(blf.Options{AMI: events})
	if err != nil {
		t.Fatal(err)
	}
	devices := callstate.New(events, events, []string{phone})
	lamps, phones := presencetest.NewWatchRecorder(), presencetest.NewWatchRecorder()
	lamps.Start(t, c, cat, 0)
	phones.Start(t, devices, cat, 100*time.Millisecond)
	admin := env.AMI(t, true, nil)
	set := func(name, value string) {
		t.Helper()
		if err := admin.Setvar(ctx, "", name, value); err != nil {
			t.Fatal(err)
		}
	}
	set("DEVICE_STATE(Custom:"+lab.Unique("other")+")", "BUSY")
	lamp := func(state string) *presence.Target {
		return &presence.Target{Devices: map[string]string{"Custom:DND" + ext: state}}
	}
	pres := func(state, message string) *presence.Target {
		return &presence.Target{Presence: map[string]*presence.PresenceValue{"CustomPresence:" + ext: {State: state, Message: message}}}
	}
	// Each change, and desired states that agree and disagree with what its event shows.
	for i, step := range []struct {
		name, variable, value string
		agree, differ         []*presence.Target
	}{
		{"the DND lamp set by hand", "DEVICE_STATE(Custom:DND" + ext + ")", "BUSY",
			[]*presence.Target{lamp("BUSY"), lamp("busy"), presence.NewTarget()}, []*presence.Target{lamp("INVALID"), lamp("NOT_INUSE")}},
		{"the DND lamp off (INVALID)", "DEVICE_STATE(Custom:DND" + ext + ")", "INVALID",
			[]*presence.Target{lamp("INVALID")}, []*presence.Target{lamp("BUSY")}},
		{"the presence set by hand", "PRESENCE_STATE(CustomPresence:" + ext + ")", "away,,by hand",
			[]*presence.Target{pres("away", "by hand"), pres("AWAY", "by hand"), lamp("BUSY")}, []*presence.Target{pres("away", ""), pres("available", "by hand")}},
	} {
		set(step.variable, step.value)
		lamps.WaitFor(t, step.name, 5*time.Second, func() bool { return lamps.Changed("watched") >= i+1 })
		for _, w := range step.agree {
			if !lamps.Agrees("watched", w) {
				t.Errorf("%s: the event disagrees with %+v %+v", step.name, w.Devices, w.Presence)
			}
		}
		for _, w := range step.differ {
			if lamps.Agrees("watched", w) {
				t.Errorf("%s: the event agrees with %+v %+v", step.name, w.Devices, w.Presence)
			}
		}
	}
	set("DEVICE_STATE("+phone+")", "INUSE")
	phones.WaitFor(t, "the phone in use", 5*time.Second, func() bool { return phones.Changed("watched") >= 1 })
	if got := devices.DeviceState(phone); got != "INUSE" {
		t.Errorf("the phone's state is %q, want INUSE", got)
	}
	if n := phones.Changed("watched"); n != 1 {
		t.Errorf("the lamps counted as phone changes: %d", n)
	}
	if all := append(lamps.All(), phones.All()...); len(all) != 0 {
		t.Errorf("everyone asked for: %v", all)
	}
	t.Cleanup(func() {
		_ = admin.Setvar(lab.Context(t), "", "DEVICE_STATE(Custom:DND"+ext+")", "NOT_INUSE")
	})
}
