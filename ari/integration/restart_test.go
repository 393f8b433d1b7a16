package integration

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/presenced/presenced/ari"
)

// TestAsteriskRestart: Asterisk restarts; the client reconnects on its own,
// restores the device subscription Asterisk forgot, and events flow again.
// It leaves Asterisk fully booted for the tests after it.
func TestAsteriskRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := startARI(t, uniq("rs"), "")
	dev := "Custom:" + uniq("PRESENCEDRS")
	if err := c.SubscribeDevice(ctx, dev); err != nil {
		t.Fatalf("SubscribeDevice: %v", err)
	}
	c.waitHook(t, 20*time.Second)

	restarted := time.Now()
	if out, err := env.CLI(ctx, "core restart now"); err != nil {
		t.Logf("core restart now: %v (%q)", err, out) // the CLI connection may die with Asterisk
	}
	t.Cleanup(func() {
		if err := env.WaitFullyBooted(context.Background()); err != nil {
			t.Errorf("Asterisk did not come back: %v", err)
		}
	})
	waitFor(t, 20*time.Second, func() bool { return !c.Status().Connected }, "disconnect")
	c.waitHook(t, time.Minute)
	t.Logf("reconnected %v after the restart; status %+v", time.Since(restarted), c.Status())
	if err := env.WaitFullyBooted(ctx); err != nil {
		t.Fatal(err)
	}

	app, err := c.Application(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(app.DeviceNames, dev) {
		t.Errorf("device_names after restart = %v, want %s restored", app.DeviceNames, dev)
	}
	a := amiClient(t)
	if err := a.Setvar(ctx, "", "DEVICE_STATE("+dev+")", "RINGING"); err != nil {
		t.Fatalf("set DEVICE_STATE: %v", err)
	}
	waitEvent(t, c.Client, 10*time.Second, "DeviceStateChanged", func(ev ari.Event) bool {
		d, ok := ev.(*ari.DeviceStateChanged)
		return ok && d.DeviceState.Name == dev && d.DeviceState.State == "RINGING"
	})
	if got := counter(t, c.reg, "presenced_ari_reconnects_total"); got != 1 {
		t.Errorf("reconnects_total = %v, want 1", got)
	}
}
