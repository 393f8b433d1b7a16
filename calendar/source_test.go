package calendar

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-ical"
	"github.com/emersion/go-webdav/caldav"

	"github.com/presenced/presenced/internal/lab"
	"github.com/presenced/presenced/presence"
)

// memBackend is a CalDAV server's storage for go-webdav's caldav.Handler: a second CalDAV
// implementation besides Radicale, one without sync-collection.
type memBackend struct {
	mu      sync.Mutex
	objects map[string]*ical.Calendar // path → object
}

func (b *memBackend) CurrentUserPrincipal(context.Context) (string, error) { return "/alice/", nil }
func (b *memBackend) CalendarHomeSetPath(context.Context) (string, error)  { return "/alice/", nil }
func (b *memBackend) CreateCalendar(context.Context, *caldav.Calendar) error {
	return nil
}
func (b *memBackend) ListCalendars(ctx context.Context) ([]caldav.Calendar, error) {
	c, _ := b.GetCalendar(ctx, "/alice/cal/")
	return []caldav.Calendar{*c}, nil
}
func (b *memBackend) GetCalendar(context.Context, string) (*caldav.Calendar, error) {
	return &caldav.Calendar{Path: "/alice/cal/", Name: "cal", SupportedComponentSet: []string{ical.CompEvent}}, nil
}
func (b *memBackend) GetCalendarObject(_ context.Context, path string, _ *caldav.CalendarCompRequest) (*caldav.CalendarObject, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	cal, ok := b.objects[path]
	if !ok {
		return nil, caldav.NewPreconditionError(caldav.PreconditionNoUIDConflict)
	}
	return &caldav.CalendarObject{Path: path, Data: cal, ETag: "x"}, nil
}
func (b *memBackend) ListCalendarObjects(context.Context, string, *caldav.CalendarCompRequest) ([]caldav.CalendarObject, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []caldav.CalendarObject
	for p, c := range b.objects {
		out = append(out, caldav.CalendarObject{Path: p, Data: c, ETag: "x"})
	}
	return out, nil
}
func (b *memBackend) QueryCalendarObjects(ctx context.Context, path string, q *caldav.CalendarQuery) ([]caldav.CalendarObject, error) {
	all, _ := b.ListCalendarObjects(ctx, path, nil)
	return caldav.Filter(q, all)
}
func (b *memBackend) PutCalendarObject(context.Context, string, *ical.Calendar, *caldav.PutCalendarObjectOptions) (*caldav.CalendarObject, error) {
	return nil, caldav.NewPreconditionError(caldav.PreconditionNoUIDConflict)
}
func (b *memBackend) DeleteCalendarObject(context.Context, string) error { return nil }

func (b *memBackend) set(t *testing.T, path, vevents string) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if vevents == "" {
		delete(b.objects, path)
		return
	}
	b.objects[path] = parseICS(t, vevents)
}

