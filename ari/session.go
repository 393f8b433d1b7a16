package ari

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"

	ariv6 "github.com/CyCoreSystems/ari/v6"
	"golang.org/x/net/websocket"
)

// stableAfter is how long a connection must have lasted for the reconnect
// backoff to start again from its minimum.
const stableAfter = 10 * time.Second

// ErrNotConnected is returned by calls that need the event stream while the
// events websocket is down.
var ErrNotConnected = errors.New("ari: not connected")

// ErrConnectionLost is returned to waiters whose events can no longer
// arrive because the events websocket went down.
var ErrConnectionLost = errors.New("ari: connection lost")

// errReplaced ends a connection whose application name was taken over.
var errReplaced = errors.New("ari: application replaced by another websocket connection (is another instance using the same InstanceID?)")

// Run connects to Asterisk and supervises the connection until ctx is done,
// then returns nil. It never gives up: while Asterisk is down or refuses us,
// it retries with exponential backoff and jitter (250ms up to 30s) and
// reports the reason in Status().LastError.
//
// On every successful (re)connect, before Status().Connected turns true, it
//   - checks that events reach the websocket (a user event round trip);
//   - hangs up channels left in the application (GET /applications/{app}
//     channel_ids) whose StasisStart this connection has not seen: they
//     were orphaned by a crash, restart or lost connection;
//   - restores the device subscriptions made with SubscribeDevice;
//
// then it queues a *Resync event and calls Config.OnReconnect. A
// connection ends when the websocket fails, when two liveness probes in a
// row fail (see Config.PingInterval), or on ApplicationReplaced (another
// websocket took our application name; the next attempt then waits the
// longest backoff).
//
// Run may be called once; it closes the Events channel when it returns.
func (c *Client) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("ari: Run called more than once")
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.notify(done)
	}()
	defer func() {
		close(done)
		wg.Wait()
		c.http.CloseIdleConnections()
		close(c.events)
	}()

	b := backoff{min: c.backoffMin, max: c.backoffMax}
	var lastErr string
	for {
		up, err := c.session(ctx)
		if ctx.Err() != nil {
			c.log.Info("stopped")
			return nil
		}
		if up >= stableAfter {
			b.reset()
		}
		c.setError(err)
		delay := b.next()
		if errors.Is(err, errReplaced) {
			// Another websocket uses our name: taking it back at once
			// would make the two flap (and hang up each other's calls
			// as orphans), so wait as long as the backoff allows.
			delay = b.max
		}
		switch msg := err.Error(); {
		case up > 0:
			c.log.Warn("ARI connection lost; reconnecting", "err", err, "retry_in", delay)
			lastErr = ""
		case msg != lastErr: // a repeated failure is logged only when it changes
			c.log.Warn("ARI connect failed; retrying", "err", err, "retry_in", delay)
			lastErr = msg
		default:
			c.log.Debug("ARI connect failed; retrying", "err", err, "retry_in", delay)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			c.log.Info("stopped")
			return nil
		case <-t.C:
		}
	}
}

// session is one events websocket connection.
type session struct {
	ws       *websocket.Conn
	readDone chan struct{} // closed when the reader returned
	readErr  error         // why; written before readDone is closed

	// probePrefix starts the names of this connection's probe user events.
	probePrefix string

	mu       sync.Mutex
	tracking bool                // record StasisStart channel ids in seen
	seen     map[string]struct{} // StasisStart seen on this connection
	probes   int                 // probes sent so far; numbers their names
	awaited  string              // name of the probe being waited for
	arrived  chan struct{}       // closed when it arrives
}

func (s *session) markSeen(id string) {
	s.mu.Lock()
	if s.tracking {
		s.seen[id] = struct{}{}
	}
	s.mu.Unlock()
}

// unseen returns the ids whose StasisStart this connection has not seen.
func (s *session) unseen(ids []string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, id := range ids {
		if _, ok := s.seen[id]; !ok {
			out = append(out, id)
		}
	}
	return out
}

func (s *session) stopTracking() {
	s.mu.Lock()
	s.tracking = false
	s.seen = nil
	s.mu.Unlock()
}

// isProbe reports whether name is one of this connection's probe events
// (they are not passed on) and releases the waiter of the awaited one.
func (s *session) isProbe(name string) bool {
	if !strings.HasPrefix(name, s.probePrefix) {
		return false
	}
	s.mu.Lock()
	if name == s.awaited && s.arrived != nil {
		close(s.arrived)
		s.arrived = nil
	}
	s.mu.Unlock()
	return true
}

