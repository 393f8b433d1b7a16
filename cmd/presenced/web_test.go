package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/presenced/presenced/internal/secret"
	"github.com/presenced/presenced/presence"
)

// The browser tests of the web app (issue 12): Debian's chromium, headless, driven by chromedp
// against a presenced wired to the lab Asterisk and Redis; what the page did is judged on the
// PBX through a second AMI login. Chromium is a Debian package like Asterisk: `make browser`
// installs it (make test does), and these tests fail, never skip, without it.

// webPassword is every web test user's password.
const webPassword = "web-test-password"

// webUsers are the users of the web tests, with extensions of their own (27xx).
var (
	webAlice = driftUser{id: "web-alice", ext: "2701"}
	webBob   = driftUser{id: "web-bob", ext: "2702"}
	webAdmin = driftUser{id: "web-admin", ext: "2703"}
	webLock  = driftUser{id: "web-lock", ext: "2704"}
)

// webBobSink is a device of bob's that the tests can call for real (a lab device, which answers
// when astdb LABSINK/<its number> says so): TestWebColleaguesOnACall.
const webBobSink = "Local/9627020@lab-sink"

// startWebDaemon runs presenced for the web users (web-admin is an admin) with
// reconcile.policy.queue_pause report, so that a hand unpause is reported, not repaired.
func startWebDaemon(t *testing.T) (*daemonUnderTest, *pbx) {
	t.Helper()
	return startWebDaemonWith(t, nil)
}

// startWebDaemonWith is startWebDaemon with the configuration edited by edit (when not nil).
func startWebDaemonWith(t *testing.T, edit func(*Config)) (*daemonUnderTest, *pbx) {
	t.Helper()
	return startWebDaemonFor(t, nil, edit)
}

// startWebDaemonFor is startWebDaemonWith with more YAML for some users (by id), e.g. their
// calendar, indented as a user's keys.
func startWebDaemonFor(t *testing.T, more map[string]string, edit func(*Config)) (*daemonUnderTest, *pbx) {
	t.Helper()
	hash, err := secret.NewHash(webPassword)
	if err != nil {
		t.Fatal(err)
	}
	type user struct {
		ID, Name, Ext, Softphone, More string
		Admin                          bool
	}
	var users []user
	for _, u := range []driftUser{webAlice, webBob, webAdmin, webLock} {
		soft := map[driftUser]string{webAlice: "PJSIP/" + u.ext + "-soft", webBob: webBobSink}[u]
		users = append(users, user{ID: u.id, Name: webName(u), Ext: u.ext, Softphone: soft, More: more[u.id], Admin: u == webAdmin})
	}
	yaml := fixture(t, "config/web.yaml", map[string]any{"PasswordHash": hash, "Users": users})
	cfg := profileConfig(t, yaml)
	if edit != nil {
		edit(&cfg)
	}
	ids := []string{webAlice.id, webBob.id, webAdmin.id, webLock.id}
	forgetUsers(t, ids...)
	forgetAccounts(t, ids...)
	p := &pbx{t: t, c: newProbe(t).c}
	d := startDaemon(t, cfg)
	t.Cleanup(func() {
		d.stop(t)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, u := range []driftUser{webAlice, webBob, webAdmin, webLock} {
			for _, q := range driftQueues {
				_ = p.c.QueueRemove(ctx, u.iface(), q)
			}
		}
	})
	d.waitReady(t, 15*time.Second)
	return d, p
}

func webName(u driftUser) string {
	switch u {
	case webAlice:
		return "Alice Archer"
	case webBob:
		return "Bob Baker"
	case webAdmin:
		return "Ada Admin"
	}
	return "Lou Locked"
}

// forgetAccounts deletes what the web app keeps of the users in the lab Redis: passwords they
// set, wrong-password counters, and the failures counted against the tests' address.
func forgetAccounts(t *testing.T, ids ...string) {
	t.Helper()
	rdb := labRedisClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, id := range ids {
		rdb.Del(ctx, "presenced:password:"+id, "presenced:pwfail:user:"+id)
	}
	// Failed sign-ins count against the address too, with the API's failed authentications.
	rdb.Del(ctx, authFailureKeyPrefix+"127.0.0.1")
	t.Cleanup(func() { rdb.Del(context.Background(), authFailureKeyPrefix+"127.0.0.1") })
}

