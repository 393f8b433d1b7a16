package ari

import (
	"context"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	ariv6 "github.com/CyCoreSystems/ari/v6"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestReconnectCallsHookAndRestoresSubscriptions(t *testing.T) {
	f := newFakeARI(t)
	ctx := context.Background()
	// Remembered before the first connect, applied on connect.
	h := startWith(t, testConfig(t, f.URL()), func(c *Client) {
		if err := c.SubscribeDevice(ctx, "Custom:DND1001"); err != nil {
			t.Fatalf("SubscribeDevice before connect: %v", err)
		}
	})
	eventually(t, 3*time.Second, func() bool { return h.hooks.Load() == 1 }, "first OnReconnect")
	if !f.hasDevice("Custom:DND1001") {
		t.Errorf("subscription not applied on connect")
	}
	waitEvent(t, h.Client, 2*time.Second, isResync(ResyncConnected))
	if got := testutil.ToFloat64(h.metrics.connected); got != 1 {
		t.Errorf("presenced_ari_connected = %v, want 1", got)
	}

	// Applied at once while connected.
	if err := h.SubscribeDevice(ctx, "Custom:DND1002"); err != nil {
		t.Fatalf("SubscribeDevice while connected: %v", err)
	}
	if !f.hasDevice("Custom:DND1002") {
		t.Errorf("subscription not applied while connected")
	}

	// Asterisk restarts: the websocket drops and subscriptions are gone.
	f.restart()
	eventually(t, 5*time.Second, func() bool { return h.hooks.Load() == 2 }, "OnReconnect after restart")
	if !f.hasDevice("Custom:DND1001") || !f.hasDevice("Custom:DND1002") {
		t.Errorf("subscriptions not restored after restart")
	}
	waitEvent(t, h.Client, 2*time.Second, isResync(ResyncConnected))
	if got := testutil.ToFloat64(h.metrics.reconnects); got != 1 {
		t.Errorf("presenced_ari_reconnects_total = %v, want 1", got)
	}

	// Only the websocket drops: Asterisk still has the subscriptions, so
	// they are not added a second time.
	before := f.count("POST /ari/applications/presenced-t1/subscription")
	f.dropAll()
	eventually(t, 5*time.Second, func() bool { return h.hooks.Load() == 3 }, "OnReconnect after drop")
	if after := f.count("POST /ari/applications/presenced-t1/subscription"); after != before {
		t.Errorf("%d subscription requests after a plain reconnect, want none", after-before)
	}

	// A subscription Asterisk refuses is reported and forgotten.
	if err := h.SubscribeDevice(ctx, "Bad:x"); err == nil {
		t.Errorf("SubscribeDevice(Bad:x) succeeded")
	}

	// Forgotten subscriptions stay forgotten.
	if err := h.UnsubscribeDevice(ctx, "Custom:DND1002"); err != nil {
		t.Fatalf("UnsubscribeDevice: %v", err)
	}
	f.restart()
	eventually(t, 5*time.Second, func() bool { return h.hooks.Load() == 4 }, "OnReconnect after second restart")
	if !f.hasDevice("Custom:DND1001") || f.hasDevice("Custom:DND1002") {
		t.Errorf("after unsubscribe+restart: DND1001=%v DND1002=%v, want true false",
			f.hasDevice("Custom:DND1001"), f.hasDevice("Custom:DND1002"))
	}
	if got := testutil.ToFloat64(h.metrics.reconnects); got != 3 {
		t.Errorf("presenced_ari_reconnects_total = %v, want 3", got)
	}
}

// TestRefusedSubscriptionDoesNotBlockConnect: a subscription made while
// down that Asterisk refuses on connect is logged, not fatal.
func TestRefusedSubscriptionDoesNotBlockConnect(t *testing.T) {
	f := newFakeARI(t)
	h := startWith(t, testConfig(t, f.URL()), func(c *Client) {
		for _, d := range []string{"Bad:x", "Custom:ok"} {
			if err := c.SubscribeDevice(context.Background(), d); err != nil {
				t.Fatalf("SubscribeDevice(%s) before Run: %v", d, err)
			}
		}
	})
	eventually(t, 3*time.Second, func() bool { return h.Status().Connected }, "connect")
	if !f.hasDevice("Custom:ok") {
		t.Errorf("good subscription not applied")
	}
}

func TestOrphansHungUpOnConnect(t *testing.T) {
	f := newFakeARI(t)
	f.channels["orphan-1"] = true
	f.gone = []string{"orphan-gone"} // listed, but hung up before we get to it
	f.fresh = []string{"fresh-1"}    // entered after we connected
	h := start(t, testConfig(t, f.URL()))

	eventually(t, 3*time.Second, func() bool { return h.hooks.Load() == 1 }, "OnReconnect")
	if got := f.hungUp(); !slices.Equal(got, []string{"orphan-1"}) {
		t.Errorf("hung up %v, want [orphan-1]", got)
	}
	if got := testutil.ToFloat64(h.metrics.orphans); got != 1 {
		t.Errorf("presenced_ari_orphans_hungup_total = %v, want 1", got)
	}
	// The new channel reached the consumer, arguments and all.
	ev := waitEvent(t, h.Client, 2*time.Second, func(ev Event) bool { _, ok := ev.(*StasisStart); return ok })
	if ss := ev.(*StasisStart); ss.Channel.ID != "fresh-1" || !slices.Equal(ss.Args, []string{"activate", "1234"}) {
		t.Errorf("StasisStart = %s %v, want fresh-1 [activate 1234]", ss.Channel.ID, ss.Args)
	}

	// A lost connection orphans the channels in the app, too.
	f.dropAll()
	eventually(t, 5*time.Second, func() bool { return h.hooks.Load() == 2 }, "OnReconnect after drop")
	if got := f.hungUp(); !slices.Equal(got, []string{"orphan-1", "fresh-1"}) {
		t.Errorf("hung up %v, want [orphan-1 fresh-1]", got)
	}
	if got := testutil.ToFloat64(h.metrics.orphans); got != 2 {
		t.Errorf("presenced_ari_orphans_hungup_total = %v, want 2", got)
	}
}

// TestOrphansWhenProbeEventIsLost: Asterisk drops user events sent while
// the application is not active yet; the probe is sent again, and the
// orphan is still found.
func TestOrphansWhenProbeEventIsLost(t *testing.T) {
	f := newFakeARI(t)
	f.channels["orphan-1"] = true
	f.lostUserEvents = 2
	h := start(t, testConfig(t, f.URL()))
	eventually(t, 3*time.Second, func() bool { return h.hooks.Load() == 1 }, "OnReconnect")
	if got := f.hungUp(); !slices.Equal(got, []string{"orphan-1"}) {
		t.Errorf("hung up %v, want [orphan-1]", got)
	}
	if n := f.count("POST /ari/events/user/"); n != 3 {
		t.Errorf("%d probe events sent, want 3", n)
	}
	// Late copies of probes never reach the consumer.
	f.mu.Lock()
	var probe string
	for _, r := range f.requests {
		if rest, ok := strings.CutPrefix(r, "POST /ari/events/user/"); ok {
			probe, _, _ = strings.Cut(rest, "?")
		}
	}
	f.mu.Unlock()
	f.send(map[string]any{"type": "ChannelUserevent", "application": h.AppName(), "eventname": probe})
	f.send(map[string]any{"type": "ChannelUserevent", "application": h.AppName(), "eventname": "mine"})
	ev := waitEvent(t, h.Client, 2*time.Second, func(ev Event) bool { return ev.GetType() == "ChannelUserevent" })
	if ue := ev.(*ariv6.ChannelUserevent); ue.Eventname != "mine" {
		t.Errorf("consumer got user event %q", ue.Eventname)
	}
}

func TestRunWithServerDownKeepsRetrying(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now

	h := start(t, testConfig(t, "http://"+addr+"/ari"))
	eventually(t, 3*time.Second, func() bool { return pingAttempts(t, h) >= 3 }, "three connect attempts")
	st := h.Status()
	if st.Connected || !strings.Contains(st.LastError, "refused") {
		t.Errorf("Status() = %+v, want not connected, connection refused", st)
	}
	if got := testutil.ToFloat64(h.metrics.connected); got != 0 {
		t.Errorf("presenced_ari_connected = %v, want 0", got)
	}

	// Asterisk comes up: the client gets there on its own.
	l, err = net.Listen("tcp", addr)
	if err != nil {
		t.Logf("port %s was taken meanwhile (%v); not testing the recovery", addr, err)
		return
	}
	newFakeARIOn(t, l)
	eventually(t, 5*time.Second, func() bool { return h.Status().Connected }, "connect once the server is up")
	if st := h.Status(); st.LastError != "" {
		t.Errorf("LastError = %q after connecting, want empty", st.LastError)
	}

	h.stop()
	if _, ok := <-h.Events(); ok {
		// drain what was buffered
		for range h.Events() {
		}
	}
}

// pingAttempts is how many pings (one per connect attempt, plus liveness
// probes while connected) the client made.
func pingAttempts(t *testing.T, h *harness) uint64 {
	t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "presenced_ari_request_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "operation" && lp.GetValue() == opPing {
					return m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	return 0
}

func TestStopWhileDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	h := start(t, testConfig(t, "http://"+addr+"/ari"))
	eventually(t, 3*time.Second, func() bool { return h.Status().LastError != "" }, "a connect error")
	begin := time.Now()
	h.stop()
	if d := time.Since(begin); d > time.Second {
		t.Errorf("Run took %v to return after cancel", d)
	}
	for range h.Events() { // closed by Run
	}
}

