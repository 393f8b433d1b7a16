package ari

import (
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	ariv6 "github.com/CyCoreSystems/ari/v6"
	"golang.org/x/net/websocket"
)

const (
	fakeUser = "presenced"
	fakePass = "s3cret"
)

// fakeARI is a small in-process stand-in for Asterisk's ARI: the REST
// calls this package makes and the events websocket. It keeps Asterisk's
// ordering rule that a channel's StasisStart is written to the websocket
// before the channel shows up in GET /applications/{app}.
type fakeARI struct {
	t   *testing.T
	srv *httptest.Server

	mu         sync.Mutex
	conns      map[*websocket.Conn]bool
	dials      int
	channels   map[string]bool // live channels in the app, listed in channel_ids
	gone       []string        // listed in channel_ids, but DELETE gives 404
	fresh      []string        // StasisStart is sent just before the next GET lists them
	devices    map[string]bool // device subscriptions of the app
	hangups    []string
	requests   []string // "METHOD /path?query"
	hang       bool     // REST requests block until the client gives up
	pingStatus int      // 0 means 200
	finishPlay string   // PlaybackFinished state sent after play; "" sends none
	// lostUserEvents is how many user events to accept but not deliver,
	// as Asterisk does while it has not yet activated the application
	// of a websocket that just connected.
	lostUserEvents int
}

func newFakeARI(t *testing.T) *fakeARI {
	f := &fakeARI{
		t:          t,
		conns:      make(map[*websocket.Conn]bool),
		channels:   make(map[string]bool),
		devices:    make(map[string]bool),
		finishPlay: "done",
	}
	f.srv = httptest.NewServer(f.handler())
	t.Cleanup(f.close)
	return f
}

// newFakeARIOn is newFakeARI on a given listener.
func newFakeARIOn(t *testing.T, l net.Listener) *fakeARI {
	f := &fakeARI{
		t:          t,
		conns:      make(map[*websocket.Conn]bool),
		channels:   make(map[string]bool),
		devices:    make(map[string]bool),
		finishPlay: "done",
	}
	f.srv = httptest.NewUnstartedServer(f.handler())
	f.srv.Listener.Close()
	f.srv.Listener = l
	f.srv.Start()
	t.Cleanup(f.close)
	return f
}

func (f *fakeARI) close() {
	f.dropAll()
	f.srv.Close()
}

func (f *fakeARI) URL() string { return f.srv.URL + "/ari" }

func (f *fakeARI) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/ari/events", websocket.Server{
		Handshake: func(cfg *websocket.Config, r *http.Request) error {
			if u, p, ok := r.BasicAuth(); !ok || u != fakeUser || p != fakePass {
				return fmt.Errorf("unauthorized")
			}
			if r.URL.Query().Get("app") == "" {
				return fmt.Errorf("no app")
			}
			return nil
		},
		Handler: f.serveWS,
	})
	mux.HandleFunc("/ari/", f.serveREST)
	return mux
}

func (f *fakeARI) serveWS(ws *websocket.Conn) {
	f.mu.Lock()
	f.conns[ws] = true
	f.dials++
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.conns, ws)
		f.mu.Unlock()
	}()
	for {
		var msg string
		if err := websocket.Message.Receive(ws, &msg); err != nil {
			return
		}
	}
}

// send writes an event to every connected websocket.
func (f *fakeARI) send(ev map[string]any) {
	if _, ok := ev["timestamp"]; !ok {
		ev["timestamp"] = time.Now().Format(ariv6.DateFormat)
	}
	b, err := json.Marshal(ev)
	if err != nil {
		f.t.Errorf("fake: marshal: %v", err)
		return
	}
	f.mu.Lock()
	conns := make([]*websocket.Conn, 0, len(f.conns))
	for ws := range f.conns {
		conns = append(conns, ws)
	}
	f.mu.Unlock()
	for _, ws := range conns {
		_ = websocket.Message.Send(ws, string(b))
	}
}

// dropAll closes every websocket, as when the connection breaks.
func (f *fakeARI) dropAll() {
	f.mu.Lock()
	conns := make([]*websocket.Conn, 0, len(f.conns))
	for ws := range f.conns {
		conns = append(conns, ws)
	}
	f.mu.Unlock()
	for _, ws := range conns {
		ws.Close()
	}
}

// restart simulates an Asterisk restart: connections drop and application
// subscriptions are forgotten.
func (f *fakeARI) restart() {
	f.mu.Lock()
	f.devices = make(map[string]bool)
	f.mu.Unlock()
	f.dropAll()
}

func (f *fakeARI) connected() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.conns)
}

func (f *fakeARI) count(prefix string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, r := range f.requests {
		if strings.HasPrefix(r, prefix) {
			n++
		}
	}
	return n
}

func (f *fakeARI) hasDevice(d string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.devices[d]
}

