package web

import (
	"context"
	"net/http"
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
