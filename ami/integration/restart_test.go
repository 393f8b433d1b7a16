package integration

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presenced/presenced/ami"
)

// TestAsteriskRestart: Asterisk restarts under a connected client. The
// client sees Shutdown and loses the connection, reconnects on its own
// (AMI accepts the login before boot completes), and runs OnReady again
// once FullyBooted arrives. It leaves Asterisk fully booted.
func TestAsteriskRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var ready readyCounter
	reg := prometheus.NewRegistry()
	c := newClient(t, clientOpts{mod: func(cfg *ami.Config) {
		cfg.OnReady = ready.onReady
		cfg.Registerer = reg
	}})
	waitFor(t, "first OnReady", func() bool { return ready.count() == 1 })
	// A dynamic member survives the restart (persistentmembers = yes).
	iface := memberIface()
	if err := c.QueueAdd(ctx, ami.QueueMemberSpec{Queue: "support", Interface: iface, Paused: true, Reason: "restart test"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.QueueRemove(context.Background(), iface, "support") })
	sub := c.Subscribe(100000)

	restarted := time.Now()
	if out, err := env.CLI(ctx, "core restart now"); err != nil {
		t.Logf("core restart now: %v (%q)", err, out) // the CLI connection may die with Asterisk
	}
	t.Cleanup(func() {
		if err := env.WaitFullyBooted(context.Background()); err != nil {
			t.Errorf("Asterisk did not come back: %v", err)
		}
	})
	shutdown := waitEvent(t, sub, "Shutdown or Disconnected", func(m *ami.Message) bool {
		return m.Event() == "Shutdown" || m.Event() == ami.EventDisconnected
	})
	t.Logf("first sign of the restart: %s", shutdown)
	select {
	case <-ready.ctx(0).Done():
	case <-time.After(20 * time.Second):
		t.Fatal("OnReady ctx not cancelled by the restart")
	}
	waitEvent(t, sub, "Connected", func(m *ami.Message) bool { return m.Event() == ami.EventConnected })
	var before []string
	waitEvent(t, sub, "FullyBooted", func(m *ami.Message) bool {
		if m.Event() != ami.EventFullyBooted {
			before = append(before, m.Event())
		}
		return m.Event() == ami.EventFullyBooted
	})
	t.Logf("reconnected and fully booted %v after the restart; %d events between Connected and FullyBooted: %v",
		time.Since(restarted), len(before), before)
	waitFor(t, "OnReady after the restart", func() bool { return ready.count() == 2 })
	if got := metricValue(t, reg, "presenced_ami_reconnects_total"); got < 1 {
		t.Errorf("reconnects_total = %v", got)
	}
	if got := metricValue(t, reg, "presenced_ami_fully_booted"); got != 1 {
		t.Errorf("fully_booted = %v", got)
	}
	if err := env.WaitFullyBooted(ctx); err != nil {
		t.Fatal(err)
	}
	m, ok := findMember(t, c, "support", iface)
	if !ok || !m.Paused || m.PausedReason != "restart test" {
		t.Errorf("dynamic member after restart: %+v, %v", m, ok)
	}
}
