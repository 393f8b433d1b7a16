package integration

import (
	"context"
	"testing"

	"github.com/presenced/presenced/ami"
)

func TestGlobals(t *testing.T) {
	c := newClient(t, clientOpts{})
	ctx := testCtx(t)
	name := "PDTEST_" + uniq("")
	t.Cleanup(func() { _ = c.Setvar(context.Background(), "", name, "") })

	if v, err := c.Getvar(ctx, "", name); err != nil || v != "" {
		t.Errorf("Getvar of unset global = %q, %v", v, err)
	}
	if err := c.Setvar(ctx, "", name, tricky); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Getvar(ctx, "", name); err != nil || v != tricky {
		t.Errorf("Getvar = %q, %v; want %q", v, err, tricky)
	}
	if v, err := c.Getvar(ctx, "", "GLOBAL("+name+")"); err != nil || v != tricky {
		t.Errorf("Getvar GLOBAL() = %q, %v", v, err)
	}
	if err := c.Setvar(ctx, "", name, ""); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Getvar(ctx, "", name); err != nil || v != "" {
		t.Errorf("Getvar after delete = %q, %v", v, err)
	}
	_, err := c.Getvar(ctx, "PJSIP/nonexistent-00000000", name)
	wantResponseError(t, "Getvar on unknown channel", err, "No such channel")
	err = c.Setvar(ctx, "PJSIP/nonexistent-00000000", name, "x")
	wantResponseError(t, "Setvar on unknown channel", err, "No such channel")
}

func TestDeviceState(t *testing.T) {
	c := newClient(t, clientOpts{})
	ctx := testCtx(t)
	sub := c.Subscribe(1000)
	dev := "Custom:" + uniq("pdt")

	if err := c.Setvar(ctx, "", "DEVICE_STATE("+dev+")", "BUSY"); err != nil {
		t.Fatal(err)
	}
	ev := waitEvent(t, sub, "DeviceStateChange "+dev, func(m *ami.Message) bool {
		return m.Event() == "DeviceStateChange" && m.Get("Device") == dev
	})
	if ds := ami.ParseDeviceState(ev); ds.State != "BUSY" {
		t.Errorf("DeviceStateChange %+v", ds)
	}
	if v, err := c.Getvar(ctx, "", "DEVICE_STATE("+dev+")"); err != nil || v != "BUSY" {
		t.Errorf("Getvar DEVICE_STATE = %q, %v", v, err)
	}
	err := c.Setvar(ctx, "", "DEVICE_STATE("+dev+")", "UNKNOWN")
	wantResponseError(t, "DEVICE_STATE UNKNOWN", err, "Variable not set")

	list, err := c.DeviceStateList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, d := range list {
		if d.Device == dev {
			found = true
			if d.State != "BUSY" {
				t.Errorf("DeviceStateList %s = %s", dev, d.State)
			}
			if d.State != ami.DeviceBusy.String() {
				t.Errorf("DeviceStateList %s = %s, not the name of ami.DeviceBusy", dev, d.State)
			}
		}
	}
	if !found || len(list) < 2 {
		t.Errorf("DeviceStateList (%d devices) lacks %s", len(list), dev)
	}
}

