package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/presenced/presenced/presence"
)

// The live updates: every instance's hub subscribes to the state store's change
// announcements (presence.StateStore.Changes), reads the changed user's entry once per view
// (what colleagues may see, and the whole of it for the user and admins) and sends it to every
// browser connected to this instance's /events, rendered as the colleagues page's row.

// clientBuffer is how many updates a slow browser may lag behind; beyond it, it misses some and
// is told to reload.
const clientBuffer = 64

// heartbeat keeps idle event streams (and the proxies between) open.
const heartbeat = 25 * time.Second

// streamRetry is the Retry-After of an event stream refused because Options.MaxStreams are
// open.
const streamRetry = 60 * time.Second

// update is one message of the event stream.
type update struct {
	User presence.UserID `json:"user"`
	HTML string          `json:"html"` // the colleagues page's row
	// Entry is the entry itself, for scripts that want the data.
	Entry presence.PresenceEntry `json:"entry"`
}

type client struct {
	user  presence.UserID // empty: the admin by token
	admin bool
	ch    chan []byte // encoded updates; nil message: reload
}

// hub fans the changes out to the connected browsers.
type hub struct {
	engine *presence.Engine
	log    *slog.Logger
	row    func(e presence.PresenceEntry, me bool) template.HTML // renders one colleagues row

	mu      sync.Mutex
	clients map[*client]struct{}
	// last is everyone's full entry as last read (the view of everyone, viewOf), kept by the
	// change announcements; loaded is when it was last read whole.
	last   map[presence.UserID]presence.PresenceEntry
	read   map[presence.UserID]time.Time // when each entry of last was read
	loaded time.Time
	closed bool
	// refused counts the streams refused since refusedLogged (add).
	refused       int
	refusedLogged time.Time
}

// viewTTL is how long the view of everyone is trusted without being read whole again: the
// change announcements keep it current meanwhile, but one lost (a reconnect to Redis) is
// corrected within it.
const viewTTL = 10 * time.Second

// colleagueView is what colleagues see of a full entry: for a private profile (or one that
// cannot be found), only the presence state with its neutral text (presence.Engine.Everyone).
func colleagueView(full presence.PresenceEntry) presence.PresenceEntry {
	if !full.Private {
		return full
	}
	return presence.PresenceEntry{User: full.User, Name: full.Name, Extension: full.Extension, Since: full.Since,
		Presence: full.Presence, Label: presence.PresenceLabel(full.Presence), OnCall: full.OnCall}
}

// everyone returns every user's entry as the viewer may see it, in configuration order, from
// the view kept in memory; it is read whole from the store when older than viewTTL.
func (hb *hub) everyone(ctx context.Context, now time.Time, opts presence.EveryoneOptions) ([]presence.PresenceEntry, error) {
	hb.mu.Lock()
	fresh := now.Sub(hb.loaded) < viewTTL
	hb.mu.Unlock()
	if !fresh {
		asked := time.Now()
		all, err := hb.engine.Everyone(ctx, presence.EveryoneOptions{Admin: true})
		if err != nil {
			return nil, err
		}
		hb.mu.Lock()
		for _, e := range all {
			if hb.read[e.User].Before(asked) { // not newer from a change meanwhile
				hb.last[e.User], hb.read[e.User] = e, asked
			}
		}
		hb.loaded = now
		hb.mu.Unlock()
	}
	hb.mu.Lock()
	defer hb.mu.Unlock()
	out := make([]presence.PresenceEntry, 0, len(hb.last))
	for _, u := range hb.engine.Catalog().Users {
		e, ok := hb.last[u.ID]
		if !ok {
			continue // unreadable (Everyone leaves it out)
		}
		if !opts.Admin && opts.Viewer != u.ID {
			e = colleagueView(e)
		}
		out = append(out, e)
	}
	return out, nil
}

func newHub(e *presence.Engine, log *slog.Logger) *hub {
	return &hub{engine: e, log: log, clients: map[*client]struct{}{}, last: map[presence.UserID]presence.PresenceEntry{},
		read: map[presence.UserID]time.Time{}}
}

