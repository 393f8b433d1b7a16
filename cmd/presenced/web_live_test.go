package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestWebLiveAfterPubSubReconnect: a change whose announcement is lost while the pub/sub
// connection to Redis is down reaches an open event stream at once when the subscription is
// re-established (the web app re-reads everyone then), not up to 10 s later. The lost
// announcement is made exact: bob's info is written into Redis with no announcement (as a
// switch made while the connection was down leaves it), then every pub/sub connection is
// killed (CLIENT KILL TYPE pubsub); go-redis reconnects and resubscribes.
func TestWebLiveAfterPubSubReconnect(t *testing.T) {
	d, _ := startWebDaemon(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp, err := adminEvents(ctx, d)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("event stream: %v %v", resp, err)
	}
	defer resp.Body.Close()
	type seen struct {
		info string
		at   time.Time
	}
	bob := make(chan seen, 64)
	go func() {
		rd := bufio.NewReader(resp.Body)
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				return
			}
			var u struct {
				User  string `json:"user"`
				Entry struct {
					Info string `json:"info"`
				} `json:"entry"`
			}
			if data, ok := strings.CutPrefix(line, "data: "); ok && json.Unmarshal([]byte(data), &u) == nil && u.User == webBob.id {
				bob <- seen{u.Entry.Info, time.Now()}
			}
		}
	}()
	wait := func(info string, within time.Duration) time.Time {
		t.Helper()
		deadline := time.After(within)
		for {
			select {
			case s := <-bob:
				if s.info == info {
					return s.at
				}
			case <-deadline:
				t.Fatalf("the stream did not show bob's info %q within %v", info, within)
			}
		}
	}
	d.switchTo(t, webBob.id, "lunch", "back at 1")
	wait("back at 1", 3*time.Second)

	rdb := labRedisClient(t)
	key := "presenced:user:" + webBob.id
	st, err := rdb.HGet(ctx, key, "state").Result()
	if err != nil || !strings.Contains(st, `"info":"back at 1"`) {
		t.Fatalf("bob's state %q: %v", st, err)
	}
	if err := rdb.HSet(ctx, key, "state", strings.Replace(st, "back at 1", "back at 3", 1)).Err(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	n, err := rdb.ClientKillByFilter(ctx, "TYPE", "pubsub").Result()
	if err != nil || n == 0 {
		t.Fatalf("CLIENT KILL TYPE pubsub: %d %v", n, err)
	}
	took := wait("back at 3", 5*time.Second).Sub(killed)
	t.Logf("the missed change reached the stream %v after the pub/sub connection was killed", took.Round(time.Millisecond))
	if took > 3*time.Second {
		t.Errorf("the missed change took %v to show, want well under the view's 10 s", took)
	}
	// Announcements flow again on the new subscription.
	d.switchTo(t, webBob.id, "available", "back")
	wait("back", 3*time.Second)
}

// TestWebStreamsFullFallBack: with http.max_event_streams taken (1, held by an API client),
// the colleagues page's stream is refused (503); the page says so (data-live="polling") and
// reloads the list now and then instead: a colleague's switch shows within the 20 s of a
// reload, without reloading the page. The API is served all along.
func TestWebStreamsFullFallBack(t *testing.T) {
	d, _ := startWebDaemonWith(t, func(c *Config) { c.HTTP.MaxEventStreams = 1 })
	d.switchTo(t, webBob.id, "available", "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp, err := adminEvents(ctx, d)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("the one event stream: %v %v", resp, err)
	}
	defer resp.Body.Close()
	second, err := adminEvents(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	second.Body.Close()
	if second.StatusCode != http.StatusServiceUnavailable || second.Header.Get("Retry-After") == "" {
		t.Fatalf("a second stream: %d, Retry-After %q", second.StatusCode, second.Header.Get("Retry-After"))
	}

	bctx := browser(t, 1440, 900)
	signIn(t, bctx, d, webAlice.id, "#status-card")
	act(t, bctx, "open colleagues",
		chromedp.Navigate(d.base+"/colleagues"),
		chromedp.WaitVisible(chromedp.CSS("#u-web-bob")),
		chromedp.WaitVisible(chromedp.CSS(`html[data-live="polling"]`)))
	eval[bool](t, bctx, "mark the page", `window.notReloaded = true`)
	d.switchTo(t, webBob.id, "lunch", "polled")
	took := eventually(t, 30*time.Second, "bob's row shows Lunch", func() bool {
		return text(t, bctx, "#u-web-bob .label") == "Lunch"
	})
	t.Logf("shown %v after the switch, by a reload of the list", took.Round(time.Millisecond))
	if got := text(t, bctx, "#u-web-bob .pinfo"); got != "polled" {
		t.Errorf("bob's info: %q", got)
	}
	if !eval[bool](t, bctx, "no reload", `window.notReloaded === true`) {
		t.Error("the page was reloaded")
	}
	if got := eval[string](t, bctx, "rows", `document.querySelectorAll("#people .person").length + ""`); got == "0" {
		t.Errorf("the list is empty after the reload: %s", got)
	}
}

// adminEvents opens the API's event stream of d with the admin token, until ctx ends.
func adminEvents(ctx context.Context, d *daemonUnderTest) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.base+"/api/v1/events", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+testToken("admin"))
	return http.DefaultClient.Do(req)
}