func (f *fakeARI) hungUp() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.hangups)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (f *fakeARI) serveREST(w http.ResponseWriter, r *http.Request) {
	if u, p, ok := r.BasicAuth(); !ok || u != fakeUser || p != fakePass {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"message": "Authentication required"})
		return
	}
	f.mu.Lock()
	f.requests = append(f.requests, r.Method+" "+r.URL.EscapedPath()+"?"+r.URL.RawQuery)
	hang, pingStatus := f.hang, f.pingStatus
	f.mu.Unlock()
	if hang {
		<-r.Context().Done()
		return
	}

	path := strings.TrimPrefix(r.URL.Path, "/ari")
	parts := strings.Split(strings.Trim(path, "/"), "/")
	q := r.URL.Query()
	switch {
	case path == "/asterisk/ping":
		if pingStatus != 0 {
			writeJSON(w, pingStatus, map[string]string{"message": "sick"})
			return
		}
		writeJSON(w, 200, map[string]string{"ping": "pong", "asterisk_id": "fake"})

	case len(parts) == 2 && parts[0] == "applications" && r.Method == http.MethodGet:
		f.getApplication(w, parts[1])

	case len(parts) == 3 && parts[0] == "applications" && parts[2] == "subscription":
		dev, ok := strings.CutPrefix(q.Get("eventSource"), "deviceState:")
		if !ok || strings.HasPrefix(dev, "Bad:") {
			writeJSON(w, 400, map[string]string{"message": "bad event source"})
			return
		}
		f.mu.Lock()
		if r.Method == http.MethodPost {
			f.devices[dev] = true
		} else {
			delete(f.devices, dev)
		}
		f.mu.Unlock()
		f.getApplication(w, parts[1])

	case len(parts) == 2 && parts[0] == "channels" && r.Method == http.MethodDelete:
		f.mu.Lock()
		live := f.channels[parts[1]]
		if live {
			delete(f.channels, parts[1])
			f.hangups = append(f.hangups, parts[1])
		}
		f.gone = slices.DeleteFunc(f.gone, func(s string) bool { return s == parts[1] })
		f.mu.Unlock()
		if !live {
			writeJSON(w, 404, map[string]string{"message": "Channel not found"})
			return
		}
		w.WriteHeader(http.StatusNoContent)

	case len(parts) == 3 && parts[0] == "channels" && (parts[2] == "answer" || parts[2] == "continue"):
		w.WriteHeader(http.StatusNoContent)

	case len(parts) == 3 && parts[0] == "channels" && parts[2] == "play":
		id := q.Get("playbackId")
		pb := map[string]any{"id": id, "media_uri": q["media"][0], "state": "queued", "target_uri": "channel:" + parts[1]}
		writeJSON(w, 201, pb)
		f.mu.Lock()
		state := f.finishPlay
		f.mu.Unlock()
		if state != "" {
			go func() {
				time.Sleep(20 * time.Millisecond)
				f.send(map[string]any{"type": "PlaybackStarted", "playback": pb})
				fin := map[string]any{"id": id, "media_uri": q["media"][0], "state": state, "target_uri": "channel:" + parts[1]}
				f.send(map[string]any{"type": "PlaybackFinished", "playback": fin})
			}()
		}

	case len(parts) == 3 && parts[0] == "channels" && parts[2] == "variable":
		if r.Method == http.MethodGet {
			writeJSON(w, 200, map[string]string{"value": "v:" + q.Get("variable")})
			return
		}
		w.WriteHeader(http.StatusNoContent)

	case len(parts) == 3 && parts[0] == "events" && parts[1] == "user":
		app := q.Get("application")
		if f.connected() == 0 {
			writeJSON(w, 404, map[string]string{"message": "Application not found"})
			return
		}
		w.WriteHeader(http.StatusNoContent)
		f.mu.Lock()
		lose := f.lostUserEvents > 0
		if lose {
			f.lostUserEvents--
		}
		f.mu.Unlock()
		if lose {
			return
		}
		f.send(map[string]any{"type": "ChannelUserevent", "application": app, "eventname": parts[2], "userevent": map[string]any{}})

	default:
		writeJSON(w, 404, map[string]string{"message": "Resource not found"})
	}
}

// getApplication answers GET /applications/{app}. Channels in fresh get
// their StasisStart first, as in Asterisk.
func (f *fakeARI) getApplication(w http.ResponseWriter, app string) {
	if f.connected() == 0 { // registered only once the websocket is up
		writeJSON(w, 404, map[string]string{"message": "Application not found"})
		return
	}
	f.mu.Lock()
	fresh := f.fresh
	f.fresh = nil
	for _, id := range fresh {
		f.channels[id] = true
	}
	f.mu.Unlock()
	for _, id := range fresh {
		f.send(map[string]any{"type": "StasisStart", "application": app, "args": []string{"activate", "1234"},
			"channel": map[string]any{"id": id, "name": "Local/*551234@features-00000000;2", "state": "Ring"}})
	}

	f.mu.Lock()
	ids := append(slices.Sorted(maps.Keys(f.channels)), f.gone...)
	var devs []string
	for d := range f.devices {
		devs = append(devs, d)
	}
	f.mu.Unlock()
	writeJSON(w, 200, map[string]any{"name": app, "channel_ids": ids, "device_names": devs,
		"bridge_ids": []string{}, "endpoint_ids": []string{}})
}