// run sends the changes the channel announces until it closes. An empty id says the
// subscription was (re)established (presence.StateStore.Changes): announcements made while it
// was down are lost, so everyone is read again at once (resync).
func (hb *hub) run(ctx context.Context, changes <-chan presence.UserID) {
	for {
		select {
		case <-ctx.Done():
			return
		case id, ok := <-changes:
			if !ok {
				return
			}
			if id == "" {
				hb.resync(ctx)
				continue
			}
			hb.changed(ctx, id)
		}
	}
}

// audience is how many browsers are connected, and whether a change is needed at all: by them,
// or by the view of everyone kept for the pages.
func (hb *hub) audience() (clients int, needed bool) {
	hb.mu.Lock()
	defer hb.mu.Unlock()
	return len(hb.clients), len(hb.clients) > 0 || !hb.loaded.IsZero()
}

// resync reads everyone's entry again, keeps it in the view and sends every entry that differs
// from the view's to the connected browsers: level-triggered, so that a change whose
// announcement was lost (Redis's pub/sub connection was down) shows at once, not after viewTTL.
func (hb *hub) resync(ctx context.Context) {
	n, needed := hb.audience()
	if !needed {
		return // nobody to tell, no view to keep
	}
	asked := time.Now()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	all, err := hb.engine.Everyone(ctx, presence.EveryoneOptions{Admin: true})
	if err != nil {
		hb.log.Warn("view not read again after the change announcements were resubscribed", "err", err)
		hb.mu.Lock()
		hb.loaded = time.Time{} // the next page reads it whole
		hb.mu.Unlock()
		return
	}
	var changed []presence.PresenceEntry
	hb.mu.Lock()
	for _, e := range all {
		if !hb.read[e.User].Before(asked) {
			continue // newer from an announcement meanwhile
		}
		// An entry the view did not hold is not known to have changed: no page shows it.
		if old, ok := hb.last[e.User]; ok && old != e {
			changed = append(changed, e)
		}
		hb.last[e.User], hb.read[e.User] = e, asked
	}
	hb.mu.Unlock()
	if n > 0 && len(changed) > 0 {
		hb.log.Info("changes missed while the change announcements were unsubscribed, sent", "users", len(changed))
	}
	for _, e := range changed {
		hb.send(e)
	}
}

// changed sends a user's new entry to every client, as each may see it.
func (hb *hub) changed(ctx context.Context, id presence.UserID) {
	n, needed := hb.audience()
	if !needed {
		return // nobody to tell, no view to keep
	}
	asked := time.Now()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	full, err := hb.engine.PresenceOf(ctx, id, presence.EveryoneOptions{Admin: true})
	if err != nil {
		hb.log.Warn("live update not sent", "user", id, "err", err)
		return
	}
	hb.mu.Lock()
	same := hb.last[id] == full
	hb.last[id], hb.read[id] = full, asked
	hb.mu.Unlock()
	if same || n == 0 {
		return // a pass that changed nothing visible
	}
	hb.send(full)
}

// send sends a user's new full entry to every client, as each may see it.
func (hb *hub) send(full presence.PresenceEntry) {
	id := full.User
	colleague := colleagueView(full)
	var fullMsg, colleagueMsg []byte
	encode := func(e presence.PresenceEntry, own bool) []byte {
		b, _ := json.Marshal(update{User: id, HTML: string(hb.row(e, own)), Entry: e})
		return b
	}
	fullMsg, colleagueMsg = encode(full, false), encode(colleague, false)
	ownMsg := encode(full, true)
	hb.mu.Lock()
	defer hb.mu.Unlock()
	for c := range hb.clients {
		msg := colleagueMsg
		switch {
		case c.user == id:
			msg = ownMsg
		case c.admin:
			msg = fullMsg
		}
		select {
		case c.ch <- msg:
		default: // too slow: it will be told to reload when it catches up
			select {
			case <-c.ch:
			default:
			}
			select {
			case c.ch <- nil:
			default:
			}
		}
	}
}

