package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestCalendarIsWired: a user's ICS calendar in the configuration (a token from a file, the
// default rules) switches them through the daemon at the event's start and returns them at
// its end, with the event in the status, and the connector's metrics are served.
func TestCalendarIsWired(t *testing.T) {
	var mu sync.Mutex
	feed := "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//presenced//test//EN\r\nEND:VCALENDAR\r\n"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer feed-secret" {
			http.Error(w, "who?", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "text/calendar")
		mu.Lock()
		defer mu.Unlock()
		w.Write([]byte(feed))
	}))
	t.Cleanup(srv.Close)
	tokenFile := filepath.Join(t.TempDir(), "feed-token")
	if err := os.WriteFile(tokenFile, []byte("feed-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := profileConfig(t, fixture(t, "config/end-to-end.yaml", userKeys{
		"carol": {"calendar: {type: ics, url: \"" + srv.URL + "/carol.ics\", token_file: " + tokenFile + "}"},
	}))
	// Below calendar.poll_interval's minimum (10s), which protects the calendar servers: the
	// event below is put in the feed once the daemon is ready.
	cfg.Calendar.PollInterval = 300 * time.Millisecond
	d := startDaemon(t, cfg)
	d.waitReady(t, 15*time.Second)
	d.switchTo(t, "carol", "available", "")

	start := time.Now().UTC().Truncate(time.Second).Add(3 * time.Second)
	end := start.Add(3 * time.Second)
	const stamp = "20060102T150405Z"
	mu.Lock()
	feed = strings.ReplaceAll("BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//presenced//test//EN\nBEGIN:VEVENT\nUID:standup@test\n"+
		"DTSTART:"+start.Format(stamp)+"\nDTEND:"+end.Format(stamp)+"\nSUMMARY:m: Standup\nEND:VEVENT\nEND:VCALENDAR\n", "\n", "\r\n")
	mu.Unlock()

	label := "calendar event 'm: Standup' " + start.Local().Format("15:04") + "–" + end.Local().Format("15:04")
	// The triggers save what the user returns to just after the switch: a status read in
	// between has the profile and not yet returns_to.
	wait := func(profile, actor string, also func(map[string]any) bool) map[string]any {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			_, st := d.call(t, http.MethodGet, "/api/v1/users/carol", testToken("carol"), nil)
			if st["profile"] == profile && st["actor"] == actor && also(st) {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("carol not in %s by %q: %s", profile, actor, toJSON(st))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	st := wait("meeting", label, func(st map[string]any) bool { return st["returns_to"] != nil })
	if st["source"] != "external" || st["returns_to"] != "available" {
		t.Fatalf("carol during the event: %s", toJSON(st))
	}
	code, cal := d.call(t, http.MethodGet, "/api/v1/users/carol/calendar", testToken("carol"), nil)
	held, _ := cal["held"].([]any)
	if code != http.StatusOK || cal["stale"] != false || len(held) != 1 || !strings.HasPrefix(cal["source"].(string), "ics http://127.0.0.1") {
		t.Fatalf("GET carol's calendar during the event: %d %s", code, toJSON(cal))
	}
	if code, res := d.call(t, http.MethodGet, "/api/v1/users/alice/calendar", testToken("alice"), nil); code != http.StatusNotFound {
		t.Fatalf("GET the calendar of a user without one: %d %s", code, toJSON(res))
	}
	if time.Now().Before(start) {
		t.Fatalf("switched before the event's start %v", start)
	}
	wait("available", label, func(map[string]any) bool { return true })
	if time.Now().Before(end) {
		t.Fatalf("returned before the event's end %v", end)
	}
	if v := d.metric(t, `presenced_calendar_switches_total{action="start",result="switched"}`); v != 1 {
		t.Errorf("calendar starts counted: %v", v)
	}
	if v := d.metric(t, `presenced_calendar_sources_failing`); v != 0 {
		t.Errorf("sources failing: %v", v)
	}
}
