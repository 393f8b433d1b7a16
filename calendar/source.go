package calendar

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/emersion/go-ical"
	"github.com/emersion/go-webdav/caldav"

	"github.com/presenced/presenced/presence"
)

// Fetcher reads one calendar.
type Fetcher interface {
	// Fetch returns the calendar's events overlapping [from, to) (it may return more) as
	// iCalendar objects, and whether anything changed since the last successful Fetch.
	Fetch(ctx context.Context, from, to time.Time) (cals []*ical.Calendar, changed bool, err error)
	// Describe names the calendar for logs and the status, without secrets: "caldav
	// https://host", "ics https://host".
	Describe() string
}

// maxBody bounds what one calendar response may hold.
const maxBody = 32 << 20

// NewFetcher returns the Fetcher of a user's calendar source. client is the HTTP client
// (timeouts, TLS); the credentials are read from their files at every fetch.
func NewFetcher(src presence.CalendarSource, client *http.Client) (Fetcher, error) {
	raw := src.URL
	if src.URLFile != "" {
		b, err := os.ReadFile(src.URLFile)
		if err != nil {
			return nil, fmt.Errorf("calendar: read url_file: %w", err)
		}
		raw = strings.TrimSpace(string(b))
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("calendar: url: not an http(s) URL")
	}
	auth := &authClient{base: client, username: src.Username, passwordFile: src.PasswordFile, tokenFile: src.TokenFile}
	switch src.Type {
	case "ics":
		return &icsFetcher{url: u, http: auth}, nil
	case "caldav":
		c, err := caldav.NewClient(auth, u.String())
		if err != nil {
			return nil, fmt.Errorf("calendar: caldav client: %w", err)
		}
		return &caldavFetcher{url: u, http: auth, client: c, objects: map[string]*ical.Calendar{}}, nil
	}
	return nil, fmt.Errorf("calendar: type %q is not caldav or ics", src.Type)
}

// authClient sends requests with the credentials read from their files.
type authClient struct {
	base                              *http.Client
	username, passwordFile, tokenFile string
}

func (a *authClient) Do(req *http.Request) (*http.Response, error) {
	switch {
	case a.tokenFile != "":
		tok, err := readSecret(a.tokenFile)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	case a.username != "":
		pw := ""
		if a.passwordFile != "" {
			var err error
			if pw, err = readSecret(a.passwordFile); err != nil {
				return nil, err
			}
		}
		req.SetBasicAuth(a.username, pw)
	}
	c := a.base
	if c == nil {
		c = http.DefaultClient
	}
	return c.Do(req)
}

func readSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("calendar: read credentials: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

func describe(kind string, u *url.URL) string { return kind + " " + u.Scheme + "://" + u.Host }

// icsFetcher reads an iCalendar feed with a conditional GET.
type icsFetcher struct {
	url  *url.URL
	http *authClient
	etag string
	last []*ical.Calendar
}

func (f *icsFetcher) Describe() string { return describe("ics", f.url) }

func (f *icsFetcher) Fetch(ctx context.Context, _, _ time.Time) ([]*ical.Calendar, bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.url.String(), nil)
	if err != nil {
		return nil, false, fmt.Errorf("calendar: %s: %w", f.Describe(), err)
	}
	req.Header.Set("Accept", "text/calendar")
	if f.etag != "" && f.last != nil {
		req.Header.Set("If-None-Match", f.etag)
	}
	resp, err := f.http.Do(req)
	if err != nil {
		return nil, false, fmt.Errorf("calendar: %s: %w", f.Describe(), scrub(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotModified && f.last != nil {
		return f.last, false, nil
	}
	if resp.StatusCode != http.StatusOK {
		return nil, false, fmt.Errorf("calendar: %s: GET answered %s", f.Describe(), resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, false, fmt.Errorf("calendar: %s: read: %w", f.Describe(), err)
	}
	if len(body) > maxBody {
		return nil, false, fmt.Errorf("calendar: %s: the feed is larger than %d MiB", f.Describe(), maxBody>>20)
	}
	cals, err := decodeAll(body)
	if err != nil {
		return nil, false, fmt.Errorf("calendar: %s: %w", f.Describe(), err)
	}
	f.etag, f.last = resp.Header.Get("ETag"), cals
	return cals, true, nil
}

// decodeAll reads every VCALENDAR of an iCalendar stream.
func decodeAll(body []byte) (cals []*ical.Calendar, err error) {
	defer recovered(&err, "iCalendar parser")
	dec := ical.NewDecoder(bytes.NewReader(body))
	for {
		cal, err := dec.Decode()
		if errors.Is(err, io.EOF) {
			if len(cals) == 0 {
				return nil, errors.New("not an iCalendar stream: no VCALENDAR")
			}
			return cals, nil
		}
		if err != nil {
			return nil, fmt.Errorf("not an iCalendar stream: %w", err)
		}
		cals = append(cals, cal)
	}
}

// scrub drops the URL from a transport error (it may hold a secret feed address).
func scrub(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// caldavFetcher reads a CalDAV calendar collection: with sync-collection (RFC 6578) where
// the server supports it (only what changed since the last sync token is fetched), else
// with a calendar-query REPORT over the time range at every poll.
type caldavFetcher struct {
	url     *url.URL
	http    *authClient
	client  *caldav.Client
	noSync  bool // the server refused sync-collection: time-range queries only
	token   string
	objects map[string]*ical.Calendar // by path, as of token
}

func (f *caldavFetcher) Describe() string { return describe("caldav", f.url) }

func (f *caldavFetcher) Fetch(ctx context.Context, from, to time.Time) ([]*ical.Calendar, bool, error) {
	if !f.noSync {
		changed, err := f.sync(ctx)
		var se *syncError
		switch {
		case err == nil:
			cals := make([]*ical.Calendar, 0, len(f.objects))
			for _, c := range f.objects {
				cals = append(cals, c)
			}
			return cals, changed, nil
		case errors.As(err, &se) && se.unsupported && f.token == "":
			f.noSync = true // fall through to queries from now on
		default:
			return nil, false, fmt.Errorf("calendar: %s: %w", f.Describe(), err)
		}
	}
	objs, err := f.query(ctx, from, to)
	if err != nil {
		return nil, false, fmt.Errorf("calendar: %s: calendar-query: %w", f.Describe(), scrub(err))
	}
	cals := make([]*ical.Calendar, 0, len(objs))
	for _, o := range objs {
		cals = append(cals, o.Data)
	}
	return cals, true, nil
}

// query is a calendar-query REPORT of the events overlapping [from, to).
func (f *caldavFetcher) query(ctx context.Context, from, to time.Time) (objs []caldav.CalendarObject, err error) {
	defer recovered(&err, "iCalendar parser")
	return f.client.QueryCalendar(ctx, f.url.Path, &caldav.CalendarQuery{
		CompRequest: caldav.CalendarCompRequest{Name: ical.CompCalendar, AllProps: true, AllComps: true},
		CompFilter: caldav.CompFilter{Name: ical.CompCalendar, Comps: []caldav.CompFilter{
			{Name: ical.CompEvent, Start: from.UTC(), End: to.UTC()}}},
	})
}

// multiGet is a calendar-multiget REPORT of the objects at paths.
func (f *caldavFetcher) multiGet(ctx context.Context, paths []string) (objs []caldav.CalendarObject, err error) {
	defer recovered(&err, "iCalendar parser")
	return f.client.MultiGetCalendar(ctx, f.url.Path, &caldav.CalendarMultiGet{Paths: paths,
		CompRequest: caldav.CalendarCompRequest{Name: ical.CompCalendar, AllProps: true, AllComps: true}})
}

// recovered turns a panic of a library reading what a calendar holds (an invitation from
// anyone lands in it) into an error, so that one malformed event never stops presenced.
func recovered(err *error, what string) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("malformed calendar data: the %s failed: %v", what, r)
	}
}

type syncError struct {
	status      int
	unsupported bool // the server does not do sync-collection on this collection
	badToken    bool // the token is no longer valid: sync from scratch
}

func (e *syncError) Error() string { return fmt.Sprintf("sync-collection answered %d", e.status) }

// sync brings objects up to date with one sync-collection REPORT (from scratch when the
// token went stale) and a calendar-multiget of what changed.
func (f *caldavFetcher) sync(ctx context.Context) (bool, error) {
	ms, err := f.syncReport(ctx, f.token)
	var se *syncError
	if errors.As(err, &se) && se.badToken && f.token != "" {
		f.token, f.objects = "", map[string]*ical.Calendar{}
		ms, err = f.syncReport(ctx, "")
	}
	if err != nil {
		return false, err
	}
	var changed []string
	deleted := 0
	self := strings.TrimSuffix(f.url.Path, "/")
	for _, r := range ms.Responses {
		for _, h := range r.Hrefs {
			p := hrefPath(f.url, h)
			if strings.TrimSuffix(p, "/") == self {
				continue
			}
			if strings.Contains(r.Status, " 404 ") {
				if _, ok := f.objects[p]; ok {
					delete(f.objects, p)
					deleted++
				}
				continue
			}
			changed = append(changed, p)
		}
	}
	if len(changed) > 0 {
		objs, err := f.multiGet(ctx, changed)
		if err != nil {
			return false, fmt.Errorf("calendar-multiget: %w", scrub(err))
		}
		for _, o := range objs {
			if o.Data != nil {
				f.objects[o.Path] = o.Data
			}
		}
	}
	f.token = ms.SyncToken
	return f.token == "" || len(changed) > 0 || deleted > 0, nil
}

type multistatus struct {
	Responses []struct {
		Hrefs  []string `xml:"DAV: href"`
		Status string   `xml:"DAV: status"`
	} `xml:"DAV: response"`
	SyncToken string `xml:"DAV: sync-token"`
}

func (f *caldavFetcher) syncReport(ctx context.Context, token string) (*multistatus, error) {
	var body bytes.Buffer
	body.WriteString(`<?xml version="1.0" encoding="utf-8"?><d:sync-collection xmlns:d="DAV:"><d:sync-token>`)
	if err := xml.EscapeText(&body, []byte(token)); err != nil {
		return nil, err
	}
	body.WriteString(`</d:sync-token><d:sync-level>1</d:sync-level><d:prop><d:getetag/></d:prop></d:sync-collection>`)
	req, err := http.NewRequestWithContext(ctx, "REPORT", f.url.String(), &body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/xml; charset=utf-8")
	resp, err := f.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("sync-collection: %w", scrub(err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, fmt.Errorf("sync-collection: read: %w", err)
	}
	switch {
	case resp.StatusCode == http.StatusMultiStatus:
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusNotFound:
		return nil, fmt.Errorf("sync-collection: %s", resp.Status)
	case bytes.Contains(b, []byte("valid-sync-token")):
		return nil, &syncError{status: resp.StatusCode, badToken: true}
	case resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusForbidden ||
		resp.StatusCode == http.StatusMethodNotAllowed || resp.StatusCode == http.StatusNotImplemented ||
		resp.StatusCode == http.StatusUnsupportedMediaType:
		return nil, &syncError{status: resp.StatusCode, unsupported: true}
	default:
		return nil, fmt.Errorf("sync-collection: %s", resp.Status)
	}
	var ms multistatus
	if err := xml.Unmarshal(b, &ms); err != nil {
		return nil, fmt.Errorf("sync-collection: unreadable multistatus: %w", err)
	}
	if ms.SyncToken == "" {
		return nil, &syncError{status: resp.StatusCode, unsupported: true}
	}
	return &ms, nil
}

// hrefPath is the path an href names, relative to the collection's URL.
func hrefPath(base *url.URL, href string) string {
	u, err := base.Parse(strings.TrimSpace(href))
	if err != nil {
		return href
	}
	return u.Path
}