// Why a stream is refused.
var (
	errShuttingDown = errors.New("shutting down")
	errTooMany      = errors.New("too many event streams")
)

// add registers a client: errShuttingDown once closed, errTooMany when limit (> 0) are open.
// Refusals are logged at most once a minute, with their count since.
func (hb *hub) add(c *client, limit int) error {
	hb.mu.Lock()
	defer hb.mu.Unlock()
	if hb.closed {
		return errShuttingDown
	}
	if limit > 0 && len(hb.clients) >= limit {
		if hb.refused++; time.Since(hb.refusedLogged) > time.Minute {
			hb.log.Warn("live update streams refused: http.max_event_streams are open; the pages reload instead",
				"max_event_streams", limit, "refused", hb.refused)
			hb.refused, hb.refusedLogged = 0, time.Now()
		}
		return errTooMany
	}
	hb.clients[c] = struct{}{}
	return nil
}

func (hb *hub) remove(c *client) {
	hb.mu.Lock()
	defer hb.mu.Unlock()
	if _, ok := hb.clients[c]; ok {
		delete(hb.clients, c)
		close(c.ch)
	}
}

// close ends every stream (the server shuts down) and refuses new ones.
func (hb *hub) close() {
	hb.mu.Lock()
	defer hb.mu.Unlock()
	hb.closed = true
	for c := range hb.clients {
		delete(hb.clients, c)
		close(c.ch)
	}
}

// Shutdown ends every event stream, so that the HTTP server's shutdown does not wait for them
// (register it with http.Server.RegisterOnShutdown).
func (h *Handler) Shutdown() { h.hub.close() }

// Clients is how many event streams are open on this instance.
func (h *Handler) Clients() int {
	h.hub.mu.Lock()
	defer h.hub.mu.Unlock()
	return len(h.hub.clients)
}

// events streams the live updates to a signed-in browser (Server-Sent Events): an event
// "presence" per change of anyone's entry, "reload" when the browser fell behind.
func (h *Handler) events(w http.ResponseWriter, r *http.Request, v *viewer) {
	var id presence.UserID
	if v.user != nil {
		id = v.user.ID
	}
	h.Stream(w, r, id, v.admin)
}

// Stream serves the live updates to one client as viewer may see them (viewer empty: the
// admin by token), until the client goes or the server shuts down: the web app's /events, and
// the REST API's GET /api/v1/events for the holder of a token.
func (h *Handler) Stream(w http.ResponseWriter, r *http.Request, viewer presence.UserID, admin bool) {
	rc := http.NewResponseController(w)
	c := &client{user: viewer, admin: admin, ch: make(chan []byte, clientBuffer)}
	switch err := h.hub.add(c, h.opts.MaxStreams); err {
	case nil:
	case errTooMany:
		// The page falls back to reloading what it shows now and then (static/app.js), and
		// tries the stream again later.
		w.Header().Set("Retry-After", strconv.Itoa(int(streamRetry/time.Second)))
		http.Error(w, "too many live update streams open; retry later", http.StatusServiceUnavailable)
		return
	default:
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	defer h.hub.remove(c)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	write := func(s string) bool {
		// The server's write timeout bounds a whole answer: a stream extends it at each write.
		rc.SetWriteDeadline(time.Now().Add(heartbeat + 10*time.Second))
		if _, err := fmt.Fprint(w, s); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !write("retry: 2000\n: connected\n\n") {
		return
	}
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case msg, ok := <-c.ch:
			if !ok {
				return
			}
			if msg == nil {
				if !write("event: reload\ndata: {}\n\n") {
					return
				}
				continue
			}
			if !write("event: presence\ndata: " + string(msg) + "\n\n") {
				return
			}
		case <-tick.C:
			if !write(": keepalive\n\n") {
				return
			}
		}
	}
}