func TestApplicationReplacedReconnects(t *testing.T) {
	f := newFakeARI(t)
	h := start(t, testConfig(t, f.URL()))
	eventually(t, 3*time.Second, func() bool { return h.hooks.Load() == 1 }, "connect")

	f.send(map[string]any{"type": "ApplicationReplaced", "application": h.AppName()})
	waitEvent(t, h.Client, 2*time.Second, func(ev Event) bool { _, ok := ev.(*ApplicationReplaced); return ok })
	eventually(t, 5*time.Second, func() bool { return h.hooks.Load() == 2 }, "reconnect")
	if got := testutil.ToFloat64(h.metrics.reconnects); got != 1 {
		t.Errorf("presenced_ari_reconnects_total = %v, want 1", got)
	}
}

func TestLivenessProbeEndsDeafConnection(t *testing.T) {
	f := newFakeARI(t)
	cfg := testConfig(t, f.URL())
	cfg.PingInterval = 30 * time.Millisecond
	cfg.RequestTimeout = 200 * time.Millisecond
	h := start(t, cfg)
	eventually(t, 3*time.Second, func() bool { return h.Status().Connected }, "connect")

	// The websocket stays open but events stop arriving, as when Asterisk
	// deactivated the application.
	f.mu.Lock()
	f.lostUserEvents = 1 << 30
	f.mu.Unlock()
	eventually(t, 5*time.Second, func() bool { return !h.Status().Connected }, "disconnect")
	if st := h.Status(); !strings.Contains(st.LastError, "liveness probe failed 2 times") {
		t.Errorf("LastError = %q, want the probe's failure", st.LastError)
	}
	// Reconnecting does not help while no events arrive.
	eventually(t, 5*time.Second, func() bool { return strings.Contains(h.Status().LastError, "no events") }, "a failed reconnect")
	if h.Status().Connected {
		t.Errorf("connected although no events arrive")
	}

	f.mu.Lock()
	f.lostUserEvents = 0
	f.mu.Unlock()
	eventually(t, 5*time.Second, func() bool { return h.Status().Connected }, "reconnect")
}

func TestPingFailureIsReported(t *testing.T) {
	f := newFakeARI(t)
	f.pingStatus = 500
	h := start(t, testConfig(t, f.URL()))
	eventually(t, 3*time.Second, func() bool { return h.Status().LastError != "" }, "a connect error")
	if st := h.Status(); !strings.Contains(st.LastError, "status 500") || st.Connected {
		t.Errorf("Status() = %+v, want not connected, the ping's 500", st)
	}
	if f.connected() != 0 {
		t.Errorf("websocket opened although the ping failed")
	}
}

func TestBadCredentialsReported(t *testing.T) {
	f := newFakeARI(t)
	cfg := testConfig(t, f.URL())
	cfg.Password = "wrong"
	h := start(t, cfg)
	eventually(t, 3*time.Second, func() bool { return h.Status().LastError != "" }, "a connect error")
	if st := h.Status(); !strings.Contains(st.LastError, "401") {
		t.Errorf("LastError = %q, want a 401", st.LastError)
	}
}
