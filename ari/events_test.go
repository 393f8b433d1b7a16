package ari

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestSlowConsumerDropsAreCountedAndResynced(t *testing.T) {
	f := newFakeARI(t)
	cfg := testConfig(t, f.URL())
	cfg.EventBuffer = 4
	h := start(t, cfg)
	waitEvent(t, h.Client, 3*time.Second, isResync(ResyncConnected))

	// The consumer stops reading; 20 events arrive.
	digits := "0123456789ABCD#*0123"
	for _, d := range digits {
		f.send(map[string]any{"type": "ChannelDtmfReceived", "application": h.AppName(),
			"digit": string(d), "channel": map[string]any{"id": "c1"}})
	}
	eventually(t, 3*time.Second, func() bool { return testutil.ToFloat64(h.metrics.dropped) == 16 }, "16 drops")
	if got := testutil.ToFloat64(h.metrics.events.WithLabelValues("ChannelDtmfReceived")); got != 20 {
		t.Errorf(`presenced_ari_events_total{type="ChannelDtmfReceived"} = %v, want 20`, got)
	}
	if got := h.Status().EventsDropped; got != 16 {
		t.Errorf("Status().EventsDropped = %d, want 16", got)
	}

	// The consumer reads again: the 4 buffered events, then a Resync.
	for i := range 4 {
		ev := <-h.Events()
		dtmf, ok := ev.(*ChannelDtmfReceived)
		if !ok || dtmf.Digit != digits[i:i+1] {
			t.Fatalf("event %d = %T %+v, want digit %s", i, ev, ev, digits[i:i+1])
		}
	}
	select {
	case ev := <-h.Events():
		r, ok := ev.(*Resync)
		if !ok || r.Reason != ResyncDropped || r.DroppedTotal == 0 || r.GetType() != ResyncType || r.GetApplication() != h.AppName() {
			t.Fatalf("after the buffered events got %T %+v, want a Resync for drops", ev, ev)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no Resync after drops")
	}
}

func TestUnknownEventsArePassedOn(t *testing.T) {
	f := newFakeARI(t)
	h := start(t, testConfig(t, f.URL()))
	waitEvent(t, h.Client, 3*time.Second, isResync(ResyncConnected))

	f.send(map[string]any{"type": "ChannelToneDetected", "application": h.AppName(), "channel": map[string]any{"id": "c1"}})
	ev := waitEvent(t, h.Client, 2*time.Second, func(ev Event) bool { _, ok := ev.(*UnknownEvent); return ok })
	u := ev.(*UnknownEvent)
	if u.GetType() != "ChannelToneDetected" || u.GetApplication() != h.AppName() || len(u.Raw) == 0 || u.DecodeError != "" {
		t.Errorf("UnknownEvent = %+v", u)
	}

	// A known type with bad JSON is passed on with the decoding error.
	f.send(map[string]any{"type": "StasisStart", "application": h.AppName(), "args": "not a list"})
	ev = waitEvent(t, h.Client, 2*time.Second, func(ev Event) bool { _, ok := ev.(*UnknownEvent); return ok })
	if u := ev.(*UnknownEvent); u.GetType() != "StasisStart" || u.DecodeError == "" {
		t.Errorf("UnknownEvent for bad StasisStart = %+v", u)
	}

	// The barrier user events of the orphan check never reach the consumer.
	if got := testutil.ToFloat64(h.metrics.events.WithLabelValues("ChannelToneDetected")); got != 1 {
		t.Errorf(`events_total{type="ChannelToneDetected"} = %v, want 1`, got)
	}
}
