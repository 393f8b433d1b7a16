package integration

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/presenced/presenced/ari"
)

// waitGone waits until the channel is gone (GET /channels/{id} says 404).
func waitGone(t *testing.T, ctx context.Context, c *ari.Client, id string) {
	t.Helper()
	waitFor(t, 10*time.Second, func() bool {
		_, err := c.Channel(ctx, id)
		var re *ari.RequestError
		return errors.As(err, &re) && re.StatusCode == 404
	}, "channel "+id+" to be gone")
}

// TestOrphanHungUpAfterRestart: a daemon stops (crash, restart) while a
// call is in its application; the next instance with the same InstanceID
// hangs the call up on connect.
func TestOrphanHungUpAfterRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	a := amiClient(t)
	instance := uniq("or")

	c1 := startARI(t, instance, "")
	c1.waitHook(t, 20*time.Second)
	if err := a.Setvar(ctx, "", "PRESENCED_APP", c1.AppName()); err != nil {
		t.Fatalf("set PRESENCED_APP: %v", err)
	}
	id := dialFeatureCode(t, ctx, a, "4242")
	waitEvent(t, c1.Client, 15*time.Second, "StasisStart", func(ev ari.Event) bool {
		ss, ok := ev.(*ari.StasisStart)
		return ok && ss.Channel.ID == id
	})
	c1.stop()

	// The channel stays in the (now inactive) application.
	app, err := c1.Application(ctx)
	if err != nil {
		t.Fatalf("application after stop: %v", err)
	}
	if !slices.Contains(app.ChannelIDs, id) {
		t.Fatalf("channel_ids after stop = %v, want %s in it", app.ChannelIDs, id)
	}

	c2 := startARI(t, instance, "")
	c2.waitHook(t, 20*time.Second)
	if got := counter(t, c2.reg, "presenced_ari_orphans_hungup_total"); got != 1 {
		t.Errorf("orphans_hungup_total = %v, want 1", got)
	}
	waitGone(t, ctx, c2.Client, id)
}

// TestOrphanHungUpAfterReconnect: the events websocket breaks while a call
// is in the application (its events are lost); on reconnect the client
// hangs it up. A call that enters after the reconnect is left alone.
func TestOrphanHungUpAfterReconnect(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	a := amiClient(t)
	p, ariURL := newProxy(t)
	c := startARI(t, uniq("rc"), ariURL)
	c.waitHook(t, 20*time.Second)
	if err := a.Setvar(ctx, "", "PRESENCED_APP", c.AppName()); err != nil {
		t.Fatalf("set PRESENCED_APP: %v", err)
	}
	id := dialFeatureCode(t, ctx, a, "99")
	waitEvent(t, c.Client, 15*time.Second, "StasisStart", func(ev ari.Event) bool {
		ss, ok := ev.(*ari.StasisStart)
		return ok && ss.Channel.ID == id
	})

	p.SetUp(false)
	waitFor(t, 10*time.Second, func() bool { return !c.Status().Connected }, "disconnect")
	if st := c.Status(); st.LastError == "" {
		t.Errorf("Status() while down = %+v, want a LastError", st)
	}
	p.SetUp(true)
	c.waitHook(t, 20*time.Second)
	if got := counter(t, c.reg, "presenced_ari_orphans_hungup_total"); got != 1 {
		t.Errorf("orphans_hungup_total = %v, want 1", got)
	}
	waitEvent(t, c.Client, 10*time.Second, "StasisEnd of the orphan", func(ev ari.Event) bool {
		se, ok := ev.(*ari.StasisEnd)
		return ok && se.Channel.ID == id
	})
	waitGone(t, ctx, c.Client, id)

	// A new call after the reconnect is handled normally.
	id2 := dialFeatureCode(t, ctx, a, "98")
	waitEvent(t, c.Client, 15*time.Second, "StasisStart after reconnect", func(ev ari.Event) bool {
		ss, ok := ev.(*ari.StasisStart)
		return ok && ss.Channel.ID == id2
	})
	if err := c.Hangup(ctx, id2); err != nil {
		t.Errorf("Hangup: %v", err)
	}
	if got := counter(t, c.reg, "presenced_ari_orphans_hungup_total"); got != 1 {
		t.Errorf("orphans_hungup_total = %v after a normal call, want 1", got)
	}
}