func TestExtensionState(t *testing.T) {
	c := newClient(t, clientOpts{})
	ctx := testCtx(t)
	sub := c.Subscribe(1000)
	t.Cleanup(func() { _ = c.Setvar(context.Background(), "", "DEVICE_STATE(Custom:DND1003)", "NOT_INUSE") })

	es, err := c.ExtensionState(ctx, "1003", "hints")
	if err != nil {
		t.Fatal(err)
	}
	if es.Exten != "1003" || es.Context != "hints" || es.Hint != "PJSIP/1003&Custom:DND1003,CustomPresence:1003" {
		t.Errorf("ExtensionState(1003@hints) = %+v", es)
	}
	if es, err := c.ExtensionState(ctx, "nohint"+uniqDigits(4), "hints"); err != nil || es.Status != -1 || es.Hint != "" {
		t.Errorf("ExtensionState without hint = %+v, %v", es, err)
	}

	if err := c.Setvar(ctx, "", "DEVICE_STATE(Custom:DND1003)", "BUSY"); err != nil {
		t.Fatal(err)
	}
	ev := waitEvent(t, sub, "ExtensionStatus *761003", func(m *ami.Message) bool {
		return m.Event() == "ExtensionStatus" && m.Get("Exten") == "*761003" && m.Get("Status") == "2"
	})
	if s := ami.ParseExtensionStatus(ev); s.StatusText != "Busy" || s.Context != "hints" {
		t.Errorf("ExtensionStatus event %+v", s)
	}
	if es, err := c.ExtensionState(ctx, "*761003", "hints"); err != nil || es.Status != 2 || es.StatusText != "Busy" {
		t.Errorf("ExtensionState(*761003) while DND = %+v, %v", es, err)
	}
	if err := c.Setvar(ctx, "", "DEVICE_STATE(Custom:DND1003)", "NOT_INUSE"); err != nil {
		t.Fatal(err)
	}
	if es, err := c.ExtensionState(ctx, "*761003", "hints"); err != nil || es.Status != 0 || es.StatusText != "Idle" {
		t.Errorf("ExtensionState(*761003) after DND off = %+v, %v", es, err)
	}
	// ExtensionState computes the state when asked; ExtensionStateList reports
	// the hint's last state, which Asterisk updates asynchronously: wait for the
	// ExtensionStatus event that says it has.
	waitEvent(t, sub, "ExtensionStatus *761003 idle", func(m *ami.Message) bool {
		return m.Event() == "ExtensionStatus" && m.Get("Exten") == "*761003" && m.Get("Status") == "0"
	})

	list, err := c.ExtensionStateList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	hints := map[string]ami.ExtensionStatus{}
	for _, s := range list {
		hints[s.Exten+"@"+s.Context] = s
	}
	if h := hints["1001@hints"]; h.Hint != "PJSIP/1001&Custom:DND1001,CustomPresence:1001" {
		t.Errorf("ExtensionStateList 1001@hints = %+v", h)
	}
	if h, ok := hints["*761003@hints"]; !ok || h.Status != 0 {
		t.Errorf("ExtensionStateList *761003@hints = %+v", h)
	}
}

func TestPresenceState(t *testing.T) {
	c := newClient(t, clientOpts{})
	ctx := testCtx(t)
	sub := c.Subscribe(1000)
	prov := "CustomPresence:" + uniq("pdt")

	if ps, err := c.PresenceState(ctx, prov); err != nil || ps.State != "not_set" {
		t.Errorf("PresenceState of unset provider = %+v, %v", ps, err)
	}
	if err := c.Setvar(ctx, "", "PRESENCE_STATE("+prov+")", "away,lunch,Back at 2pm: 50%"); err != nil {
		t.Fatal(err)
	}
	ps, err := c.PresenceState(ctx, prov)
	if err != nil {
		t.Fatal(err)
	}
	if ps.Provider != prov || ps.State != "away" || ps.Subtype != "lunch" || ps.Message != "Back at 2pm: 50%" {
		t.Errorf("PresenceState = %+v", ps)
	}
	if msgs := ps.Raw.Values("Message"); len(msgs) != 2 || msgs[0] != "Presence State" || msgs[1] != "Back at 2pm: 50%" {
		t.Errorf("Message headers %q, want both, in order", msgs)
	}
	ev := waitEvent(t, sub, "PresenceStateChange "+prov, func(m *ami.Message) bool {
		return m.Event() == "PresenceStateChange" && m.Get("Presentity") == prov
	})
	if p := ami.ParsePresenceStateChange(ev); p.State != "away" || p.Subtype != "lunch" || p.Message != "Back at 2pm: 50%" {
		t.Errorf("PresenceStateChange %+v", p)
	}

	// A message with commas must be base64-encoded with option e; Asterisk
	// hands it back decoded.
	if err := c.Setvar(ctx, "", "PRESENCE_STATE("+prov+")", "dnd,,SW4gYSBtZWV0aW5nLCBiYWNrIHNvb24=,e"); err != nil {
		t.Fatal(err)
	}
	if ps, err := c.PresenceState(ctx, prov); err != nil || ps.State != "dnd" || ps.Message != "In a meeting, back soon" {
		t.Errorf("PresenceState after encoded message = %+v, %v", ps, err)
	}

	list, err := c.PresenceStateList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var mine *ami.PresenceStatus
	for i := range list {
		if list[i].Provider == prov {
			mine = &list[i]
		}
	}
	if mine == nil || mine.State != "dnd" || mine.Message != "In a meeting, back soon" {
		t.Errorf("PresenceStateList entry for %s = %+v", prov, mine)
	}

	_, err = c.PresenceState(ctx, "Foo:1")
	wantResponseError(t, "PresenceState of unknown provider type", err, "Invalid provider Foo:1 or provider in invalid state")
	err = c.Setvar(ctx, "", "PRESENCE_STATE("+prov+")", "sleepy")
	wantResponseError(t, "PRESENCE_STATE bad state", err, "Variable not set")
}