// TestCalDAVWithoutSyncCollection: a CalDAV server that refuses sync-collection (go-webdav's
// server) is read with a time-range calendar-query at every poll, and sees changes and
// deletions; wrong credentials fail the fetch without naming the URL's secrets.
func TestCalDAVWithoutSyncCollection(t *testing.T) {
	b := &memBackend{objects: map[string]*ical.Calendar{}}
	h := &caldav.Handler{Backend: b}
	var syncAsked bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "alice" || p != "pw" {
			w.Header().Set("WWW-Authenticate", `Basic realm="cal"`)
			http.Error(w, "who?", http.StatusUnauthorized)
			return
		}
		if r.Method == "REPORT" {
			body, _ := io.ReadAll(r.Body)
			syncAsked = syncAsked || bytes.Contains(body, []byte("sync-collection"))
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	pw := secretFile(t, "pw")
	f, err := NewFetcher(presence.CalendarSource{Type: "caldav", URL: srv.URL + "/alice/cal/", Username: "alice", PasswordFile: pw}, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	b.set(t, "/alice/cal/weekly.ics", `BEGIN:VEVENT
UID:weekly
DTSTAMP:20270101T000000Z
DTSTART;TZID=Europe/Berlin:20270104T090000
DTEND;TZID=Europe/Berlin:20270104T100000
RRULE:FREQ=WEEKLY
SUMMARY:m: Weekly
END:VEVENT`)
	b.set(t, "/alice/cal/once.ics", `BEGIN:VEVENT
UID:once
DTSTAMP:20270101T000000Z
DTSTART:20270302T130000Z
DTEND:20270302T140000Z
SUMMARY:m: Once
END:VEVENT`)
	from := time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC)
	to := from.Add(7 * 24 * time.Hour)
	summaries := func() []string {
		t.Helper()
		cals, _, err := f.Fetch(context.Background(), from, to)
		if err != nil {
			t.Fatal(err)
		}
		occs, problems := Expand(cals, time.UTC, from, to)
		if len(problems) > 0 {
			t.Fatal(problems)
		}
		var out []string
		for _, o := range occs {
			out = append(out, o.Summary+" "+o.Start.UTC().Format("Jan 2 15:04"))
		}
		return out
	}
	if got, want := summaries(), []string{"m: Weekly Mar 1 08:00", "m: Once Mar 2 13:00"}; !slices.Equal(got, want) {
		t.Fatalf("first fetch: %q, want %q", got, want)
	}
	if !syncAsked || !f.(*caldavFetcher).noSync {
		t.Fatalf("sync-collection asked %v, fell back to queries %v", syncAsked, f.(*caldavFetcher).noSync)
	}
	b.set(t, "/alice/cal/once.ics", "")
	if got, want := summaries(), []string{"m: Weekly Mar 1 08:00"}; !slices.Equal(got, want) {
		t.Fatalf("after a deletion: %q, want %q", got, want)
	}
	if err := writeSecret(pw, "wrong"); err != nil {
		t.Fatal(err)
	}
	_, _, err = f.Fetch(context.Background(), from, to)
	if err == nil || strings.Contains(err.Error(), "/alice/cal") {
		t.Fatalf("fetch with a wrong password: %v (want an error without the path)", err)
	}
}

// TestCalDAVSyncCollection: against Radicale, a second sync-collection with nothing changed
// reports no change and fetches nothing; a change comes alone; a sync token the server no
// longer knows starts over from scratch.
func TestCalDAVSyncCollection(t *testing.T) {
	cal := newCalendar(t, lab.RadicaleUser2, lab.RadicalePassword2)
	f, err := NewFetcher(presence.CalendarSource{Type: "caldav", URL: cal.collection, Username: lab.RadicaleUser2,
		PasswordFile: secretFile(t, lab.RadicalePassword2)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cf := f.(*caldavFetcher)
	event := func(uid, summary string) string {
		return "BEGIN:VEVENT\nUID:" + uid + "\nDTSTAMP:20270101T000000Z\nDTSTART:20270302T130000Z\nDTEND:20270302T140000Z\nSUMMARY:" +
			summary + "\nEND:VEVENT"
	}
	cal.put("a", event("a", "m: A"))
	cal.put("b", event("b", "m: B"))
	from := time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC)
	fetch := func(wantChanged bool) []string {
		t.Helper()
		cals, changed, err := f.Fetch(context.Background(), from, from.Add(48*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if changed != wantChanged {
			t.Fatalf("changed %v, want %v", changed, wantChanged)
		}
		occs, _ := Expand(cals, time.UTC, from, from.Add(48*time.Hour))
		var out []string
		for _, o := range occs {
			out = append(out, o.Summary)
		}
		slices.Sort(out)
		return out
	}
	if got := fetch(true); !slices.Equal(got, []string{"m: A", "m: B"}) {
		t.Fatalf("first sync: %q", got)
	}
	if cf.noSync || cf.token == "" {
		t.Fatalf("Radicale does sync-collection: noSync %v, token %q", cf.noSync, cf.token)
	}
	if got := fetch(false); !slices.Equal(got, []string{"m: A", "m: B"}) {
		t.Fatalf("sync with nothing changed: %q", got)
	}
	cal.put("b", event("b", "m: B2"))
	cal.delete("a")
	if got := fetch(true); !slices.Equal(got, []string{"m: B2"}) {
		t.Fatalf("sync after a change and a deletion: %q", got)
	}
	cf.token = "http://radicale.org/ns/sync/0000000000000000000000000000000000000000000000000000000000000000"
	cal.put("c", event("c", "m: C"))
	if got := fetch(true); !slices.Equal(got, []string{"m: B2", "m: C"}) {
		t.Fatalf("sync from a stale token: %q", got)
	}
}
