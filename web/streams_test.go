package web

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/presenced/presenced/presence"
)

// TestEventStreamsCapped: with Options.MaxStreams open, one more event stream is refused with
// 503 and Retry-After (the page falls back to reloading), whoever asks; one that ends makes
// room again.
func TestEventStreamsCapped(t *testing.T) {
	a := newAppWith(t, nil, func(o *Options, _ *redis.Client) { o.MaxStreams = 2 })
	open := func(id presence.UserID) (*http.Response, context.CancelFunc) {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, a.srv.URL+"/events", nil)
		req.AddCookie(a.session(t, id))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		t.Cleanup(func() { cancel(); resp.Body.Close() })
		return resp, cancel
	}
	var accepted []context.CancelFunc
	for _, tc := range []struct {
		id         presence.UserID
		code       int
		retryAfter string
	}{
		{"alice", http.StatusOK, ""},
		{"bob", http.StatusOK, ""},
		{"carol", http.StatusServiceUnavailable, "60"}, // an admin too
		{"alice", http.StatusServiceUnavailable, "60"},
	} {
		resp, cancel := open(tc.id)
		if resp.StatusCode != tc.code || resp.Header.Get("Retry-After") != tc.retryAfter {
			t.Errorf("stream for %s: %d, Retry-After %q; want %d, %q", tc.id, resp.StatusCode,
				resp.Header.Get("Retry-After"), tc.code, tc.retryAfter)
		}
		if resp.StatusCode == http.StatusOK {
			accepted = append(accepted, cancel)
		}
	}
	if n := a.h.Clients(); n != 2 || len(accepted) != 2 {
		t.Fatalf("%d streams open, want 2", n)
	}
	// The pages themselves are served all along.
	c := a.client(t)
	c.signIn("carol", testPassword)
	if code, _, _ := c.get("/colleagues"); code != http.StatusOK {
		t.Errorf("colleagues page with the streams full: %d", code)
	}
	// One goes (its page is closed): room for one more.
	accepted[0]()
	deadline := time.Now().Add(5 * time.Second)
	for a.h.Clients() > 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if resp, _ := open("carol"); resp.StatusCode != http.StatusOK {
		t.Errorf("after one ended: %d", resp.StatusCode)
	}
	if _, err := New(Options{Engine: a.engine, States: a.h.opts.States, Accounts: a.acc, MaxStreams: -1}); err == nil {
		t.Error("New accepted MaxStreams -1")
	}
}

// TestResyncSendsMissedChanges: a change written without its announcement (as one made while
// the pub/sub connection was down) reaches the open streams when the hub resyncs, which it
// does on every (re)subscription (presence.StateStore.Changes delivers an empty id); the
// real-Redis case, with the connection killed, is cmd/presenced's TestWebLiveAfterPubSubReconnect.
func TestResyncSendsMissedChanges(t *testing.T) {
	var rdb *redis.Client
	a := newAppWith(t, nil, func(_ *Options, r *redis.Client) { rdb = r })
	ctx := context.Background()
	if _, err := a.engine.Switch(ctx, presence.SwitchRequest{User: "bob", Profile: "lunch", Info: "back at 1", Source: presence.SourceAPI}); err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, _ := http.NewRequestWithContext(sctx, http.MethodGet, a.srv.URL+"/events", nil)
	req.AddCookie(a.session(t, "alice"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("stream: %v", err)
	}
	defer resp.Body.Close()
	infos := make(chan string, 16)
	go func() {
		rd := bufio.NewReader(resp.Body)
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				return
			}
			var u update
			if data, ok := strings.CutPrefix(line, "data: "); ok && json.Unmarshal([]byte(data), &u) == nil && u.User == "bob" {
				infos <- u.Entry.Info
			}
		}
	}()
	for a.h.Clients() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	// The colleagues page has read the view; nothing changed since: a resync sends nothing.
	if _, err := a.h.hub.everyone(ctx, time.Now(), presence.EveryoneOptions{Viewer: "alice"}); err != nil {
		t.Fatal(err)
	}
	a.h.hub.resync(ctx)
	// bob's info changes in Redis with no announcement.
	st, err := rdb.HGet(ctx, "presenced:user:bob", "state").Result()
	if err != nil || !strings.Contains(st, `"info":"back at 1"`) {
		t.Fatalf("bob's state %q %v", st, err)
	}
	if err := rdb.HSet(ctx, "presenced:user:bob", "state", strings.Replace(st, "back at 1", "back at 2", 1)).Err(); err != nil {
		t.Fatal(err)
	}
	a.h.hub.resync(ctx)
	select {
	case info := <-infos:
		if info != "back at 2" {
			t.Fatalf("the stream got bob's info %q, want the missed change", info)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the missed change was not sent")
	}
	// The view the colleagues page reads has it too.
	all, err := a.h.hub.everyone(ctx, time.Now(), presence.EveryoneOptions{Admin: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range all {
		if e.User == "bob" && e.Info != "back at 2" {
			t.Errorf("view: %+v", e)
		}
	}
}
