package web

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/presenced/presenced/calendar"
	"github.com/presenced/presenced/presence"
)

// fakeCalendars answers the status of alice's calendar only; the calendar connector's own
// tests run against Radicale, and cmd/presenced's browser test against a feed.
type fakeCalendars struct {
	st  *calendar.Status
	err error
}

func (f *fakeCalendars) Status(_ context.Context, id presence.UserID) (*calendar.Status, bool, error) {
	if id != "alice" {
		return nil, false, nil
	}
	return f.st, true, f.err
}

// TestStatusShowsTheCalendar: the status card's calendar line: the event holding the user now,
// the next one with its times (an all-day one by its date), "unreachable since" with the error
// while the last poll failed, nothing for a user without a calendar.
func TestStatusShowsTheCalendar(t *testing.T) {
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC) // a Monday
	at := func(d, h, m int) time.Time { return time.Date(2026, 3, d, h, m, 0, 0, time.UTC) }
	budget := calendar.Item{Summary: "m: Budget review", Start: at(2, 14, 0), End: at(2, 15, 0), Profile: "meeting"}
	standup := calendar.Item{Summary: "m: Standup", Start: at(2, 9, 30), End: at(2, 10, 30), Profile: "meeting"}
	offsite := calendar.Item{Summary: "Out of office", Start: at(5, 0, 0), End: at(6, 0, 0), AllDay: true, Profile: "holiday"}
	tomorrow := calendar.Item{Summary: "m: Planning", Start: at(3, 9, 0), End: at(3, 10, 30), Profile: "meeting"}
	for _, tc := range []struct {
		name string
		st   *calendar.Status
		err  error
		want string
	}{
		{"next event", &calendar.Status{Plan: calendar.Plan{Items: []calendar.Item{budget}, Polled: now}}, nil,
			"next event 'm: Budget review' 14:00–15:00"},
		{"now and next", &calendar.Status{Plan: calendar.Plan{Items: []calendar.Item{standup, budget}, Polled: now}, Held: []calendar.Item{standup}}, nil,
			"now 'm: Standup' 09:30–10:30; next event 'm: Budget review' 14:00–15:00"},
		{"tomorrow", &calendar.Status{Plan: calendar.Plan{Items: []calendar.Item{tomorrow}, Polled: now}}, nil,
			"next event 'm: Planning' tomorrow 09:00–10:30"},
		{"all day", &calendar.Status{Plan: calendar.Plan{Items: []calendar.Item{offsite}, Polled: now}}, nil,
			"next event 'Out of office' all day Thu 5 Mar"},
		{"nothing ahead", &calendar.Status{Plan: calendar.Plan{Polled: now}}, nil, "no events ahead that switch you"},
		{"unreachable", &calendar.Status{Plan: calendar.Plan{Items: []calendar.Item{budget}, Polled: at(2, 9, 12),
			Error: "GET https://cloud.example.com/alice.ics: 503 Service Unavailable"}, Stale: true}, nil,
			"unreachable since 09:12 (GET https://cloud.example.com/alice.ics: 503 Service Unavailable); its last plan stays in force; next event 'm: Budget review' 14:00–15:00"},
		{"never read", &calendar.Status{Plan: calendar.Plan{Error: "dial tcp: connection refused"}, Stale: true}, nil,
			"unreachable, never read yet (dial tcp: connection refused)"},
		{"store down", nil, errors.New("redis: connection refused"), "its status cannot be read just now"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newAppWith(t, nil, func(o *Options, _ *redis.Client) {
				o.Calendars = &fakeCalendars{st: tc.st, err: tc.err}
				o.Now = func() time.Time { return now }
			})
			c := a.client(t)
			c.signIn("alice", testPassword)
			_, body, _ := c.get("/")
			line := calendarLineOf(body)
			if line != tc.want {
				t.Fatalf("calendar line %q, want %q", line, tc.want)
			}
			if stale := strings.Contains(body, `id="calendar" class="stale"`); stale != (tc.st == nil || tc.st.Stale) {
				t.Errorf("stale class %v", stale)
			}
			b := a.client(t)
			b.signIn("bob", testPassword)
			if _, body, _ := b.get("/"); strings.Contains(body, `id="calendar"`) {
				t.Error("bob, who has no calendar, has a calendar line")
			}
		})
	}
}

// calendarLineOf is the text of the status page's calendar line, "" without one.
func calendarLineOf(body string) string {
	_, rest, ok := strings.Cut(body, `id="calendar"`)
	if !ok {
		return ""
	}
	_, rest, _ = strings.Cut(rest, ">")
	line, _, _ := strings.Cut(rest, "</dd>")
	return strings.ReplaceAll(line, "&#39;", "'")
}
