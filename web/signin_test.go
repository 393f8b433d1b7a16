package web

import (
	"context"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/presenced/presenced/presence"
)

// TestCookieFlags: the sign-in form's cookie and the session cookie are HttpOnly and
// SameSite=Strict always, and Secure exactly when the browser came over TLS: directly, or
// through a trusted proxy that says so in X-Forwarded-Proto (from anyone else the header
// means nothing).
func TestCookieFlags(t *testing.T) {
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	for _, tc := range []struct {
		name    string
		tls     bool
		proxies []netip.Prefix
		proto   string // X-Forwarded-Proto sent
		secure  bool
	}{
		{"plain HTTP", false, nil, "", false},
		{"TLS", true, nil, "", true},
		{"trusted proxy saying https", false, loopback, "https", true},
		{"trusted proxy saying http", false, loopback, "http", false},
		{"untrusted peer saying https", false, nil, "https", false},
		{"proxy trusted elsewhere saying https", false, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, "https", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newAppWith(t, nil, func(o *Options, _ *redis.Client) { o.TrustedProxies = tc.proxies })
			c := a.client(t)
			if tc.tls {
				srv := httptest.NewTLSServer(a.h)
				t.Cleanup(srv.Close)
				hc := srv.Client()
				hc.Jar, _ = cookiejar.New(nil)
				hc.CheckRedirect = c.c.CheckRedirect
				c = &browserClient{t: t, base: srv.URL, c: hc}
			}
			do := func(method, path string, form url.Values) *http.Response {
				t.Helper()
				req, _ := http.NewRequest(method, c.base+path, strings.NewReader(form.Encode()))
				if form != nil {
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				}
				if tc.proto != "" {
					req.Header.Set("X-Forwarded-Proto", tc.proto)
				}
				resp, err := c.c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				return resp
			}
			check := func(resp *http.Response, name string) *http.Cookie {
				t.Helper()
				for _, ck := range resp.Cookies() {
					if ck.Name != name {
						continue
					}
					if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Secure != tc.secure || ck.Path != "/" {
						t.Errorf("%s: HttpOnly %v, SameSite %v, Secure %v (want %v), Path %q; Set-Cookie %q",
							name, ck.HttpOnly, ck.SameSite, ck.Secure, tc.secure, ck.Path, resp.Header.Values("Set-Cookie"))
					}
					return ck
				}
				t.Fatalf("no %s cookie in %q", name, resp.Header.Values("Set-Cookie"))
				return nil
			}
			form := check(do(http.MethodGet, "/signin", nil), signinCookie)
			resp := do(http.MethodPost, "/signin", url.Values{"csrf": {form.Value}, "user": {"alice"}, "password": {testPassword}})
			if resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("sign in: %d", resp.StatusCode)
			}
			if s := check(resp, sessionCookie); s.Value == "" || s.MaxAge != 0 {
				t.Errorf("session cookie value %q, Max-Age %d: want a session cookie (no Max-Age)", s.Value, s.MaxAge)
			}
			// The form's cookie is spent: cleared with the same flags.
			if f := check(resp, signinCookie); f.MaxAge >= 0 {
				t.Errorf("the sign-in form's cookie is not cleared: Max-Age %d", f.MaxAge)
			}
		})
	}
}

// TestChangePasswordOnThePage: POST /password puts each problem at its field (the two new
// passwords differ: at the second; the current one wrong: at the current; too short: at the
// new) and changes nothing; a change ends the user's other sessions, renews this browser's,
// and from then on only the new password signs in.
func TestChangePasswordOnThePage(t *testing.T) {
	a := newApp(t)
	c := a.client(t)
	if code := c.signIn("alice", testPassword); code != http.StatusSeeOther {
		t.Fatalf("sign in: %d", code)
	}
	other := a.client(t) // another browser of alice's
	other.signIn("1001", testPassword)
	code, body, tok := c.get("/password")
	if code != http.StatusOK || tok == "" || strings.Contains(body, `class="ferr"`) {
		t.Fatalf("password page: %d", code)
	}
	const newPassword = "alices-brand-new-password"
	for _, tc := range []struct {
		name                     string
		current, password, again string
		field, want              string
	}{
		{"the two differ", testPassword, newPassword, newPassword + "x", "confirm", "The two new passwords differ."},
		{"wrong current", "not-the-password", newPassword, newPassword, "current", "The current password is wrong."},
		{"too short", testPassword, "short", "short", "password", "The new password needs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body, _ := c.post("/password", url.Values{"csrf": {tok}, "current": {tc.current}, "password": {tc.password}, "confirm": {tc.again}})
			if code != http.StatusUnprocessableEntity {
				t.Errorf("%d, want 422", code)
			}
			at := between(body, `id="`+tc.field+`"`, "<label")
			if !strings.Contains(at, `aria-invalid="true" aria-describedby="`+tc.field+`-err"`) ||
				!strings.Contains(at, `<span class="ferr" id="`+tc.field+`-err">`+tc.want) {
				t.Errorf("the problem is not at %s: %s", tc.field, at)
			}
			if n := strings.Count(body, `class="ferr"`); n != 1 {
				t.Errorf("%d problems on the page, want 1", n)
			}
		})
	}
	u, _ := url.Parse(c.base)
	sessionOf := func(b *browserClient) string {
		for _, ck := range b.c.Jar.Cookies(u) {
			if ck.Name == sessionCookie {
				return ck.Value
			}
		}
		return ""
	}
	before := sessionOf(c)
	code, _, resp := c.post("/password", url.Values{"csrf": {tok}, "current": {testPassword}, "password": {newPassword}, "confirm": {newPassword}})
	if code != http.StatusSeeOther || resp.Header.Get("Location") != "/password?done=password" {
		t.Fatalf("change: %d %s", code, resp.Header.Get("Location"))
	}
	if after := sessionOf(c); after == "" || after == before {
		t.Errorf("the session was not renewed: %q → %q", before, after)
	}
	if code, body, _ := c.get("/password?done=password"); code != http.StatusOK || !strings.Contains(body, "Your password was changed.") {
		t.Errorf("after the change, in the renewed session: %d", code)
	}
	if code, _, _ := other.get("/"); code != http.StatusSeeOther {
		t.Errorf("alice's other browser is still signed in: %d", code)
	}
	fresh := a.client(t)
	if code := fresh.signIn("alice", testPassword); code != http.StatusUnauthorized {
		t.Errorf("the old password: %d, want 401", code)
	}
	if code := fresh.signIn("alice", newPassword); code != http.StatusSeeOther {
		t.Errorf("the new password: %d, want 303", code)
	}
}

