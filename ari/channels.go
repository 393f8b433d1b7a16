package ari

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
)

// Answer answers a channel that is in our application.
func (c *Client) Answer(ctx context.Context, channelID string) error {
	if err := c.do(ctx, opAnswer, http.MethodPost, "/channels/"+seg(channelID)+"/answer", nil, nil); err != nil {
		return fmt.Errorf("ari: answer %s: %w", channelID, err)
	}
	return nil
}

// Hangup hangs up a channel with cause "normal". A channel that is already
// gone gives a *RequestError with StatusCode 404.
func (c *Client) Hangup(ctx context.Context, channelID string) error {
	q := url.Values{"reason": {"normal"}}
	if err := c.do(ctx, opHangup, http.MethodDelete, "/channels/"+seg(channelID), q, nil); err != nil {
		return fmt.Errorf("ari: hang up %s: %w", channelID, err)
	}
	return nil
}

// ContinueInDialplan makes a channel leave our application and continue at
// the next priority of the dialplan (a StasisEnd follows).
func (c *Client) ContinueInDialplan(ctx context.Context, channelID string) error {
	if err := c.do(ctx, opContinue, http.MethodPost, "/channels/"+seg(channelID)+"/continue", nil, nil); err != nil {
		return fmt.Errorf("ari: continue %s in dialplan: %w", channelID, err)
	}
	return nil
}

// Channel returns a channel's current data.
func (c *Client) Channel(ctx context.Context, channelID string) (ChannelData, error) {
	var ch ChannelData
	if err := c.do(ctx, opGetChannel, http.MethodGet, "/channels/"+seg(channelID), nil, &ch); err != nil {
		return ChannelData{}, fmt.Errorf("ari: get channel %s: %w", channelID, err)
	}
	return ch, nil
}

// Play starts playing media (URIs such as "sound:beep" or
// "sound:digits/1", played in order) on a channel and returns once
// Asterisk accepted it. The caller chooses playbackID, which names the
// playback in PlaybackStarted/PlaybackFinished events and StopPlayback; it
// must be unique among current playbacks. To wait for the end, use
// PlayAndWait or watch Events for *PlaybackFinished.
func (c *Client) Play(ctx context.Context, channelID, playbackID string, media ...string) error {
	if playbackID == "" {
		return fmt.Errorf("ari: play on %s: empty playback id", channelID)
	}
	if len(media) == 0 {
		return fmt.Errorf("ari: play %s on %s: no media", playbackID, channelID)
	}
	q := url.Values{"media": media, "playbackId": {playbackID}}
	if err := c.do(ctx, opPlay, http.MethodPost, "/channels/"+seg(channelID)+"/play", q, nil); err != nil {
		return fmt.Errorf("ari: play %s on %s: %w", playbackID, channelID, err)
	}
	return nil
}

// playbackWaiter is a PlayAndWait call waiting for its PlaybackFinished.
type playbackWaiter struct {
	channelID string
	done      chan error // capacity 1, sent to once
}

// PlayAndWait is Play followed by waiting for the playback's
// PlaybackFinished event (which is also delivered to Events). It returns
// an error if the playback finished in a state other than "done", if the
// channel left the application first, if the connection was lost
// (ErrConnectionLost) or if ctx ended; it needs a connection
// (ErrNotConnected). Stop the playback early with StopPlayback.
func (c *Client) PlayAndWait(ctx context.Context, channelID, playbackID string, media ...string) error {
	w := &playbackWaiter{channelID: channelID, done: make(chan error, 1)}
	c.mu.Lock()
	switch {
	case !c.status.Connected:
		c.mu.Unlock()
		return fmt.Errorf("ari: play %s on %s: %w", playbackID, channelID, ErrNotConnected)
	case c.waiters[playbackID] != nil:
		c.mu.Unlock()
		return fmt.Errorf("ari: play %s on %s: playback id already waited for", playbackID, channelID)
	}
	c.waiters[playbackID] = w
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		if c.waiters[playbackID] == w {
			delete(c.waiters, playbackID)
		}
		c.mu.Unlock()
	}()

	if err := c.Play(ctx, channelID, playbackID, media...); err != nil {
		return err
	}
	select {
	case err := <-w.done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("ari: wait for playback %s on %s: %w", playbackID, channelID, ctx.Err())
	}
}

// finishPlayback releases the waiter of a finished playback.
func (c *Client) finishPlayback(p PlaybackData) {
	c.mu.Lock()
	w := c.waiters[p.ID]
	delete(c.waiters, p.ID)
	c.mu.Unlock()
	if w == nil {
		return
	}
	if p.State != "done" {
		w.done <- fmt.Errorf("ari: playback %s on %s finished in state %q", p.ID, w.channelID, p.State)
		return
	}
	w.done <- nil
}

// errLeftApp is returned to waiters whose channel left the application.
var errLeftApp = errors.New("channel left the application")

// failPlaybacks releases the waiters of playbacks on a channel that left
// the application.
func (c *Client) failPlaybacks(channelID string) {
	c.mu.Lock()
	var ws []*playbackWaiter
	var ids []string
	for id, w := range c.waiters {
		if w.channelID == channelID {
			ws = append(ws, w)
			ids = append(ids, id)
			delete(c.waiters, id)
		}
	}
	c.mu.Unlock()
	for i, w := range ws {
		w.done <- fmt.Errorf("ari: wait for playback %s on %s: %w", ids[i], channelID, errLeftApp)
	}
}

// StopPlayback stops a playback; its PlaybackFinished follows.
func (c *Client) StopPlayback(ctx context.Context, playbackID string) error {
	if err := c.do(ctx, opStopPlayback, http.MethodDelete, "/playbacks/"+seg(playbackID), nil, nil); err != nil {
		return fmt.Errorf("ari: stop playback %s: %w", playbackID, err)
	}
	return nil
}

// GetChannelVar reads a channel variable or dialplan function, e.g.
// "CALLERID(num)". A variable that is not set gives a *RequestError with
// StatusCode 404.
func (c *Client) GetChannelVar(ctx context.Context, channelID, name string) (string, error) {
	var v struct {
		Value string `json:"value"`
	}
	q := url.Values{"variable": {name}}
	if err := c.do(ctx, opGetChannelVar, http.MethodGet, "/channels/"+seg(channelID)+"/variable", q, &v); err != nil {
		return "", fmt.Errorf("ari: get variable %s of %s: %w", name, channelID, err)
	}
	return v.Value, nil
}

// SetChannelVar sets a channel variable or writes a dialplan function.
func (c *Client) SetChannelVar(ctx context.Context, channelID, name, value string) error {
	q := url.Values{"variable": {name}, "value": {value}}
	if err := c.do(ctx, opSetChannelVar, http.MethodPost, "/channels/"+seg(channelID)+"/variable", q, nil); err != nil {
		return fmt.Errorf("ari: set variable %s of %s: %w", name, channelID, err)
	}
	return nil
}
