package web

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/presenced/presenced/account"
	"github.com/presenced/presenced/internal/secret"
	"github.com/presenced/presenced/internal/throttle"
	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/presencetest"
)

// The web app over an engine with an in-memory PBX and a miniredis store: the handlers, the
// sessions, the rules of who may see and do what, and the live updates. The browser tests in
// cmd/presenced/web_test.go drive it in chromium against the lab Asterisk.

const testPassword = "a-test-password"

type app struct {
	srv    *httptest.Server
	engine *presence.Engine
	h      *Handler
	acc    *account.Service
}

func newApp(t *testing.T) *app { return newAppWith(t, nil, nil) }

// newAppWith is newApp with more users (password testPassword, no admin), e.g. for benchmarks,
// and the handler's options edited by edit (when not nil), which gets the app's Redis too.
func newAppWith(t testing.TB, extra []presence.User, edit func(*Options, *redis.Client)) *app {
	t.Helper()
	var rdb *redis.Client
	if url := os.Getenv("PRESENCED_WEB_BENCH_REDIS"); url != "" {
		// A real Redis for the benchmarks (docs/BENCHMARKS.md); the tests use miniredis.
		opt, err := redis.ParseURL(url)
		if err != nil {
			t.Fatal(err)
		}
		rdb = redis.NewClient(opt)
		if err := rdb.FlushDB(context.Background()).Err(); err != nil {
			t.Fatal(err)
		}
	} else {
		mr := miniredis.RunT(t)
		rdb = redis.NewClient(&redis.Options{Addr: mr.Addr()})
	}
	t.Cleanup(func() { rdb.Close() })
	hash, err := secret.NewHash(testPassword)
	if err != nil {
		t.Fatal(err)
	}
	user := func(id, ext string, admin bool) presence.User {
		return presence.User{ID: presence.UserID(id), Name: strings.ToUpper(id[:1]) + id[1:], Extension: ext, PasswordHash: hash, Admin: admin,
			Devices: []presence.Device{{Dial: "PJSIP/" + ext, Family: presence.FamilyDesk}},
			Queues:  []presence.QueueMembership{{Name: "support"}}}
	}
	users := []presence.User{user("alice", "1001", false), user("bob", "1002", false), user("carol", "1003", true)}
	// alice has a mobile too (device_test.go).
	users[0].Devices = append(users[0].Devices, presence.Device{Dial: "PJSIP/1001-mobile", Family: presence.FamilyMobile})
	for _, u := range extra {
		users = append(users, user(string(u.ID), u.Extension, false))
	}
	cat, err := presence.NewCatalogFrom(presence.CatalogConfig{Users: users, Profiles: []presence.Profile{
		{ID: "available", Name: "Available", Colour: "green", Presence: "available"},
		{ID: "lunch", Name: "Lunch", Colour: "orange", Presence: "away", OnEnter: []presence.Action{{Kind: presence.ActionQueuePause, Queues: presence.QueueSelector{"all"}, Reason: "Lunch"}}},
		{ID: "secret", Name: "Secret", Visibility: presence.VisibilityPrivate, Presence: "dnd"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	states := presence.NewStateStore(rdb, presence.StateStoreOptions{})
	e, err := presence.NewEngine(presence.EngineOptions{Catalog: cat, Naming: presence.DefaultNaming(), States: states,
		Concerns: []presence.Concern{presencetest.NewPBX()}})
	if err != nil {
		t.Fatal(err)
	}
	presencetest.Run(t, e)
	acc, err := account.New(account.Options{Redis: rdb, Catalog: cat})
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Engine: e, States: states, Accounts: acc, Location: time.UTC}
	if edit != nil {
		edit(&opts, rdb)
	}
	h, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	srv := httptest.NewServer(h)
	srv.Config.RegisterOnShutdown(h.Shutdown)
	t.Cleanup(func() { h.Shutdown(); srv.Close(); cancel(); <-done })
	return &app{srv: srv, engine: e, h: h, acc: acc}
}

// browserClient is a browser without JavaScript: cookies, no redirects followed.
type browserClient struct {
	t    *testing.T
	base string
	c    *http.Client
}

func (a *app) client(t *testing.T) *browserClient {
	jar, _ := cookiejar.New(nil)
	return &browserClient{t: t, base: a.srv.URL, c: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (c *browserClient) get(path string) (int, string, string) {
	c.t.Helper()
	resp, err := c.c.Get(c.base + path)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	tok := ""
	if m := csrfRE.FindStringSubmatch(string(b)); m != nil {
		tok = m[1]
	}
	return resp.StatusCode, string(b), tok
}

func (c *browserClient) post(path string, form url.Values, header ...string) (int, string, *http.Response) {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, c.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.c.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp
}

func (c *browserClient) signIn(name, password string) int {
	c.t.Helper()
	_, _, tok := c.get("/signin")
	code, _, _ := c.post("/signin", url.Values{"csrf": {tok}, "user": {name}, "password": {password}})
	return code
}

func TestSignInSessionsAndCSRF(t *testing.T) {
	a := newApp(t)
	c := a.client(t)
	if code, _, _ := c.get("/"); code != http.StatusSeeOther {
		t.Fatalf("GET / signed out: %d", code)
	}
	if code := c.signIn("1001", "wrong-password"); code != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d", code)
	}
	// The sign-in form itself needs its token.
	if code, _, _ := c.post("/signin", url.Values{"user": {"alice"}, "password": {testPassword}}); code != http.StatusForbidden {
		t.Fatalf("sign-in without the form's token: %d", code)
	}
	if code := c.signIn("1001", testPassword); code != http.StatusSeeOther {
		t.Fatalf("sign in: %d", code)
	}
	u, _ := url.Parse(c.base)
	var session *http.Cookie
	for _, ck := range c.c.Jar.Cookies(u) {
		if ck.Name == sessionCookie {
			session = ck
		}
	}
	if session == nil {
		t.Fatal("no session cookie")
	}
	code, body, tok := c.get("/")
	if code != http.StatusOK || tok == "" || !strings.Contains(body, "Alice") {
		t.Fatalf("status page: %d", code)
	}
	for _, tc := range []struct {
		name   string
		form   url.Values
		header []string
		want   int
	}{
		{"no token", url.Values{"profile": {"lunch"}}, nil, http.StatusForbidden},
		{"wrong token", url.Values{"profile": {"lunch"}, "csrf": {"nope"}}, nil, http.StatusForbidden},
		{"other origin", url.Values{"profile": {"lunch"}, "csrf": {tok}}, []string{"Origin", "https://evil.example"}, http.StatusForbidden},
		{"null origin", url.Values{"profile": {"lunch"}, "csrf": {tok}}, []string{"Origin", "null"}, http.StatusForbidden},
		{"another user", url.Values{"profile": {"lunch"}, "csrf": {tok}, "user": {"bob"}}, nil, http.StatusForbidden},
		{"unknown profile", url.Values{"profile": {"nope"}, "csrf": {tok}}, nil, http.StatusUnprocessableEntity},
		{"bad until", url.Values{"profile": {"lunch"}, "csrf": {tok}, "until": {"at"}, "until_time": {"25:99"}}, nil, http.StatusUnprocessableEntity},
		{"right", url.Values{"profile": {"lunch"}, "csrf": {tok}, "info": {"back at 1"}}, nil, http.StatusSeeOther},
	} {
		if code, _, _ := c.post("/switch", tc.form, tc.header...); code != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, code, tc.want)
		}
	}
	st, err := a.engine.Status(context.Background(), "alice")
	if err != nil || st.State.Profile != "lunch" || st.State.Info != "back at 1" || st.State.Actor != "alice" {
		t.Fatalf("after the switches: %+v %v", st.State, err)
	}
	// alice may not read bob's status or journal, nor the admin page.
	for _, path := range []string{"/?user=bob", "/journal?user=bob", "/admin"} {
		if code, _, _ := c.get(path); code != http.StatusForbidden {
			t.Errorf("GET %s as alice: %d", path, code)
		}
	}
	// Signed out, the session is gone: its token does nothing.
	if code, _, _ := c.post("/signout", url.Values{"csrf": {tok}}); code != http.StatusSeeOther {
		t.Fatalf("sign out: %d", code)
	}
	c.c.Jar.SetCookies(u, []*http.Cookie{session})
	if code, _, _ := c.post("/switch", url.Values{"profile": {"available"}, "csrf": {tok}}); code != http.StatusUnauthorized {
		t.Errorf("switch with an ended session: %d", code)
	}
}

func TestAdminActsOnAnyone(t *testing.T) {
	a := newApp(t)
	c := a.client(t)
	if code := c.signIn("carol", testPassword); code != http.StatusSeeOther {
		t.Fatalf("sign in: %d", code)
	}
	code, body, tok := c.get("/admin")
	if code != http.StatusOK || !strings.Contains(body, "Alice") || !strings.Contains(body, "Bob") {
		t.Fatalf("admin page: %d", code)
	}
	if code, _, resp := c.post("/switch", url.Values{"profile": {"lunch"}, "csrf": {tok}, "user": {"bob"}}); code != http.StatusSeeOther ||
		resp.Header.Get("Location") != "/?done=switched&user=bob" {
		t.Fatalf("admin switches bob: %d %s", code, resp.Header.Get("Location"))
	}
	if st, _ := a.engine.Status(context.Background(), "bob"); st.State.Profile != "lunch" || st.State.Actor != "carol" {
		t.Fatalf("bob: %+v", st.State)
	}
	if code, body, _ := c.get("/journal?user=bob"); code != http.StatusOK || !strings.Contains(body, "by carol") {
		t.Fatalf("bob's journal: %d", code)
	}
	if code, body, _ := c.get("/admin?profile=lunch"); code != http.StatusOK || !strings.Contains(body, `id="a-bob"`) || strings.Contains(body, `id="a-alice"`) {
		t.Fatalf("filter by profile: %d", code)
	}
	code, body, _ = c.post("/admin/link", url.Values{"csrf": {tok}, "user": {"alice"}})
	m := regexp.MustCompile(`/set-password\?token=([A-Za-z0-9_-]+)`).FindStringSubmatch(body)
	if code != http.StatusOK || m == nil {
		t.Fatalf("link: %d", code)
	}
	anon := a.client(t)
	if code, _, _ := anon.post("/set-password", url.Values{"token": {m[1]}, "password": {"alices-new-password"}, "confirm": {"alices-new-password"}}); code != http.StatusOK {
		t.Fatalf("set password: %d", code)
	}
	if code := anon.signIn("alice", "alices-new-password"); code != http.StatusSeeOther {
		t.Fatalf("sign in with the new password: %d", code)
	}
}

// TestLiveUpdatesRespectPrivacy: a switch reaches every event stream within a second; a
// private profile reaches colleagues as its presence state only, the user in full.
func TestLiveUpdatesRespectPrivacy(t *testing.T) {
	a := newApp(t)
	streams := map[string]*bufio.Reader{}
	for _, who := range []string{"alice", "bob"} {
		c := a.client(t)
		if code := c.signIn(who, testPassword); code != http.StatusSeeOther {
			t.Fatalf("sign in %s: %d", who, code)
		}
		resp, err := c.c.Get(c.base + "/events")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		streams[who] = bufio.NewReader(resp.Body)
	}
	next := func(who string) update {
		t.Helper()
		got := make(chan update, 1)
		go func() {
			for {
				line, err := streams[who].ReadString('\n')
				if err != nil {
					return
				}
				if data, ok := strings.CutPrefix(line, "data: "); ok && strings.Contains(data, `"user"`) {
					var u update
					json.Unmarshal([]byte(data), &u)
					got <- u
					return
				}
			}
		}()
		select {
		case u := <-got:
			return u
		case <-time.After(time.Second):
			t.Fatalf("%s saw no update within 1s", who)
			return update{}
		}
	}
	for _, tc := range []struct {
		profile, info    string
		bobSees, bobInfo string
	}{
		{"lunch", "back at 1", "Lunch", "back at 1"},
		{"secret", "the dentist", "Do not disturb", ""},
	} {
		if _, err := a.engine.Switch(context.Background(), presence.SwitchRequest{User: "alice", Profile: tc.profile, Info: tc.info, Source: presence.SourceAPI}); err != nil {
			t.Fatal(err)
		}
		own := next("alice")
		if own.User != "alice" || own.Entry.Profile != tc.profile || own.Entry.Info != tc.info || !strings.Contains(own.HTML, `class="person me"`) {
			t.Errorf("%s: alice sees %+v", tc.profile, own.Entry)
		}
		seen := next("bob")
		if seen.Entry.Label != tc.bobSees || seen.Entry.Info != tc.bobInfo || (tc.profile == "secret" && (seen.Entry.Profile != "" || strings.Contains(seen.HTML, "dentist"))) {
			t.Errorf("%s: bob sees %+v", tc.profile, seen.Entry)
		}
	}
}

func TestParseUntil(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 2, 14, 30, 0, 0, berlin)
	for _, tc := range []struct {
		choice, at string
		want       time.Time
		err        bool
	}{
		{"", "", time.Time{}, false},
		{"30m", "", now.Add(30 * time.Minute), false},
		{"4h", "", now.Add(4 * time.Hour), false},
		{"at", "16:00", time.Date(2026, 3, 2, 16, 0, 0, 0, berlin), false},
		{"at", "09:15", time.Date(2026, 3, 3, 9, 15, 0, 0, berlin), false}, // passed today: tomorrow
		{"tomorrow", "", time.Date(2026, 3, 3, 8, 0, 0, 0, berlin), false},
		{"at", "4pm", time.Time{}, true},
		{"90m", "", time.Time{}, true},
	} {
		got, err := parseUntil(tc.choice, tc.at, now.UTC(), berlin)
		if (err != nil) != tc.err || !got.Equal(tc.want) {
			t.Errorf("parseUntil(%q, %q) = %v, %v; want %v (error %v)", tc.choice, tc.at, got, err, tc.want, tc.err)
		}
	}
}

func TestProfileForm(t *testing.T) {
	f := url.Values{
		"id": {"focus"}, "name": {"Focus"}, "visibility": {"private"}, "priority": {"3"}, "sticky": {"on"},
		"on_enter.n":           {"3"},
		"on_enter.0.action":    {"queue_pause"},
		"on_enter.0.enabled":   {"on"},
		"on_enter.0.queues":    {"support, sales"},
		"on_enter.0.reason":    {"Focus"},
		"on_enter.1.action":    {"dnd"},
		"on_enter.1.on":        {"on"},
		"on_enter.2.action":    {"followme"},
		"on_enter.2.enabled":   {"on"},
		"on_enter.2.families":  {"desk", "mobile"},
		"on_enter.2.order":     {"sequential"},
		"on_enter.2.ring_time": {"15"},
		"on_exit.n":            {"0"},
	}
	p, err := profileFromForm(f)
	if err != nil {
		t.Fatal(err)
	}
	if p.ID != "focus" || p.Priority != 3 || !p.Sticky || p.Visibility != presence.VisibilityPrivate || len(p.OnEnter) != 3 {
		t.Fatalf("profile %+v", p)
	}
	if a := p.OnEnter[0]; strings.Join(a.Queues, "|") != "support|sales" || a.Reason != "Focus" || !a.IsEnabled() {
		t.Errorf("queue_pause %+v", a)
	}
	if a := p.OnEnter[1]; a.IsEnabled() || !a.IsOn() {
		t.Errorf("dnd (unticked enabled) %+v", a)
	}
	if a := p.OnEnter[2]; len(a.Families) != 2 || a.Order != presence.RingSequential || a.RingTime != 15 {
		t.Errorf("followme %+v", a)
	}
	editChain(&p.OnEnter, "up", 2)
	editChain(&p.OnEnter, "toggle", 0)
	editChain(&p.OnEnter, "remove", 2)
	editChain(&p.OnEnter, "down", 5) // out of range: nothing
	if len(p.OnEnter) != 2 || p.OnEnter[0].Kind != presence.ActionQueuePause || p.OnEnter[0].IsEnabled() || p.OnEnter[1].Kind != presence.ActionFollowMe {
		t.Errorf("after edits: %+v", p.OnEnter)
	}
	for _, bad := range []url.Values{
		{"on_enter.n": {"1"}, "on_enter.0.action": {"teleport"}},
		{"on_enter.n": {"100000"}},
		{"priority": {"high"}},
	} {
		if _, err := profileFromForm(bad); err == nil {
			t.Errorf("profileFromForm(%v) accepted", bad)
		}
	}
}

func TestLocalPathAndOrigin(t *testing.T) {
	for p, want := range map[string]string{"/journal": "/journal", "//evil.example/": "", "https://evil.example": "", "/\\evil": "", "": ""} {
		if got := localPath(p); got != want {
			t.Errorf("localPath(%q) = %q, want %q", p, got, want)
		}
	}
	for origin, want := range map[string]bool{"": true, "http://app.example": true, "http://evil.example": false, "null": false} {
		r := httptest.NewRequest(http.MethodPost, "http://app.example/switch", nil)
		if origin != "" {
			r.Header.Set("Origin", origin)
		}
		if got := sameOrigin(r); got != want {
			t.Errorf("sameOrigin(%q) = %v", origin, got)
		}
	}
}

// TestAPIStream: the REST API's stream (Handler.Stream behind GET
// /api/v1/events) sends a colleague's private profile as its presence state only, the user
// their own in full.
func TestAPIStream(t *testing.T) {
	a := newApp(t)
	read := func(viewer presence.UserID, admin bool) *bufio.Reader {
		pr, pw := io.Pipe()
		w := &streamRecorder{header: http.Header{}, w: pw}
		r := httptest.NewRequest(http.MethodGet, "/api/v1/events", nil)
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		go func() { a.h.Stream(w, r.WithContext(ctx), viewer, admin); pw.Close() }()
		return bufio.NewReader(pr)
	}
	bob, admin := read("bob", false), read("", true)
	for a.h.Clients() < 2 {
		time.Sleep(5 * time.Millisecond)
	}
	// The view the pages show, as a browser's page load reads it: a change announced before
	// the hub's subscription is up is then sent by its resync, as it is to browsers.
	if _, err := a.h.hub.everyone(context.Background(), time.Now(), presence.EveryoneOptions{Admin: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.engine.Switch(context.Background(), presence.SwitchRequest{User: "alice", Profile: "secret", Info: "the dentist", Source: presence.SourceAPI}); err != nil {
		t.Fatal(err)
	}
	// Both streams are read at once: each is an unbuffered pipe, and one not read would hold
	// its writer up.
	seen := make(chan string, 2)
	for who, rd := range map[string]*bufio.Reader{"bob": bob, "admin": admin} {
		go func() {
			for {
				line, err := rd.ReadString('\n')
				if err != nil {
					seen <- fmt.Sprintf("%s: %v", who, err)
					return
				}
				data, ok := strings.CutPrefix(line, "data: ")
				if !ok || !strings.Contains(data, `"user":"alice"`) {
					continue
				}
				if hidden := !strings.Contains(data, "dentist"); hidden != (who == "bob") {
					seen <- fmt.Sprintf("%s sees %s", who, data)
					return
				}
				seen <- ""
				return
			}
		}()
	}
	for range 2 {
		select {
		case msg := <-seen:
			if msg != "" {
				t.Error(msg)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("alice's switch did not reach both streams within 30 s")
		}
	}
}

// streamRecorder is a ResponseWriter that writes the body to a pipe and can flush.
type streamRecorder struct {
	header http.Header
	w      io.Writer
}

func (s *streamRecorder) Header() http.Header         { return s.header }
func (s *streamRecorder) WriteHeader(int)             {}
func (s *streamRecorder) Write(b []byte) (int, error) { return s.w.Write(b) }
func (s *streamRecorder) Flush()                      {}

// TestSignInThrottledByAddress: failed sign-ins count against the client's address too, over
// every user: a blocked address is refused even the right password.
func TestSignInThrottledByAddress(t *testing.T) {
	topts := throttle.DefaultOptions()
	topts.Failures = 3
	limiter, err := throttle.New(topts)
	if err != nil {
		t.Fatal(err)
	}
	a := newAppWith(t, nil, func(o *Options, _ *redis.Client) { o.Throttle = limiter })
	c := a.client(t)
	for i, name := range []string{"alice", "bob", "carol"} {
		if code := c.signIn(name, "wrong-password-x"); code != http.StatusUnauthorized { // the third blocks from then on
			t.Fatalf("wrong password %d (%s): %d", i+1, name, code)
		}
	}
	if code := c.signIn("alice", testPassword); code != http.StatusTooManyRequests {
		t.Fatalf("right password from a blocked address: %d", code)
	}
}
