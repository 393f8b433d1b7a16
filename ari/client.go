package ari

import (
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Client is a long-lived ARI client for one Stasis application. Create it
// with New, start Run in a goroutine, and read Events. All methods are safe
// for concurrent use.
//
// REST methods do not wait for the websocket: they go straight to Asterisk
// and are bounded by their ctx and Config.RequestTimeout.
type Client struct {
	cfg     settings
	log     *slog.Logger
	http    *http.Client
	metrics *metrics

	events     chan Event
	resyncKick chan struct{} // capacity 1: a Resync is pending
	dropped    atomic.Uint64
	running    atomic.Bool

	// subMu serialises device subscription changes with their restoration
	// on connect.
	subMu   sync.Mutex
	devices map[string]struct{} // guarded by subMu

	mu             sync.Mutex
	status         Status
	connectedOnce  bool
	pendingConnect bool // a Resync for a (re)connect is pending
	dropping       bool // in a burst of drops not yet followed by a Resync
	waiters        map[string]*playbackWaiter

	// backoffMin and backoffMax bound the reconnect delay; tests shorten them.
	backoffMin, backoffMax time.Duration
}

// Status is a snapshot of the connection state.
type Status struct {
	// Connected is true while the events websocket is up and the connect
	// steps (orphans, subscriptions) are done.
	Connected bool

	// LastError is the latest connection error, "" if there was none since
	// the last successful connect.
	LastError string

	// Since is when Connected last changed (or when the client was created).
	Since time.Time

	// EventsDropped counts events dropped because Events() was full.
	EventsDropped uint64
}

// New validates cfg and returns a Client. It does not connect; call Run.
// Errors name the offending Config field.
func New(cfg Config) (*Client, error) {
	s, err := cfg.settings()
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(s.Registerer)
	if err != nil {
		return nil, err
	}
	return &Client{
		cfg:        s,
		log:        s.Logger.With("component", "ari", "app", s.appName),
		http:       newHTTPClient(s.RequestTimeout, s.MaxConnections),
		metrics:    m,
		events:     make(chan Event, s.EventBuffer),
		resyncKick: make(chan struct{}, 1),
		devices:    make(map[string]struct{}),
		waiters:    make(map[string]*playbackWaiter),
		status:     Status{Since: time.Now()},
		backoffMin: 250 * time.Millisecond,
		backoffMax: 30 * time.Second,
	}, nil
}

// AppName returns the Stasis application name, Config.App + "-" +
// Config.InstanceID. The dialplan must call Stasis() with this name.
func (c *Client) AppName() string { return c.cfg.appName }

// Status returns the connection state.
func (c *Client) Status() Status {
	c.mu.Lock()
	s := c.status
	c.mu.Unlock()
	s.EventsDropped = c.dropped.Load()
	return s
}

// Events returns the event stream. It is the same channel for the client's
// whole life, available before Run, buffered with Config.EventBuffer
// slots, and closed when Run returns.
//
// The reader of the websocket never blocks on it: when the buffer is full,
// events are dropped, counted in presenced_ari_events_dropped_total and
// Status().EventsDropped, logged, and followed by a *Resync as soon as
// there is room. A *Resync also follows every (re)connect. Events of types
// ari/v6 does not know arrive as *UnknownEvent.
func (c *Client) Events() <-chan Event { return c.events }

// setConnected records a completed connect.
func (c *Client) setConnected() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.status.Connected = true
	c.status.LastError = ""
	c.status.Since = time.Now()
	c.metrics.connected.Set(1)
}

func (c *Client) setError(err error) {
	c.mu.Lock()
	c.status.LastError = err.Error()
	c.mu.Unlock()
}
