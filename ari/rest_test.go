package ari

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestRESTCallHonoursRequestTimeout(t *testing.T) {
	f := newFakeARI(t)
	f.hang = true
	cfg := testConfig(t, f.URL())
	cfg.RequestTimeout = 200 * time.Millisecond
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	err = c.Answer(context.Background(), "chan-1")
	elapsed := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Answer against a hanging server: %v, want context.DeadlineExceeded", err)
	}
	if elapsed > time.Second {
		t.Errorf("Answer took %v, want about RequestTimeout (200ms)", elapsed)
	}

	// The caller's ctx bounds the call too, when it is shorter.
	cfg.RequestTimeout = time.Minute
	c2, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start = time.Now()
	if err := c2.Hangup(ctx, "chan-1"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Hangup with a 100ms ctx: %v, want context.DeadlineExceeded", err)
	}
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("Hangup took %v with a 100ms ctx", elapsed)
	}
}

func TestRunAgainstHungServerKeepsTrying(t *testing.T) {
	f := newFakeARI(t)
	f.hang = true
	cfg := testConfig(t, f.URL())
	cfg.RequestTimeout = 100 * time.Millisecond
	h := start(t, cfg)

	eventually(t, 3*time.Second, func() bool { return f.count("GET /ari/asterisk/ping") >= 2 }, "two connect attempts")
	st := h.Status()
	if st.Connected || st.LastError == "" {
		t.Errorf("Status() = %+v, want not connected with an error", st)
	}
	h.stop() // must return promptly although requests hang
}

func TestChannelOperations(t *testing.T) {
	f := newFakeARI(t)
	h := start(t, testConfig(t, f.URL()))
	ctx := context.Background()
	eventually(t, 3*time.Second, func() bool { return h.Status().Connected }, "connect")

	if err := h.Answer(ctx, "1700000000.1"); err != nil {
		t.Errorf("Answer: %v", err)
	}
	if err := h.ContinueInDialplan(ctx, "1700000000.1"); err != nil {
		t.Errorf("ContinueInDialplan: %v", err)
	}
	if err := h.SetChannelVar(ctx, "1700000000.1", "CALLERID(num)", "10 01&x"); err != nil {
		t.Errorf("SetChannelVar: %v", err)
	}
	v, err := h.GetChannelVar(ctx, "1700000000.1", "CALLERID(num)")
	if err != nil || v != "v:CALLERID(num)" {
		t.Errorf("GetChannelVar = %q, %v", v, err)
	}
	if err := h.Play(ctx, "1700000000.1", "pb-1", "sound:beep", "sound:digits/1"); err != nil {
		t.Errorf("Play: %v", err)
	}
	if err := h.Play(ctx, "1700000000.1", "", "sound:beep"); err == nil {
		t.Errorf("Play without playback id succeeded")
	}

	// Hanging up a channel that is gone: a *RequestError with the status.
	err = h.Hangup(ctx, "no-such")
	var re *RequestError
	if !errors.As(err, &re) || re.StatusCode != 404 || re.Message != "Channel not found" {
		t.Errorf("Hangup(no-such) = %v, want a 404 *RequestError", err)
	}

	want := []string{
		"POST /ari/channels/1700000000.1/answer?",
		"POST /ari/channels/1700000000.1/continue?",
		"POST /ari/channels/1700000000.1/variable?value=10+01%26x&variable=CALLERID%28num%29",
		"GET /ari/channels/1700000000.1/variable?variable=CALLERID%28num%29",
		"POST /ari/channels/1700000000.1/play?media=sound%3Abeep&media=sound%3Adigits%2F1&playbackId=pb-1",
		"DELETE /ari/channels/no-such?reason=normal",
	}
	for _, w := range want {
		if f.count(w) != 1 {
			f.mu.Lock()
			t.Errorf("request %q not made once; requests:\n%v", w, f.requests)
			f.mu.Unlock()
		}
	}
}

func TestPlayAndWait(t *testing.T) {
	f := newFakeARI(t)
	h := start(t, testConfig(t, f.URL()))
	ctx := context.Background()
	eventually(t, 3*time.Second, func() bool { return h.Status().Connected }, "connect")

	if err := h.PlayAndWait(ctx, "c1", "pb-ok", "sound:beep"); err != nil {
		t.Errorf("PlayAndWait: %v", err)
	}
	// The consumer sees the PlaybackFinished too.
	waitEvent(t, h.Client, 2*time.Second, func(ev Event) bool {
		pf, ok := ev.(*PlaybackFinished)
		return ok && pf.Playback.ID == "pb-ok"
	})

	f.mu.Lock()
	f.finishPlay = "failed"
	f.mu.Unlock()
	if err := h.PlayAndWait(ctx, "c1", "pb-bad", "sound:nosuch"); err == nil {
		t.Errorf("PlayAndWait of a failed playback succeeded")
	}

	// No PlaybackFinished ever: the connection drops → ErrConnectionLost.
	f.mu.Lock()
	f.finishPlay = ""
	f.mu.Unlock()
	errc := make(chan error, 1)
	go func() { errc <- h.PlayAndWait(ctx, "c1", "pb-lost", "sound:beep") }()
	eventually(t, 2*time.Second, func() bool { return f.count("POST /ari/channels/c1/play?media=sound%3Abeep&playbackId=pb-lost") == 1 }, "play request")
	f.dropAll()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrConnectionLost) {
			t.Errorf("PlayAndWait across a disconnect = %v, want ErrConnectionLost", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatalf("PlayAndWait did not return after the disconnect")
	}

	// A StasisEnd for the channel ends the wait as well.
	eventually(t, 3*time.Second, func() bool { return h.Status().Connected }, "reconnect")
	go func() { errc <- h.PlayAndWait(ctx, "c2", "pb-end", "sound:beep") }()
	eventually(t, 2*time.Second, func() bool { return f.count("POST /ari/channels/c2/play") == 1 }, "play request")
	f.send(map[string]any{"type": "StasisEnd", "application": h.AppName(), "channel": map[string]any{"id": "c2"}})
	select {
	case err := <-errc:
		if !errors.Is(err, errLeftApp) {
			t.Errorf("PlayAndWait after StasisEnd = %v, want errLeftApp", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatalf("PlayAndWait did not return after StasisEnd")
	}
	h.stop()
	if err := h.PlayAndWait(ctx, "c1", "pb-down", "sound:beep"); !errors.Is(err, ErrNotConnected) {
		t.Errorf("PlayAndWait while stopped = %v, want ErrNotConnected", err)
	}
}
