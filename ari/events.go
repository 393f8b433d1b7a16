package ari

import (
	"encoding/json"
	"time"

	ariv6 "github.com/CyCoreSystems/ari/v6"
)

// Event is an ARI event: one of the typed events of
// github.com/CyCoreSystems/ari/v6 (e.g. *StasisStart), an *UnknownEvent, or
// the synthetic *Resync. Switch on the concrete type.
type Event = ariv6.Event

// Aliases of the ari/v6 types a consumer of this package usually needs, so
// that it does not have to import a second package named ari.
type (
	// StasisStart is sent when a channel enters the application; Args are
	// the arguments of the dialplan Stasis() call after the app name.
	StasisStart = ariv6.StasisStart
	// StasisEnd is sent when a channel leaves the application.
	StasisEnd = ariv6.StasisEnd
	// ChannelDtmfReceived is sent once per DTMF digit received.
	ChannelDtmfReceived = ariv6.ChannelDtmfReceived
	// ChannelHangupRequest is sent when a hangup is requested on a channel.
	ChannelHangupRequest = ariv6.ChannelHangupRequest
	// ChannelDestroyed is sent when a channel is gone.
	ChannelDestroyed = ariv6.ChannelDestroyed
	// PlaybackStarted is sent when a playback begins.
	PlaybackStarted = ariv6.PlaybackStarted
	// PlaybackFinished is sent when a playback ends (Playback.State "done"
	// or "failed").
	PlaybackFinished = ariv6.PlaybackFinished
	// DeviceStateChanged is sent for devices subscribed with SubscribeDevice.
	DeviceStateChanged = ariv6.DeviceStateChanged
	// ApplicationReplaced is sent when another connection took over the
	// application name; the client then reconnects.
	ApplicationReplaced = ariv6.ApplicationReplaced
	// ChannelData describes a channel.
	ChannelData = ariv6.ChannelData
	// PlaybackData describes a playback.
	PlaybackData = ariv6.PlaybackData
	// ApplicationData describes a Stasis application and its subscriptions.
	ApplicationData = ariv6.ApplicationData
)

// ResyncType is the GetType() of a *Resync event.
const ResyncType = "PresencedResync"

// Resync reasons.
const (
	// ResyncConnected: the client (re)connected. Events that happened while
	// it was not connected were never seen.
	ResyncConnected = "connected"
	// ResyncDropped: events were dropped because the buffer of Events() was
	// full.
	ResyncDropped = "dropped"
)

// Resync is a synthetic event that the client puts into Events() after
// every (re)connect and after it had to drop events because the consumer
// was too slow. It means "you may have missed events: re-read the state you
// care about from Asterisk". It is never dropped itself; while one waits
// for room, further causes are folded into at most one more.
type Resync struct {
	ariv6.EventData

	// Reason is ResyncConnected if a (re)connect happened since the last
	// Resync, else ResyncDropped.
	Reason string

	// DroppedTotal is the number of events dropped since the client was
	// created (the same as Status().EventsDropped).
	DroppedTotal uint64
}

// Keys implements Event; a Resync concerns no entity.
func (*Resync) Keys() ariv6.Keys { return nil }

// UnknownEvent is an event that ari/v6 cannot decode: an event type it does
// not know (Asterisk 22 added e.g. ChannelToneDetected) or a known type
// whose JSON failed to decode. It is passed on rather than dropped.
type UnknownEvent struct {
	ariv6.EventData

	// Raw is the event as received.
	Raw json.RawMessage

	// DecodeError is the decoding error for a known type, else "".
	DecodeError string
}

// Keys implements Event; an UnknownEvent's entities are unknown.
func (*UnknownEvent) Keys() ariv6.Keys { return nil }

// decode turns a websocket message into an Event. It never returns nil:
// what ari/v6 cannot decode becomes an *UnknownEvent.
func decode(data []byte) Event {
	ev, err := ariv6.DecodeEvent(data)
	if err == nil && ev != nil {
		return ev
	}
	u := &UnknownEvent{Raw: json.RawMessage(data)}
	if ev != nil { // known type, bad JSON
		u.DecodeError = err.Error()
	}
	var head struct {
		Type        string `json:"type"`
		Application string `json:"application"`
		AsteriskID  string `json:"asterisk_id"`
	}
	_ = json.Unmarshal(data, &head) // best effort; Type stays "" if it fails
	u.Type = head.Type
	u.Application = head.Application
	u.Node = head.AsteriskID
	if u.Type == "" {
		u.Type = "Invalid"
	}
	return u
}

// deliver hands ev to the consumer without ever blocking the websocket
// reader. If the buffer is full, ev is dropped, counted, logged (once per
// burst) and a Resync is scheduled.
func (c *Client) deliver(ev Event) {
	select {
	case c.events <- ev:
		return
	default:
	}
	total := c.dropped.Add(1)
	c.metrics.dropped.Inc()
	c.mu.Lock()
	first := !c.dropping
	c.dropping = true
	c.mu.Unlock()
	if first {
		c.log.Warn("event buffer full, dropping events until the consumer catches up",
			"type", ev.GetType(), "buffer", cap(c.events), "dropped_total", total)
	}
	c.kickResync()
}

// requestResync schedules a Resync because of a (re)connect.
func (c *Client) requestResync() {
	c.mu.Lock()
	c.pendingConnect = true
	c.mu.Unlock()
	c.kickResync()
}

func (c *Client) kickResync() {
	select {
	case c.resyncKick <- struct{}{}:
	default: // one is pending already; it will carry the latest state
	}
}

// notify delivers Resync events until done is closed. It is the only
// sender that blocks on the events channel, so Resyncs are never dropped;
// a blocked sender is served before later non-blocking sends, so the
// Resync reaches the consumer as soon as it reads again.
func (c *Client) notify(done <-chan struct{}) {
	for {
		select {
		case <-done:
			return
		case <-c.resyncKick:
		}
		c.mu.Lock()
		r := &Resync{Reason: ResyncDropped}
		if c.pendingConnect {
			r.Reason = ResyncConnected
		}
		c.pendingConnect = false
		wasDropping := c.dropping
		c.dropping = false
		c.mu.Unlock()
		r.Type = ResyncType
		r.Application = c.cfg.appName
		r.Timestamp = ariv6.DateTime(time.Now())
		r.DroppedTotal = c.dropped.Load()

		select {
		case c.events <- r:
			if wasDropping {
				c.log.Info("consumer caught up after dropped events; resync sent", "dropped_total", r.DroppedTotal)
			}
		case <-done:
			return
		}
	}
}
