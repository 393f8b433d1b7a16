package callstate_test

import (
	"testing"
	"time"

	"github.com/presenced/presenced/ami"
	"github.com/presenced/presenced/callstate"
	"github.com/presenced/presenced/internal/lab"
)

// TestPhonesFollowThePBX: the tracker loads the states of its devices in one
// DeviceStateList, follows their DeviceStateChange events, and ignores other devices.
func TestPhonesFollowThePBX(t *testing.T) {
	ctx := lab.Context(t)
	c := env.AMI(t, false, nil)
	phone, other := "Custom:"+lab.Unique("phone"), "Custom:"+lab.Unique("other")
	if err := c.Setvar(ctx, "", "DEVICE_STATE("+phone+")", "NOT_INUSE"); err != nil {
		t.Fatal(err)
	}
	d := callstate.New(c, c, []string{phone, "PJSIP/nobody"})
	if err := d.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if got := d.DeviceState(phone); got != "NOT_INUSE" {
		t.Fatalf("after Load: %s is %q, want NOT_INUSE", phone, got)
	}
	if got := d.DeviceState("PJSIP/nobody"); got != "" {
		t.Fatalf("a device Asterisk does not list: %q, want unknown", got)
	}

	sub := c.Subscribe(256)
	defer sub.Close()
	for _, dev := range []string{other, phone} {
		if err := c.Setvar(ctx, "", "DEVICE_STATE("+dev+")", "INUSE"); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.After(5 * time.Second)
	for {
		select {
		case ev := <-sub.Events():
			dev, changed := d.Handle(ev)
			if changed && dev != phone {
				t.Fatalf("Handle reported %q, which is not tracked", dev)
			}
			if changed {
				if got := d.DeviceState(phone); got != "INUSE" {
					t.Fatalf("after the event: %q, want INUSE", got)
				}
				if d.DeviceState(other) != "" {
					t.Fatal("an untracked device was recorded")
				}
				// The same state again is no change.
				if _, again := d.Handle(ami.NewMessage("Event", "DeviceStateChange", "Device", phone, "State", "inuse")); again {
					t.Fatal("the same state reported as a change")
				}
				return
			}
		case <-deadline:
			t.Fatal("no DeviceStateChange for the tracked device")
		}
	}
}