// session runs one connection: it returns how long it was connected (0 if
// the connect steps did not complete) and why it ended.
func (c *Client) session(ctx context.Context) (up time.Duration, err error) {
	// The ping is bounded and tells "Asterisk down" and "bad credentials"
	// apart more clearly than a failed websocket handshake does.
	if err := c.Ping(ctx); err != nil {
		return 0, err
	}
	ws, err := c.dial(ctx)
	if err != nil {
		return 0, fmt.Errorf("ari: connect events websocket: %w", err)
	}

	s := &session{
		ws:          ws,
		readDone:    make(chan struct{}),
		probePrefix: "presenced-probe-" + randomID() + "-",
		tracking:    true,
		seen:        make(map[string]struct{}),
	}
	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		s.readErr = c.read(s)
		close(s.readDone)
		cancel()
	}()
	go func() {
		defer wg.Done()
		<-sctx.Done()
		// Close writes a close frame; never let a dead peer block it.
		_ = ws.SetWriteDeadline(time.Now().Add(time.Second))
		_ = ws.Close()
	}()
	connected := false
	defer func() {
		cancel()
		wg.Wait()
		if ctx.Err() != nil {
			err = nil // shutting down: not a connection error
		}
		c.endSession(connected, err)
	}()

	if err := c.setup(sctx, s); err != nil {
		select {
		case <-s.readDone:
			return 0, s.readErr // the cause, not its symptom
		default:
			return 0, err
		}
	}
	connected = true
	start := time.Now()

	c.mu.Lock()
	again := c.connectedOnce
	c.connectedOnce = true
	c.mu.Unlock()
	if again {
		c.metrics.reconnects.Inc()
		c.log.Info("reconnected")
	} else {
		c.log.Info("connected")
	}
	c.requestResync()
	if c.cfg.OnReconnect != nil {
		c.cfg.OnReconnect(sctx)
	}

	err = c.supervise(sctx, s)
	return time.Since(start), err
}

// dial opens the events websocket within Config.RequestTimeout.
func (c *Client) dial(ctx context.Context) (*websocket.Conn, error) {
	wc, err := websocket.NewConfig(c.cfg.wsURL, c.cfg.origin)
	if err != nil {
		return nil, err
	}
	auth := base64.StdEncoding.EncodeToString([]byte(c.cfg.Username + ":" + c.cfg.Password))
	wc.Header.Set("Authorization", "Basic "+auth)
	wc.Dialer = &net.Dialer{Timeout: c.cfg.RequestTimeout, KeepAlive: 15 * time.Second}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	return wc.DialContext(ctx)
}

// setup runs the connect steps: orphans, then subscriptions, then
// Connected. The reader is already running, so no event is missed.
func (c *Client) setup(ctx context.Context, s *session) error {
	app, err := c.registeredApplication(ctx, s)
	if err != nil {
		return err
	}
	// The probe proves that the application is active and its events reach
	// this websocket, and it orders: a channel listed by the GET above
	// either entered before this connection existed (an orphan) or had
	// its StasisStart written to the websocket before it was listed, so
	// before the probe, which is sent after the GET.
	if err := c.probe(ctx, s); err != nil {
		return err
	}
	c.cleanOrphans(ctx, s.unseen(app.ChannelIDs))
	s.stopTracking()

	c.subMu.Lock()
	defer c.subMu.Unlock()
	have := make(map[string]bool, len(app.DeviceNames))
	for _, d := range app.DeviceNames {
		have[strings.TrimPrefix(d, "deviceState:")] = true
	}
	for d := range c.devices {
		if have[d] {
			continue
		}
		err := c.subscribe(ctx, d)
		var re *RequestError
		switch {
		case err == nil:
			c.log.Debug("restored device subscription", "device", d)
		case errors.As(err, &re) && re.StatusCode < 500:
			// Refused, not failed: don't let one bad name keep us offline.
			c.log.Error("device subscription refused by Asterisk", "device", d, "err", err)
		default:
			return err
		}
	}
	c.setConnected()
	return nil
}

// registeredApplication returns our application once Asterisk lists it.
// Asterisk versions that register the application only after answering
// the websocket handshake may still say 404 right after we connected
// (22.10 registers it before answering).
func (c *Client) registeredApplication(ctx context.Context, s *session) (ApplicationData, error) {
	deadline := time.Now().Add(c.cfg.RequestTimeout)
	for {
		app, err := c.Application(ctx)
		var re *RequestError
		if err == nil || !errors.As(err, &re) || re.StatusCode != 404 || time.Now().After(deadline) {
			return app, err
		}
		c.log.Debug("application not registered yet; asking again", "err", err)
		t := time.NewTimer(20 * time.Millisecond)
		select {
		case <-t.C:
		case <-s.readDone:
			t.Stop()
			return app, s.readErr
		case <-ctx.Done():
			t.Stop()
			return app, ctx.Err()
		}
	}
}

// cleanOrphans hangs up channels left in the application by an earlier
// connection: after a crash, a restart or a lost connection nobody handles
// them any more (their events were lost), so the callers hear a hangup and
// can dial again.
func (c *Client) cleanOrphans(ctx context.Context, orphans []string) {
	if len(orphans) == 0 {
		return
	}
	c.log.Warn("hanging up channels orphaned in the application", "channels", orphans)
	for _, id := range orphans {
		err := c.Hangup(ctx, id)
		var re *RequestError
		switch {
		case err == nil:
			c.metrics.orphans.Inc()
			c.log.Info("hung up orphaned channel", "channel", id)
		case errors.As(err, &re) && re.StatusCode == 404:
			c.log.Debug("orphaned channel already gone", "channel", id)
		default:
			c.log.Error("hang up orphaned channel", "channel", id, "err", err)
		}
	}
}

