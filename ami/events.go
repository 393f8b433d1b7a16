package ami

import (
	"slices"
	"strings"
)

// Names of the synthetic events a [Client] publishes to subscribers. They
// carry the header [HeaderSynthetic] and [Message.Synthetic] reports true.
const (
	// EventConnected: a connection is up and logged in. Actions can be
	// sent; Asterisk may still be booting (wait for EventFullyBooted).
	EventConnected = "Connected"
	// EventDisconnected: the connection ended (header "Reason"). Events
	// were missed; pending calls failed with ErrConnClosed.
	EventDisconnected = "Disconnected"
	// EventResync: this subscriber's buffer overflowed and events were
	// dropped. The subscriber must re-list whatever state it mirrors.
	EventResync = "Resync"
)

// EventFullyBooted is Asterisk's own event telling that it has finished
// booting (class system). It is not synthetic: Asterisk sends it right
// after Login when it is already booted, or later when boot completes.
// Subscribers receive it like any event; the first one of a connection
// also starts Config.OnReady.
const EventFullyBooted = "FullyBooted"

// HeaderSynthetic is the header set to "true" on synthetic events.
const HeaderSynthetic = "Synthetic"

// DefaultSubscriptionBuffer is the buffer used when Subscribe is given 0
// or less.
const DefaultSubscriptionBuffer = 256

func syntheticEvent(name string, kv ...string) *Message {
	m := NewMessage(append([]string{"Event", name, HeaderSynthetic, "true"}, kv...)...)
	m.synthetic = true
	return m
}

// Subscription is a stream of events from a [Client]. See
// [Client.Subscribe].
type Subscription struct {
	c     *Client
	ch    chan *Message
	limit int
	// names, when not empty, are the events the subscription receives besides the synthetic
	// ones (SubscribeTo), compared case-insensitively.
	names []string

	// Guarded by c.subMu.
	resyncQueued bool
	closed       bool
}

// Subscribe returns a new event stream with room for buffer events
// (DefaultSubscriptionBuffer if buffer <= 0). It receives every event
// Asterisk sends on the client's connections, and the synthetic events
// Connected, Disconnected and Resync, from now until Close or until
// Run returns.
//
// A slow subscriber never blocks the client: when its buffer is full, new
// events are dropped for it (counted in presenced_ami_events_dropped_total
// and logged), and a Resync event is queued telling it to re-list. Other
// subscribers are not affected.
func (c *Client) Subscribe(buffer int) *Subscription {
	return c.SubscribeTo(buffer)
}

// SubscribeTo is Subscribe for the events named (compared case-insensitively) and the
// synthetic ones; no names: every event. A subscriber that needs a few kinds of events among
// many, as a watcher does, then holds only those in its buffer: a burst of other events
// (thousands of queue member events in a mass switch) cannot overflow it.
func (c *Client) SubscribeTo(buffer int, events ...string) *Subscription {
	if buffer <= 0 {
		buffer = DefaultSubscriptionBuffer
	}
	// One extra slot is reserved for the Resync event.
	s := &Subscription{c: c, ch: make(chan *Message, buffer+1), limit: buffer, names: slices.Clone(events)}
	c.subMu.Lock()
	defer c.subMu.Unlock()
	if c.subsClosed {
		s.closed = true
		close(s.ch)
		return s
	}
	c.subs[s] = struct{}{}
	return s
}

// Events returns the channel events arrive on. It is closed by Close and
// when Run returns. The messages are shared: do not modify them.
func (s *Subscription) Events() <-chan *Message { return s.ch }

// Close stops the subscription and closes its channel. Events already
// buffered can still be received.
func (s *Subscription) Close() {
	s.c.subMu.Lock()
	defer s.c.subMu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	delete(s.c.subs, s)
	close(s.ch)
}

// deliver queues m for s without blocking. Callers hold c.subMu, so there
// is a single producer and the length checks below cannot race with
// another send.
func (s *Subscription) deliver(m *Message) {
	if len(s.names) > 0 && !m.Synthetic() {
		name := m.Event()
		if !slices.ContainsFunc(s.names, func(n string) bool { return strings.EqualFold(n, name) }) {
			return
		}
	}
	if len(s.ch) < s.limit {
		s.ch <- m
		s.resyncQueued = false
		return
	}
	s.c.met.eventsDropped.Inc()
	if s.resyncQueued {
		// A Resync is still waiting in the buffer; the subscriber will
		// re-list after this drop anyway.
		return
	}
	select {
	case s.ch <- syntheticEvent(EventResync, "Reason", "subscriber buffer full: events were dropped"):
		s.resyncQueued = true
		s.c.log.Warn("AMI subscriber too slow: events dropped, Resync queued", "buffer", s.limit, "event", m.Event())
	default:
		// Cannot happen (one slot is reserved), but never block.
	}
}

// publish delivers m to every subscriber without blocking.
func (c *Client) publish(m *Message) {
	c.subMu.Lock()
	defer c.subMu.Unlock()
	for s := range c.subs {
		s.deliver(m)
	}
}

func (c *Client) closeSubscriptions() {
	c.subMu.Lock()
	defer c.subMu.Unlock()
	c.subsClosed = true
	for s := range c.subs {
		s.closed = true
		close(s.ch)
		delete(c.subs, s)
	}
}

// handleEvent is called by the reader for every event that is not part of
// a reply.
func (c *Client) handleEvent(cn *conn, m *Message) {
	name := m.Event()
	c.met.events.WithLabelValues(name).Inc()
	switch {
	case strings.EqualFold(name, EventFullyBooted):
		if cn.booted.CompareAndSwap(false, true) {
			// Publish first so subscribers see FullyBooted before
			// anything OnReady causes.
			c.publish(m)
			c.fullyBooted(cn)
			return
		}
	case strings.EqualFold(name, "Shutdown"):
		c.shutdown(m)
	}
	c.publish(m)
}