// browser starts a headless chromium of its own for the test, at the given window size.
func browser(t *testing.T, width, height int) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("the browser tests need Debian's chromium (make browser, or apt-get install chromium): %v", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // tests may run as root (CI); the pages are our own
		chromedp.DisableGPU,
		chromedp.WindowSize(width, height),
		chromedp.Flag("lang", "en-GB"),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelCtx := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	// The browser lives as long as the context of its first action: no timeout on that one.
	if err := chromedp.Do(bctx, chromedp.EmulateViewport(int64(width), int64(height))); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	// Two minutes: a schedule entry waits for the next minute (TestWebPersonalSchedule).
	ctx, cancel := context.WithTimeout(bctx, 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// act runs browser actions, failing the test with what was being done.
func act(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// signIn signs in through the sign-in form and waits for the start page.
func signIn(t *testing.T, ctx context.Context, d *daemonUnderTest, name string, landing string) {
	t.Helper()
	act(t, ctx, "sign in as "+name,
		chromedp.Navigate(d.base+"/"),
		chromedp.WaitVisible(chromedp.CSS("#user")),
		chromedp.SendKeys(chromedp.CSS("#user"), name),
		chromedp.SendKeys(chromedp.CSS("#password"), webPassword),
		chromedp.Submit(chromedp.CSS("#password")),
		chromedp.WaitVisible(chromedp.CSS(landing)),
	)
}

// screenshot saves the page as name.png: to docs/screenshots (the README shows them) when
// PRESENCED_SCREENSHOTS=1, else to the test's own directory, so that a test run leaves the
// tree as it was.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	dir := t.TempDir()
	if os.Getenv("PRESENCED_SCREENSHOTS") == "1" {
		dir = filepath.Join("..", "..", "docs", "screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// text is the text of the first element matching sel, "" when there is none.
func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	return eval[string](t, ctx, "read "+sel, fmt.Sprintf(
		`(function(){var e=document.querySelector(%q);return e?e.textContent.trim().replace(/\s+/g," "):""})()`, sel))
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](t *testing.T, ctx context.Context, what, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// TestWebSwitchStatusAndFix: alice signs in with her extension, types an info, picks "for 1
// hour" and clicks Lunch: the PBX pauses her in both queues with the reason Lunch, and the page
// shows Lunch, the info, why and until when. Then a hand unpause (reported, not repaired, under
// queue_pause: report) shows the warning triangle; Fix puts the pause back on the PBX.
func TestWebSwitchStatusAndFix(t *testing.T) {
	d, p := startWebDaemon(t)
	ctx := browser(t, 1440, 900)
	signIn(t, ctx, d, webAlice.ext, "#status-card")
	screenshotBefore := text(t, ctx, "#active-profile")
	if screenshotBefore != "Not set yet" {
		t.Fatalf("a new user's status reads %q", screenshotBefore)
	}
	d.switchTo(t, webAlice.id, "available", "")
	act(t, ctx, "switch to lunch by one click",
		chromedp.Navigate(d.base+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#active-profile[data-id="available"]`)),
		chromedp.SendKeys(chromedp.CSS("#info"), "back at 2pm"),
		chromedp.SetValue(chromedp.CSS("#until"), "1h"),
		chromedp.Click(chromedp.CSS(`button[data-profile="lunch"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#active-profile[data-id="lunch"]`)),
	)
	eventually(t, 5*time.Second, "alice paused for Lunch in both queues", func() bool { return p.inQueues(webAlice, "Lunch") })
	if got := text(t, ctx, "#active-info"); !strings.Contains(got, "back at 2pm") {
		t.Errorf("info on the page: %q", got)
	}
	if got := text(t, ctx, "#why"); !strings.Contains(got, "set by hand") || !strings.Contains(got, webAlice.id) {
		t.Errorf("why on the page: %q", got)
	}
	until := text(t, ctx, "#until-when")
	if !regexp.MustCompile(`\d\d:\d\d, then back to Available`).MatchString(until) {
		t.Errorf("until on the page: %q", until)
	}
	if got := text(t, ctx, ".notice"); got != "Switched." {
		t.Errorf("notice after the switch: %q", got)
	}
	st := d.status(t, webAlice)
	if st.Profile != "lunch" || !strings.Contains(st.raw, `"info":"back at 2pm"`) || !strings.Contains(st.raw, `"until":`) {
		t.Errorf("status through the API after the page's switch: %s", st.raw)
	}
	screenshot(t, ctx, "status-lunch")

	// A hand unpause in support: reported, so the page warns and offers Fix.
	if err := p.c.QueuePause(p.ctx(), webAlice.iface(), "support", false, ""); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the status reports the hand unpause", func() bool {
		_, ok := d.status(t, webAlice).warning("status_mismatch")
		return ok
	})
	act(t, ctx, "reload: the warning triangle",
		chromedp.Navigate(d.base+"/"),
		chromedp.WaitVisible(chromedp.CSS("#warning")))
	warning := text(t, ctx, "#warning")
	want, _ := d.status(t, webAlice).warning("status_mismatch")
	if !strings.Contains(warning, want) || !strings.Contains(warning, "queue support") {
		t.Errorf("warning on the page %q; the status says %q", warning, want)
	}
	screenshot(t, ctx, "status-warning")
	act(t, ctx, "click Fix",
		chromedp.Click(chromedp.CSS("#fix")),
		chromedp.WaitVisible(chromedp.CSS("#in-sync")))
	if !p.inQueues(webAlice, "Lunch") {
		t.Fatal("Fix did not pause alice in support again")
	}
	if got := text(t, ctx, ".notice"); !strings.Contains(got, "put back") {
		t.Errorf("notice after Fix: %q", got)
	}

	// The journal says it in words.
	act(t, ctx, "journal", chromedp.Navigate(d.base+"/journal"), chromedp.WaitVisible(chromedp.CSS(".journal")))
	j := text(t, ctx, ".journal")
	for _, w := range []string{"Fixed", "pause in queue support (Lunch): done", "Switched from available to lunch", "by web-alice"} {
		if !strings.Contains(j, w) {
			t.Errorf("journal lacks %q: %s", w, j)
		}
	}
	screenshot(t, ctx, "journal")
}

// TestWebColleaguesLive: with the colleagues page open, a colleague's switch through the API
// shows in the list within 1 s, without a reload; a private profile shows to colleagues only as
// its presence state.
func TestWebColleaguesLive(t *testing.T) {
	d, _ := startWebDaemon(t)
	d.switchTo(t, webBob.id, "available", "")
	ctx := browser(t, 1440, 900)
	signIn(t, ctx, d, webAlice.id, "#status-card")
	act(t, ctx, "open colleagues",
		chromedp.Navigate(d.base+"/colleagues"),
		chromedp.WaitVisible(chromedp.CSS("#u-web-bob")),
		// the event stream is open before the switch
		chromedp.WaitVisible(chromedp.CSS(`html[data-live="open"]`)),
	)
	eval[bool](t, ctx, "mark the page", `window.notReloaded = true`)
	if got := text(t, ctx, "#u-web-bob .label"); got != "Available" {
		t.Fatalf("bob before: %q", got)
	}
	for _, tc := range []struct {
		profile, info, label, infoShown string
	}{
		{"lunch", "back at 1", "Lunch", "back at 1"},
		{"meeting", "secret project", "Do not disturb", ""}, // private: the presence state only
		{"available", "", "Available", ""},
	} {
		d.switchTo(t, webBob.id, tc.profile, tc.info)
		applied := time.Now()
		took := eventually(t, 3*time.Second, "bob's row shows "+tc.label, func() bool {
			return text(t, ctx, "#u-web-bob .label") == tc.label
		})
		t.Logf("switch to %s shown after %v", tc.profile, time.Since(applied).Round(time.Millisecond))
		if took > time.Second {
			t.Errorf("switch to %s took %v to show, want at most 1s", tc.profile, took)
		}
		if got := text(t, ctx, "#u-web-bob .pinfo"); got != tc.infoShown {
			t.Errorf("bob's info after %s: %q, want %q", tc.profile, got, tc.infoShown)
		}
		if tc.profile == "lunch" {
			act(t, ctx, "let the highlight fade", chromedp.Sleep(1300*time.Millisecond))
			screenshot(t, ctx, "colleagues")
		}
	}
	if !eval[bool](t, ctx, "no reload", `window.notReloaded === true`) {
		t.Error("the page was reloaded")
	}
	// Search (without JavaScript, the form; with it, as one types).
	act(t, ctx, "search", chromedp.SendKeys(chromedp.CSS("#q"), "2702"))
	if visible := eval[int](t, ctx, "count", `document.querySelectorAll(".person:not([hidden])").length`); visible != 1 {
		t.Errorf("searching 2702 leaves %d rows", visible)
	}
}

// webClient is a plain HTTP client with cookies, for what a browser would not do.
type webClient struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newWebClient(t *testing.T, base string) *webClient {
	jar, _ := cookiejar.New(nil)
	return &webClient{t: t, base: base, c: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// get fetches a page and returns its status, body and the first CSRF token in it.
func (w *webClient) get(path string) (int, string, string) {
	w.t.Helper()
	resp, err := w.c.Get(w.base + path)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	tok := ""
	if m := csrfField.FindStringSubmatch(string(b)); m != nil {
		tok = m[1]
	}
	return resp.StatusCode, string(b), tok
}

func (w *webClient) post(path string, form url.Values) (int, string) {
	w.t.Helper()
	resp, err := w.c.PostForm(w.base+path, form)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (w *webClient) signIn(name, password string) (int, string) {
	w.t.Helper()
	_, _, tok := w.get("/signin")
	return w.post("/signin", url.Values{"csrf": {tok}, "user": {name}, "password": {password}})
}

// TestWebCSRFAndLockout: a switch posted without the session's CSRF token is refused and
// changes nothing on the PBX; five wrong passwords lock the user out, the right one included;
// a set-password link from the admin page unlocks with a new password.
func TestWebCSRFAndLockout(t *testing.T) {
	d, p := startWebDaemon(t)
	d.switchTo(t, webAlice.id, "available", "")

	w := newWebClient(t, d.base)
	if code, _ := w.signIn(webAlice.id, webPassword); code != http.StatusSeeOther {
		t.Fatalf("sign in: %d", code)
	}
	_, _, tok := w.get("/")
	if tok == "" {
		t.Fatal("the status page has no CSRF token")
	}
	for _, form := range []url.Values{
		{"profile": {"lunch"}},
		{"profile": {"lunch"}, "csrf": {"forged"}},
	} {
		if code, body := w.post("/switch", form); code != http.StatusForbidden || !strings.Contains(body, "Refused") {
			t.Errorf("switch with csrf %q: %d", form.Get("csrf"), code)
		}
	}
	// Another user's state is refused even with the right token.
	if code, _ := w.post("/switch", url.Values{"profile": {"lunch"}, "csrf": {tok}, "user": {webBob.id}}); code != http.StatusForbidden {
		t.Errorf("switching bob as alice: %d", code)
	}
	time.Sleep(300 * time.Millisecond)
	if !p.inQueues(webAlice, "") || d.status(t, webAlice).Profile != "available" {
		t.Fatal("a refused form changed the PBX or the state")
	}
	if code, _ := w.post("/switch", url.Values{"profile": {"lunch"}, "csrf": {tok}}); code != http.StatusSeeOther {
		t.Fatalf("switch with the token: %d", code)
	}
	eventually(t, 5*time.Second, "paused for lunch", func() bool { return p.inQueues(webAlice, "Lunch") })

	// Sign-out ends the session: the token no longer works.
	if code, _ := w.post("/signout", url.Values{"csrf": {tok}}); code != http.StatusSeeOther {
		t.Fatalf("sign out: %d", code)
	}
	if code, _ := w.post("/switch", url.Values{"profile": {"available"}, "csrf": {tok}}); code != http.StatusUnauthorized {
		t.Errorf("switch after sign-out: %d", code)
	}

	// Wrong passwords: four are wrong, the fifth locks, and then the right one is refused too.
	l := newWebClient(t, d.base)
	for i := 1; i <= 5; i++ {
		code, body := l.signIn(webLock.ext, "wrong-password-"+fmt.Sprint(i))
		want := http.StatusUnauthorized
		if i == 5 {
			want = http.StatusTooManyRequests
		}
		if code != want {
			t.Fatalf("wrong password %d: %d, want %d", i, code, want)
		}
		if i == 5 && !strings.Contains(body, "locked") {
			t.Errorf("the fifth wrong password does not say locked: %s", body)
		}
	}
	if code, _ := l.signIn(webLock.id, webPassword); code != http.StatusTooManyRequests {
		t.Fatalf("right password while locked: %d", code)
	}

	// The admin makes a set-password link; it sets a new password and lifts the lockout.
	a := newWebClient(t, d.base)
	if code, _ := a.signIn(webAdmin.id, webPassword); code != http.StatusSeeOther {
		t.Fatalf("admin sign in: %d", code)
	}
	_, _, atok := a.get("/admin")
	code, body := a.post("/admin/link", url.Values{"csrf": {atok}, "user": {webLock.id}})
	m := regexp.MustCompile(`value="(http://[^"]+/set-password\?token=[^"]+)"`).FindStringSubmatch(body)
	if code != http.StatusOK || m == nil {
		t.Fatalf("admin link: %d %s", code, body)
	}
	link, _ := url.Parse(strings.ReplaceAll(m[1], "&amp;", "&"))
	if code, _ := l.post("/set-password", url.Values{"token": {link.Query().Get("token")}, "password": {"a-brand-new-one"},
		"confirm": {"a-brand-new-one"}}); code != http.StatusOK {
		t.Fatalf("set password by link: %d", code)
	}
	if code, _ := l.signIn(webLock.ext, "a-brand-new-one"); code != http.StatusSeeOther {
		t.Fatalf("sign in with the new password: %d", code)
	}
}

// TestWebLayoutAndKeyboard: the main pages at 390×844 (a phone) and 1440×900 (a desktop),
// the profile editor with a row of each of several action kinds among them, have no horizontal
// scroll; every form control has a label; Tab reaches every control (but disabled ones, such
// as the first row's Up).
func TestWebLayoutAndKeyboard(t *testing.T) {
	d, _ := startWebDaemon(t)
	d.switchTo(t, webAlice.id, "lunch", "back at 2pm, after the dentist appointment downtown")
	d.switchTo(t, webBob.id, "available", "")
	d.switchTo(t, webAdmin.id, "available", "")
	code, res := d.call(t, http.MethodPut, "/api/v1/users/"+webAdmin.id+"/profiles/layout", webAdmin.token(), map[string]any{
		"name": "Layout with a long name to wrap on a phone", "icon": "focus", "colour": "purple",
		"on_enter": []any{
			map[string]any{"action": "queue_pause", "queues": []string{"support", "sales"}, "reason": "A reason long enough to wrap on a phone screen"},
			map[string]any{"action": "followme", "families": []string{"desk"}, "order": "sequential", "ring_time": 20},
			map[string]any{"action": "forward", "type": "busy", "to": "2701"},
			map[string]any{"action": "caller_id", "value": webAdmin.ext, "families": []string{"desk"}},
			map[string]any{"action": "presence", "state": "away", "message": "in the workshop", "disabled": true},
		},
		"on_exit": []any{map[string]any{"action": "queue_unpause", "queues": []string{"all"}}},
	})
	if code != http.StatusCreated {
		t.Fatalf("create the profile with action rows: %d %v", code, res)
	}
	for _, size := range []struct {
		name          string
		width, height int
	}{{"phone", 390, 844}, {"desktop", 1440, 900}} {
		t.Run(size.name, func(t *testing.T) {
			ctx := browser(t, size.width, size.height)
			if size.name == "phone" {
				act(t, ctx, "phone", chromedp.EmulateViewport(int64(size.width), int64(size.height), chromedp.EmulateScale(2), chromedp.EmulateMobile))
				act(t, ctx, "sign-in page", chromedp.Navigate(d.base+"/signin"), chromedp.WaitVisible(chromedp.CSS("#user")))
				screenshot(t, ctx, "signin-phone")
			}
			signIn(t, ctx, d, webAdmin.id, "#status-card")
			for _, path := range []string{"/", "/colleagues", "/journal", "/password", "/admin", "/?user=" + webAlice.id, "/profiles", "/profiles/new", "/profiles/layout", "/schedule"} {
				act(t, ctx, "open "+path, chromedp.Navigate(d.base+path), chromedp.WaitVisible(chromedp.CSS("main")))
				type measure struct {
					ScrollWidth, Width int
					Unlabelled         []string
					Controls           int
				}
				res := eval[measure](t, ctx, "measure "+path, `(function(){
					var ctl = Array.from(document.querySelectorAll("a[href],button,input:not([type=hidden]):not([hidden]),select"))
						.filter(function(e){ return e.offsetParent !== null && !e.disabled; });
					ctl.forEach(function(e, i){ e.setAttribute("data-k", i); });
					var unl = Array.from(document.querySelectorAll("input:not([type=hidden]):not([hidden]),select"))
						.filter(function(e){ return e.labels.length === 0 && !e.getAttribute("aria-label"); })
						.map(function(e){ return e.outerHTML; });
					return {ScrollWidth: document.documentElement.scrollWidth, Width: window.innerWidth, Unlabelled: unl, Controls: ctl.length};
				})()`)
				if res.ScrollWidth > res.Width {
					t.Errorf("%s at %s: scroll width %d > window %d", path, size.name, res.ScrollWidth, res.Width)
				}
				if len(res.Unlabelled) > 0 {
					t.Errorf("%s: controls without a label: %v", path, res.Unlabelled)
				}
				// Tab through the page: every visible control gets the focus (a time input takes
				// a Tab per field, hence twice as many).
				seen := map[string]bool{}
				for i := 0; i < 2*res.Controls+3; i++ {
					act(t, ctx, "tab", chromedp.KeyEvent("\t"))
					seen[eval[string](t, ctx, "focus", `document.activeElement ? (document.activeElement.getAttribute("data-k") || "") : ""`)] = true
				}
				for i := 0; i < res.Controls; i++ {
					if !seen[fmt.Sprint(i)] {
						html := eval[string](t, ctx, "which", fmt.Sprintf(`document.querySelector('[data-k="%d"]').outerHTML`, i))
						t.Errorf("%s at %s: Tab never reaches %s", path, size.name, html)
					}
				}
				if path == "/profiles/layout" {
					if rows := eval[int](t, ctx, "rows", `document.querySelectorAll(".arow").length`); rows != 6 {
						t.Errorf("the editor shows %d action rows, want 6", rows)
					}
				}
				name := map[string]string{"/": "status", "/colleagues": "colleagues", "/admin": "admin", "/profiles/layout": "profile-editor"}[path]
				if name != "" {
					screenshot(t, ctx, name+"-"+size.name)
				}
			}
		})
	}
}

// TestLabWebPasswords: the passwords the README gives for the lab's web app are the lab
// configuration's, and carol is its admin.
func TestLabWebPasswords(t *testing.T) {
	cfg, _, err := loadConfig([]string{"-config", filepath.Join("..", "..", "deploy", "presenced.lab.yaml")}, minimalEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"alice", "bob", "carol"} {
		pw := id + "-password"
		if !strings.Contains(string(readme), "`"+pw+"`") {
			t.Errorf("README does not give %s's password %s", id, pw)
		}
		u, ok := cfg.catalog.User(presence.UserID(id))
		if !ok {
			t.Fatalf("no lab user %s", id)
		}
		h, err := secret.ParseHash(u.PasswordHash)
		if err != nil || !h.Verify(pw) {
			t.Errorf("%s's password_hash is not of %q (%v)", id, pw, err)
		}
		if u.Admin != (id == "carol") {
			t.Errorf("%s admin = %v", id, u.Admin)
		}
	}
}

// TestWebProfileEditor: alice makes a personal profile with three actions in the editor, moves
// one up and disables another, saves, previews and switches to it: the PBX shows exactly the
// enabled actions. Deleting it while it is active is refused on the page; a system-wide profile
// shows read-only.
func TestWebProfileEditor(t *testing.T) {
	d, p := startWebDaemon(t)
	d.switchTo(t, webAlice.id, "available", "")
	ctx := browser(t, 1440, 900)
	signIn(t, ctx, d, webAlice.id, "#status-card")
	add := func(kind, wantRow string) {
		t.Helper()
		act(t, ctx, "add "+kind,
			chromedp.SetValue(chromedp.CSS("#add_on_enter"), kind),
			chromedp.Click(chromedp.CSS(`button[value="add on_enter"]`)),
			chromedp.WaitVisible(chromedp.CSS("#"+wantRow)))
	}
	act(t, ctx, "new profile",
		chromedp.Navigate(d.base+"/profiles"),
		chromedp.Click(chromedp.CSS(`a[href="/profiles/new"]`)),
		chromedp.WaitVisible(chromedp.CSS("#id")),
		chromedp.SendKeys(chromedp.CSS("#id"), "focus"),
		chromedp.SendKeys(chromedp.CSS("#name"), "Focus time"),
		chromedp.SendKeys(chromedp.CSS("#colour"), "purple"),
		chromedp.SetValue(chromedp.CSS("#icon"), "focus"),
		chromedp.SetValue(chromedp.CSS("#visibility"), "private"))
	add("queue_pause", "on_enter-0-row")
	act(t, ctx, "reason", chromedp.SendKeys(chromedp.CSS("#on_enter-0-reason"), "Focus"))
	add("dnd", "on_enter-1-row")
	add("presence", "on_enter-2-row")
	act(t, ctx, "presence fields",
		chromedp.SetValue(chromedp.CSS("#on_enter-2-state"), "dnd"),
		chromedp.SendKeys(chromedp.CSS("#on_enter-2-message"), "deep work"),
		// presence up, above dnd; then disable dnd (now the third)
		chromedp.Click(chromedp.CSS(`button[value="up on_enter 2"]`)),
		chromedp.WaitReady(chromedp.CSS(`#on_enter-1-row input[value="presence"]`)),
		chromedp.Click(chromedp.CSS(`button[value="toggle on_enter 2"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#on_enter-2-row.off`)))
	if got := eval[string](t, ctx, "reason kept", `document.querySelector("#on_enter-0-reason").value`); got != "Focus" {
		t.Fatalf("the reason typed before the edits reads %q", got)
	}
	screenshot(t, ctx, "profile-editor")
	act(t, ctx, "save", chromedp.Click(chromedp.CSS("#save")), chromedp.WaitVisible(chromedp.CSS(".notice, #problems")))
	if got := text(t, ctx, ".notice"); got != "Profile saved." {
		t.Fatalf("after save: %q (%s)", got, text(t, ctx, "#problems"))
	}
	code, saved := d.call(t, http.MethodGet, "/api/v1/users/"+webAlice.id+"/profiles/focus", webAlice.token(), nil)
	if code != http.StatusOK {
		t.Fatalf("GET focus: %d %v", code, saved)
	}
	var kinds []string
	var enabled []bool
	for _, a := range saved["on_enter"].([]any) {
		m := a.(map[string]any)
		kinds = append(kinds, m["action"].(string))
		enabled = append(enabled, m["disabled"] != true)
	}
	if fmt.Sprint(kinds) != "[queue_pause presence dnd]" || fmt.Sprint(enabled) != "[true true false]" || saved["icon"] != "focus" {
		t.Fatalf("saved on_enter: %v enabled %v", kinds, enabled)
	}

	act(t, ctx, "preview", chromedp.Click(chromedp.CSS("#preview")), chromedp.WaitVisible(chromedp.CSS("#preview-result")))
	if got := text(t, ctx, "#preview-result"); !strings.Contains(got, "pause in queue support (Focus)") || strings.Contains(got, "DND") {
		t.Errorf("preview: %q", got)
	}
	// The preview is of the profile as edited, unsaved: another pause reason shows in it, and
	// the stored profile keeps its own.
	eval[bool](t, ctx, "drop the first preview", `(function(){document.getElementById("preview-result").remove();return true})()`)
	act(t, ctx, "edit the reason and preview",
		chromedp.SetValue(chromedp.CSS("#on_enter-0-reason"), "Deep work"),
		chromedp.Click(chromedp.CSS("#preview")),
		chromedp.WaitVisible(chromedp.CSS("#preview-result")))
	if got := text(t, ctx, "#preview-result"); !strings.Contains(got, "pause in queue support (Deep work)") || strings.Contains(got, "(Focus)") {
		t.Errorf("preview of the edit: %q", got)
	}
	if got := eval[string](t, ctx, "reason kept", `document.querySelector("#on_enter-0-reason").value`); got != "Deep work" {
		t.Errorf("the edit is not kept in the form after the preview: %q", got)
	}
	_, saved = d.call(t, http.MethodGet, "/api/v1/users/"+webAlice.id+"/profiles/focus", webAlice.token(), nil)
	if r := saved["on_enter"].([]any)[0].(map[string]any)["reason"]; r != "Focus" {
		t.Errorf("the preview changed the stored profile: reason %v", r)
	}
	screenshot(t, ctx, "profile-preview")
	act(t, ctx, "switch to it",
		chromedp.Navigate(d.base+"/"),
		chromedp.Click(chromedp.CSS(`button[data-profile="focus"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#active-profile[data-id="focus"]`)))
	eventually(t, 5*time.Second, "paused for Focus", func() bool { return p.inQueues(webAlice, "Focus") })
	ps, err := p.c.PresenceState(p.ctx(), "CustomPresence:"+webAlice.ext)
	// A private profile shows on the PBX with the state's neutral text, not its message.
	if err != nil || ps.State != "dnd" || ps.Message != "Do not disturb" {
		t.Errorf("presence on the PBX: %+v %v", ps, err)
	}
	if v, ok := p.db("DND", webAlice.ext); ok && v == "YES" {
		t.Errorf("the disabled dnd action is in effect: DND/%s = %q", webAlice.ext, v)
	}

	// Active: locked in the editor, and its deletion refused.
	act(t, ctx, "editor of the active profile", chromedp.Navigate(d.base+"/profiles/focus"), chromedp.WaitVisible(chromedp.CSS("#locked")))
	if !eval[bool](t, ctx, "disabled", `document.querySelector("#editor fieldset").disabled`) {
		t.Error("the active profile's editor is not locked")
	}
	act(t, ctx, "delete the active profile",
		chromedp.Navigate(d.base+"/profiles"),
		chromedp.Click(chromedp.CSS(`#p-focus button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(".error")))
	if got := text(t, ctx, ".error"); !strings.Contains(got, "active") {
		t.Errorf("deleting the active profile: %q", got)
	}
	if code, _ := d.call(t, http.MethodGet, "/api/v1/users/"+webAlice.id+"/profiles/focus", webAlice.token(), nil); code != http.StatusOK {
		t.Fatalf("the active profile was deleted: %d", code)
	}
	screenshot(t, ctx, "profiles")
	// A system-wide profile is read-only.
	act(t, ctx, "system profile", chromedp.Navigate(d.base+"/profiles/lunch"), chromedp.WaitVisible(chromedp.CSS("#locked")))
	if got := text(t, ctx, "#locked"); !strings.Contains(got, "system-wide") {
		t.Errorf("system profile: %q", got)
	}
	// After a switch away, it can be deleted.
	d.switchTo(t, webAlice.id, "available", "")
	act(t, ctx, "delete", chromedp.Navigate(d.base+"/profiles"),
		chromedp.Click(chromedp.CSS(`#p-focus button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(".notice")))
	if code, _ := d.call(t, http.MethodGet, "/api/v1/users/"+webAlice.id+"/profiles/focus", webAlice.token(), nil); code != http.StatusNotFound {
		t.Errorf("after delete: %d", code)
	}
}

// TestWebPersonalSchedule: alice sets her own time zone (Asia/Kolkata, UTC+5:30; an unknown
// one is refused at the field) and adds a schedule entry of her own for the next minute in it
// on the schedule page (real time); it shows in the week view and switches her when due: the
// PBX pauses her for Lunch and her status says a schedule did it.
func TestWebPersonalSchedule(t *testing.T) {
	d, p := startWebDaemon(t)
	d.switchTo(t, webAlice.id, "available", "")
	ctx := browser(t, 1440, 900)
	signIn(t, ctx, d, webAlice.id, "#status-card")
	// Alice's own time zone, half an hour off the daemon's (UTC in the tests): her entry's
	// time is in it.
	kolkata, err := time.LoadLocation("Asia/Kolkata")
	if err != nil {
		t.Fatal(err)
	}
	act(t, ctx, "set the time zone",
		chromedp.Navigate(d.base+"/schedule"),
		chromedp.WaitVisible(chromedp.CSS("#zone-form")),
		chromedp.SetValue(chromedp.CSS("#time_zone"), "Asia/Calcutta-nope"),
		chromedp.Click(chromedp.CSS("#save-zone")),
		chromedp.WaitVisible(chromedp.CSS("#time_zone-err")))
	if got := text(t, ctx, "#time_zone-err"); !strings.Contains(got, "is not a known time zone") {
		t.Errorf("an unknown zone: %q", got)
	}
	act(t, ctx, "set the time zone",
		chromedp.SetValue(chromedp.CSS("#time_zone"), "Asia/Kolkata"),
		chromedp.Click(chromedp.CSS("#save-zone")),
		chromedp.WaitVisible(chromedp.CSS(".notice")))
	if got := text(t, ctx, "#tz"); got != "Asia/Kolkata" {
		t.Fatalf("time zone on the page: %q (%s)", got, text(t, ctx, ".notice"))
	}
	at := time.Now().Add(10 * time.Second).Truncate(time.Minute).Add(time.Minute).In(kolkata)
	act(t, ctx, "add an entry",
		chromedp.WaitVisible(chromedp.CSS("#add-entry")),
		chromedp.SendKeys(chromedp.CSS("#sname"), "web-lunch"),
		chromedp.SetValue(chromedp.CSS("#sprofile"), "lunch"),
		chromedp.SetValue(chromedp.CSS("#skind"), "at"),
		chromedp.SetValue(chromedp.CSS("#sat"), at.Format("15:04")),
		chromedp.Click(chromedp.CSS("#save-entry")),
		chromedp.WaitVisible(chromedp.CSS("#s-web-lunch, #problems")))
	if got := text(t, ctx, ".notice"); got != "Schedule entry saved." {
		t.Fatalf("after saving: %q %q", got, text(t, ctx, "#problems"))
	}
	if week := text(t, ctx, "#week"); !strings.Contains(week, at.Format("15:04")+" Lunch (web-lunch)") {
		t.Errorf("week view: %s", week)
	}
	code, sched := d.call(t, http.MethodGet, "/api/v1/users/"+webAlice.id+"/schedule", webAlice.token(), nil)
	if code != http.StatusOK || !strings.Contains(toJSON(sched), `"name":"web-lunch"`) || sched["time_zone"] != "Asia/Kolkata" {
		t.Fatalf("schedule through the API: %d %v", code, sched)
	}
	screenshot(t, ctx, "schedule")
	eventually(t, time.Until(at)+10*time.Second, "the entry switches alice to lunch", func() bool {
		return d.status(t, webAlice).Profile == "lunch"
	})
	if late := time.Since(at); late > 5*time.Second {
		t.Errorf("switched %v after the entry's time", late)
	}
	eventually(t, 5*time.Second, "paused for Lunch", func() bool { return p.inQueues(webAlice, "Lunch") })
	act(t, ctx, "status", chromedp.Navigate(d.base+"/"), chromedp.WaitVisible(chromedp.CSS(`#active-profile[data-id="lunch"]`)))
	if why := text(t, ctx, "#why"); !strings.Contains(why, "set by a schedule") || !strings.Contains(why, "schedule web-lunch") {
		t.Errorf("why: %q", why)
	}
	// Disable, then delete, on the page.
	act(t, ctx, "disable",
		chromedp.Navigate(d.base+"/schedule"),
		chromedp.Click(chromedp.CSS(`form[action="/schedule/web-lunch/toggle"] button`)),
		chromedp.WaitVisible(chromedp.CSS("#s-web-lunch.off")))
	act(t, ctx, "delete",
		chromedp.Click(chromedp.CSS(`form[action="/schedule/web-lunch/delete"] button`)),
		chromedp.WaitNotPresent(chromedp.CSS("#s-web-lunch")))
}

// TestPasswordLinkCLI: presenced -password-link makes a set-password link in the configured
// Redis, which the web app then accepts; with the embedded store it refuses, saying why.
func TestPasswordLinkCLI(t *testing.T) {
	path := writeFile(t, "presenced.yaml", fixture(t, "config/cli-user.yaml", nil))
	var stdout, stderr strings.Builder
	if code := realMain([]string{"-config", path, "-password-link", "2790"}, minimalEnv, &stdout, &stderr); code != 2 ||
		!strings.Contains(stderr.String(), "embedded store") {
		t.Fatalf("embedded store: exit %d, %q", code, stderr.String())
	}
	stdout.Reset()
	stderr.Reset()
	env := append([]string{"PRESENCED_REDIS_URL=" + env.RedisURL}, minimalEnv...)
	if code := realMain([]string{"-config", path, "-password-link", "2790"}, env, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	m := regexp.MustCompile(`^/set-password\?token=([A-Za-z0-9_-]{43})\n\(for cli-user, once, until `).FindStringSubmatch(stdout.String())
	if m == nil {
		t.Fatalf("printed %q", stdout.String())
	}
	sum := sha256.Sum256([]byte(m[1]))
	rdb := labRedisClient(t)
	if v, err := rdb.Get(context.Background(), "presenced:pwlink:"+hex.EncodeToString(sum[:])).Result(); err != nil || v != "cli-user" {
		t.Fatalf("the link in Redis: %q, %v", v, err)
	}
	if code := realMain([]string{"-config", path, "-password-link", "nobody"}, env, &stdout, &stderr); code != 2 {
		t.Errorf("unknown user: exit %d", code)
	}
}

// TestWebDeviceWarning: on My status alice says her browser is at her desk phone; in a
// profile that rings only her softphone the warning triangle names the desk phone, as the
// API's status for that device does; "any of my phones" forgets the choice.
func TestWebDeviceWarning(t *testing.T) {
	d, _ := startWebDaemon(t)
	code, res := d.call(t, http.MethodPut, "/api/v1/users/"+webAlice.id+"/profiles/soft-only", webAlice.token(),
		map[string]any{"name": "Softphone only", "on_enter": []any{map[string]any{"action": "followme", "families": []string{"softphone"}}}})
	if code != http.StatusCreated {
		t.Fatalf("create soft-only: %d %v", code, res)
	}
	d.switchTo(t, webAlice.id, "soft-only", "")
	ctx := browser(t, 1440, 900)
	signIn(t, ctx, d, webAlice.id, "#status-card")
	if got := text(t, ctx, "#status-card"); strings.Contains(got, "Your desk phone") {
		t.Fatalf("a device named before any was chosen: %q", got)
	}
	desk := "PJSIP/" + webAlice.ext
	act(t, ctx, "choose the desk phone",
		chromedp.SetValue(chromedp.CSS("#device"), desk),
		chromedp.Click(chromedp.CSS("#set-device")),
		chromedp.WaitVisible(chromedp.CSS(".notice")),
		chromedp.WaitVisible(chromedp.CSS("#warning")))
	want := "Your desk phone " + desk + " will not ring in this profile."
	if got := text(t, ctx, "#warning"); !strings.Contains(got, want) {
		t.Errorf("warning: %q, want %q", got, want)
	}
	if got := eval[string](t, ctx, "choice", `document.querySelector("#device").value`); got != desk {
		t.Errorf("the choice shown: %q", got)
	}
	screenshot(t, ctx, "status-device")
	code, st := d.call(t, http.MethodGet, "/api/v1/users/"+webAlice.id+"?device="+desk, webAlice.token(), nil)
	if code != http.StatusOK || !strings.Contains(toJSON(st), `"code":"device_will_not_ring"`) || !strings.Contains(toJSON(st), `"devices":["`+desk+`"]`) {
		t.Errorf("the API's status for the desk phone: %d %s", code, toJSON(st))
	}
	if code, _ := d.call(t, http.MethodGet, "/api/v1/users/"+webAlice.id+"?device=PJSIP/"+webBob.ext, webAlice.token(), nil); code != http.StatusBadRequest {
		t.Errorf("bob's phone as alice's device: %d", code)
	}
	// The same notice comes back: the old one goes first, so that the wait is for the new page.
	eval[bool](t, ctx, "drop the notice", `(function(){document.querySelector(".notice").remove();return true})()`)
	act(t, ctx, "any phone",
		chromedp.SetValue(chromedp.CSS("#device"), ""),
		chromedp.Click(chromedp.CSS("#set-device")),
		chromedp.WaitVisible(chromedp.CSS(".notice")))
	if got := text(t, ctx, "#status-card"); strings.Contains(got, "Your desk phone") {
		t.Errorf("after choosing any phone: %q", got)
	}
	d.switchTo(t, webAlice.id, "available", "")
}

// TestWebCalendarOnStatus (issue 15, item 1): the status page says what the user's calendar
// will do: the next event that switches them, with its times; and, when the calendar cannot
// be read, since when (its last plan stays in force). Bob's calendar is an ICS feed the test
// serves.
func TestWebCalendarOnStatus(t *testing.T) {
	var mu sync.Mutex
	down := false
	start := time.Now().Add(2 * time.Hour).Truncate(time.Minute)
	end := start.Add(time.Hour)
	const stamp = "20060102T150405Z"
	feed := strings.ReplaceAll("BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//presenced//test//EN\nBEGIN:VEVENT\nUID:budget@test\n"+
		"DTSTART:"+start.UTC().Format(stamp)+"\nDTEND:"+end.UTC().Format(stamp)+"\nSUMMARY:m: Budget review\nEND:VEVENT\nEND:VCALENDAR\n", "\n", "\r\n")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if down {
			http.Error(w, "maintenance", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/calendar")
		io.WriteString(w, feed)
	}))
	t.Cleanup(srv.Close)
	d, _ := startWebDaemonFor(t, map[string]string{webBob.id: "    calendar: {type: ics, url: \"" + srv.URL + "/bob.ics\"}\n"},
		func(c *Config) { c.Calendar.PollInterval = 300 * time.Millisecond }) // below the minimum a file may set
	d.switchTo(t, webBob.id, "available", "")
	ctx := browser(t, 1440, 900)
	signIn(t, ctx, d, webBob.ext, "#status-card")

	// The page reads the calendar's plan when it loads: reloaded until the first poll is in.
	calendarLine := func(what string, ok func(string) bool) string {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			act(t, ctx, "load the status page", chromedp.Navigate(d.base+"/"), chromedp.WaitVisible(chromedp.CSS("#status-card")))
			line := text(t, ctx, "#calendar")
			if ok(line) {
				return line
			}
			if time.Now().After(deadline) {
				t.Fatalf("the status page's calendar line %q: not %s", line, what)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	// An event that ends the next day shows "23:15–tomorrow 00:15".
	line := calendarLine("the next event", func(l string) bool { return strings.Contains(l, "next event 'm: Budget review'") })
	if !strings.Contains(line, start.Format("15:04")+"–") || !strings.Contains(line, end.Format("15:04")) {
		t.Fatalf("calendar line %q, want the event's times (…%s–…%s)", line, start.Format("15:04"), end.Format("15:04"))
	}
	screenshot(t, ctx, "status-calendar")

	mu.Lock()
	down = true
	mu.Unlock()
	line = calendarLine("unreachable", func(l string) bool { return strings.HasPrefix(l, "unreachable since ") })
	if !strings.Contains(line, "503") || !strings.Contains(line, "its last plan stays in force") ||
		!strings.Contains(line, "next event 'm: Budget review'") {
		t.Fatalf("calendar line while the feed fails: %q", line)
	}
	if cls := eval[string](t, ctx, "the line's class", `document.querySelector("#calendar").className`); cls != "stale" {
		t.Errorf("the calendar line's class %q, want stale", cls)
	}
	screenshot(t, ctx, "status-calendar-unreachable")
}