// probe sends a user event to our application and waits for it to come
// back over the websocket: it proves end to end that Asterisk answers,
// that the application is active, and that its events reach us.
//
// The event is sent again (same name) until it arrives or
// Config.RequestTimeout passes, in case Asterisk dropped it because the
// application was not active yet.
func (c *Client) probe(ctx context.Context, s *session) error {
	ch := make(chan struct{})
	s.mu.Lock()
	s.probes++
	name := fmt.Sprintf("%s%d", s.probePrefix, s.probes)
	s.awaited, s.arrived = name, ch
	s.mu.Unlock()

	deadline := time.NewTimer(c.cfg.RequestTimeout)
	defer deadline.Stop()
	for wait := 50 * time.Millisecond; ; wait *= 2 {
		if err := c.userEvent(ctx, name); err != nil {
			return err
		}
		resend := time.NewTimer(wait)
		select {
		case <-ch:
			resend.Stop()
			return nil
		case <-resend.C:
			c.log.Debug("probe event not back yet; sending it again", "probe", name, "after", wait)
		case <-s.readDone:
			resend.Stop()
			return s.readErr
		case <-deadline.C:
			resend.Stop()
			return fmt.Errorf("ari: no events: probe event %s did not come back over the websocket within %v (application %s inactive?)",
				name, c.cfg.RequestTimeout, c.cfg.appName)
		case <-ctx.Done():
			resend.Stop()
			return ctx.Err()
		}
	}
}

// supervise probes the connection every Config.PingInterval until it
// ends. Two failed probes in a row end it: a websocket that is open but
// receives nothing (Asterisk deactivated the application, e.g. when an
// older connection of the same name was torn down late, or handed it to
// another connection) is as dead as a closed one.
func (c *Client) supervise(ctx context.Context, s *session) error {
	t := time.NewTicker(c.cfg.PingInterval)
	defer t.Stop()
	failures := 0
	for {
		select {
		case <-s.readDone:
			return s.readErr
		case <-ctx.Done():
			select {
			case <-s.readDone: // the reader cancels ctx when it ends
				return s.readErr
			default:
				return ctx.Err()
			}
		case <-t.C:
			err := c.probe(ctx, s)
			if err == nil {
				failures = 0
				continue
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			failures++
			c.log.Warn("liveness probe failed", "err", err, "failures", failures)
			if failures >= 2 {
				return fmt.Errorf("ari: liveness probe failed %d times in a row: %w", failures, err)
			}
		}
	}
}

// read reads events until the websocket fails.
//
// golang.org/x/net/websocket reads one frame per message; Asterisk sends
// every event as a single frame.
func (c *Client) read(s *session) error {
	for {
		var data []byte
		if err := websocket.Message.Receive(s.ws, &data); err != nil {
			return fmt.Errorf("ari: read events websocket: %w", err)
		}
		ev := decode(data)
		switch e := ev.(type) {
		case *ariv6.StasisStart:
			s.markSeen(e.Channel.ID)
		case *ariv6.StasisEnd:
			c.failPlaybacks(e.Channel.ID)
		case *ariv6.PlaybackFinished:
			c.finishPlayback(e.Playback)
		case *ariv6.ChannelUserevent:
			if s.isProbe(e.Eventname) {
				continue // ours, not the consumer's
			}
		case *UnknownEvent:
			if e.DecodeError != "" {
				c.log.Error("cannot decode event; passing it on as UnknownEvent", "type", e.Type, "err", e.DecodeError)
			} else {
				c.log.Debug("event type unknown to ari/v6; passing it on as UnknownEvent", "type", e.Type)
			}
		}
		c.metrics.events.WithLabelValues(ev.GetType()).Inc()
		c.deliver(ev)
		if _, ok := ev.(*ariv6.ApplicationReplaced); ok {
			c.log.Error("application replaced by another websocket connection")
			return errReplaced
		}
	}
}

// endSession records that a connection ended because of err (nil on
// shutdown): Connected, LastError and the playback waiters change together.
func (c *Client) endSession(wasConnected bool, err error) {
	// Pooled REST connections to a peer that dropped us are likely dead
	// too (after an Asterisk restart they fail with "server closed idle
	// connection"); start the next connection with fresh ones.
	c.http.CloseIdleConnections()
	c.mu.Lock()
	if wasConnected {
		c.status.Connected = false
		c.status.Since = time.Now()
		c.metrics.connected.Set(0)
	}
	if err != nil {
		c.status.LastError = err.Error()
	}
	waiters := c.waiters
	c.waiters = make(map[string]*playbackWaiter)
	c.mu.Unlock()
	for id, w := range waiters {
		w.done <- fmt.Errorf("ari: wait for playback %s: %w", id, ErrConnectionLost)
	}
}

// backoff is an exponential backoff with "equal jitter": each delay is
// uniformly random in [d/2, d], d doubling from min up to max.
type backoff struct {
	min, max, cur time.Duration
}

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	half := b.cur / 2
	return half + rand.N(half+1)
}

func (b *backoff) reset() { b.cur = 0 }
