package integration

import (
	"context"
	"testing"
	"time"

	"github.com/presenced/presenced/ami"
)

// findChannel returns the active channel with the given uniqueid.
func findChannel(t *testing.T, c *ami.Client, uniqueid string) (ami.ChannelInfo, bool) {
	t.Helper()
	chans, err := c.CoreShowChannels(testCtx(t))
	if err != nil {
		t.Fatalf("CoreShowChannels: %v", err)
	}
	for _, ch := range chans {
		if ch.Uniqueid == uniqueid {
			return ch, true
		}
	}
	return ami.ChannelInfo{}, false
}

func TestOriginatePlayDTMFHangup(t *testing.T) {
	c := newClient(t, clientOpts{})
	ctx := testCtx(t)
	// The daemon's user does not receive OriginateResponse, DTMF or Hangup events (read
	// classes, Events mask and manager.conf event filters, eventfilter_test.go): watch them
	// with the test user and Events: on.
	watcher := newClient(t, clientOpts{test: true, mod: func(cfg *ami.Config) { cfg.Events = "on" }})
	sub := watcher.Subscribe(10000)

	id1, id2 := uniq("pd1-"), uniq("pd2-")
	err := c.Originate(ctx, ami.OriginateSpec{
		Channel:        "Local/wait@test-helpers",
		Application:    "Wait",
		Data:           "20",
		CallerID:       `"PD Test" <1999>`,
		Timeout:        10 * time.Second,
		Async:          true,
		ChannelID:      id1,
		OtherChannelID: id2,
		Variables:      map[string]string{"PDVAR": tricky, "PDOTHER": "x=y"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Hangup(context.Background(), id1, 0) })
	resp := waitEvent(t, sub, "OriginateResponse", func(m *ami.Message) bool {
		return m.Event() == "OriginateResponse" && m.Get("Uniqueid") == id1
	})
	if resp.Get("Response") != "Success" || resp.Get("Reason") != "4" {
		t.Fatalf("OriginateResponse %s", resp)
	}

	ch1, ok1 := findChannel(t, c, id1)
	ch2, ok2 := findChannel(t, c, id2)
	if !ok1 || !ok2 {
		t.Fatalf("originated channels not listed: %v %v", ok1, ok2)
	}
	if ch1.Application != "Wait" || ch1.ApplicationData != "20" || ch1.StateDesc != "Up" || ch1.Linkedid != id1 {
		t.Errorf("channel ;1 %+v", ch1)
	}
	if ch2.Context != "test-helpers" || ch2.Exten != "wait" || ch2.Linkedid != id1 {
		t.Errorf("channel ;2 %+v", ch2)
	}

	// Variables reached the channel intact: commas, quotes, parentheses
	// and backslashes are escaped for Asterisk's argument parser.
	if v, err := c.Getvar(ctx, ch1.Channel, "PDVAR"); err != nil || v != tricky {
		t.Errorf("PDVAR on %s = %q, %v; want %q", ch1.Channel, v, err, tricky)
	}
	// A uniqueid works as channel too; '=' in a value is kept.
	if v, err := c.Getvar(ctx, id1, "PDOTHER"); err != nil || v != "x=y" {
		t.Errorf("PDOTHER = %q, %v", v, err)
	}
	if v, err := c.Getvar(ctx, ch1.Channel, "CALLERID(name)"); err != nil || v != "PD Test" {
		t.Errorf("CALLERID(name) = %q, %v", v, err)
	}

	// Receive: the digit arrives on ;2 as if from the far end.
	if err := c.PlayDTMF(ctx, ch2.Channel, "5", 0, true); err != nil {
		t.Fatal(err)
	}
	ev := waitEvent(t, sub, "DTMFEnd on ;2", func(m *ami.Message) bool {
		return m.Event() == "DTMFEnd" && m.Get("Uniqueid") == id2 && m.Get("Digit") == "5"
	})
	if ev.Get("Direction") != "Received" {
		t.Errorf("DTMFEnd with Receive: %s", ev)
	}
	// Without Receive the digit is sent out of ;1, so ;2 receives it, with
	// the Duration given.
	if err := c.PlayDTMF(ctx, ch1.Channel, "7", 150*time.Millisecond, false); err != nil {
		t.Fatal(err)
	}
	ev = waitEvent(t, sub, "DTMFEnd 7", func(m *ami.Message) bool {
		return m.Event() == "DTMFEnd" && m.Get("Digit") == "7"
	})
	if ev.Get("Uniqueid") != id2 || ev.Get("Direction") != "Received" || ev.Get("DurationMs") != "150" {
		t.Errorf("DTMFEnd without Receive: %s", ev)
	}
	err = c.PlayDTMF(ctx, "Local/nonexistent-00000000;1", "1", 0, true)
	wantResponseError(t, "PlayDTMF on unknown channel", err, "Channel not found")

	if err := c.Hangup(ctx, ch1.Channel, 16); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, sub, "Hangup of ;1", func(m *ami.Message) bool {
		return m.Event() == "Hangup" && m.Get("Uniqueid") == id1
	})
	err = c.Hangup(ctx, ch1.Channel, 0)
	wantResponseError(t, "Hangup of a gone channel", err, "No such channel")
}

func TestOriginateSync(t *testing.T) {
	c := newClient(t, clientOpts{})
	ctx := testCtx(t)
	// Without Async the reply comes once the channel answered.
	err := c.Originate(ctx, ami.OriginateSpec{Channel: "Local/wait@test-helpers", Context: "test-helpers", Exten: "wait", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("sync Originate: %v", err)
	}
	t.Cleanup(func() { _ = c.Hangup(context.Background(), "/^Local\\/wait@test-helpers-/", 0) })
	err = c.Originate(ctx, ami.OriginateSpec{Channel: "Local/" + uniqDigits(6) + "@nonexistent-context", Application: "Wait", Data: "1"})
	wantResponseError(t, "Originate to nowhere", err, "Originate failed")
}