// TestAdminTokenSignIn: "admin" with the admin token signs in as the admin, who has no user of
// their own: the start is the admin page; the pages about one's own things (status, journal,
// profiles, schedule) send them there; the password page says there is nothing to change; the
// admin sees and switches anyone, and the journal names "admin".
func TestAdminTokenSignIn(t *testing.T) {
	a := newApp(t)
	const token = "the-admin-token-of-the-test"
	if err := a.acc.SetAdmin(token, ""); err != nil {
		t.Fatal(err)
	}
	c := a.client(t)
	if code := c.signIn("admin", "not-the-token"); code != http.StatusUnauthorized {
		t.Fatalf("admin with a wrong token: %d", code)
	}
	_, _, tok := c.get("/signin")
	code, _, resp := c.post("/signin", url.Values{"csrf": {tok}, "user": {"admin"}, "password": {token}})
	if code != http.StatusSeeOther || resp.Header.Get("Location") != "/admin" {
		t.Fatalf("admin sign-in: %d → %q", code, resp.Header.Get("Location"))
	}
	for _, path := range []string{"/signin", "/", "/journal", "/profiles", "/profiles/new", "/schedule"} {
		resp, err := c.c.Get(c.base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/admin" {
			t.Errorf("GET %s as the admin by token: %d → %q, want /admin", path, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	code, body, tok := c.get("/admin")
	if code != http.StatusOK || !strings.Contains(body, `id="a-alice"`) || !strings.Contains(body, `<span class="who">admin</span>`) ||
		strings.Contains(body, `href="/profiles"`) {
		t.Fatalf("admin page: %d %s", code, body)
	}
	if code, body, _ := c.get("/colleagues"); code != http.StatusOK || strings.Contains(body, `class="person me"`) {
		t.Errorf("colleagues as the admin by token: %d", code)
	}
	if code, body, _ := c.get("/?user=bob"); code != http.StatusOK || !strings.Contains(body, "Status of Bob") {
		t.Errorf("bob's status: %d", code)
	}
	if code, body, _ := c.get("/password"); code != http.StatusOK || !strings.Contains(body, "Change your password") {
		t.Errorf("password page: %d", code)
	}
	if code, body, _ := c.post("/password", url.Values{"csrf": {tok}, "current": {token}, "password": {"a-new-admin-token"}, "confirm": {"a-new-admin-token"}}); code != http.StatusForbidden ||
		!strings.Contains(body, "has no password here") {
		t.Errorf("POST /password as the admin by token: %d", code)
	}
	// Without naming a user, a switch has nobody to act on.
	if code, _, _ := c.post("/switch", url.Values{"csrf": {tok}, "profile": {"lunch"}}); code != http.StatusForbidden {
		t.Errorf("switch without a user: %d", code)
	}
	if code, _, resp := c.post("/switch", url.Values{"csrf": {tok}, "profile": {"lunch"}, "user": {"bob"}}); code != http.StatusSeeOther ||
		resp.Header.Get("Location") != "/?done=switched&user=bob" {
		t.Fatalf("switch bob: %d", code)
	}
	if st, err := a.engine.Status(context.Background(), "bob"); err != nil || st.State.Profile != "lunch" || st.State.Actor != "admin" {
		t.Fatalf("bob: %+v %v", st.State, err)
	}
	if code, body, _ := c.get("/journal?user=bob"); code != http.StatusOK || !strings.Contains(body, "by admin") {
		t.Errorf("bob's journal: %d", code)
	}
	// The journal records the admin as the one who switched.
	if es, _ := a.engine.Journal(context.Background(), presence.UserID("bob"), 1); len(es) != 1 || es[0].Actor != "admin" {
		t.Errorf("journal entry: %+v", es)
	}
}
