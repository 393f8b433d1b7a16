package main

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestWebAdminReportedAndFix: under queue_pause: report a hand unpause of bob is left as it is
// and reported: the admin page's "reported drift" filter lists bob (and only bob); the admin
// clicks Fix for bob (POST /fix naming him): the PBX pauses bob again, his journal has the
// reconcile by the admin, and the filter no longer lists him.
func TestWebAdminReportedAndFix(t *testing.T) {
	d, p := startWebDaemon(t)
	for _, u := range []driftUser{webAlice, webBob} {
		d.switchTo(t, u.id, "available", "") // in the queues
		d.switchTo(t, u.id, "lunch", "back at 2")
	}
	eventually(t, 5*time.Second, "bob paused for Lunch", func() bool { return p.inQueues(webBob, "Lunch") })
	w := newWebClient(t, d.base)
	if code, _ := w.signIn(webAdmin.id, webPassword); code != http.StatusSeeOther {
		t.Fatalf("admin sign in: %d", code)
	}
	reported := func() (bool, string) {
		_, body, _ := w.get("/admin?filter=reported")
		return strings.Contains(body, `id="a-`+webBob.id+`"`), body
	}
	if in, _ := reported(); in {
		t.Fatal("bob is listed with reported drift before any")
	}
	if err := p.c.QueuePause(p.ctx(), webBob.iface(), "support", false, ""); err != nil {
		t.Fatal(err)
	}
	var body string
	eventually(t, 10*time.Second, "the admin page lists bob under reported drift", func() bool {
		var in bool
		in, body = reported()
		return in
	})
	if strings.Contains(body, `id="a-`+webAlice.id+`"`) || !strings.Contains(body, `<option value="reported" selected>reported drift (1)</option>`) {
		t.Errorf("the reported filter: %s", between(body, `id="filter"`, "</select>")+between(body, "<tbody>", "</tbody>"))
	}
	if row := between(body, `id="a-`+webBob.id+`"`, "</tr>"); !strings.Contains(row, "out of sync (1 reported)") {
		t.Errorf("bob's row: %s", row)
	}
	if p.inQueues(webBob, "Lunch") {
		t.Fatal("the hand unpause was repaired under the report policy")
	}

	// Fix for bob, as the admin page's button posts it.
	_, _, tok := w.get("/admin")
	resp, err := w.c.PostForm(w.base+"/fix", url.Values{"csrf": {tok}, "user": {webBob.id}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/?done=fixed&user="+webBob.id {
		t.Fatalf("fix bob: %d → %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if !p.inQueues(webBob, "Lunch") {
		t.Fatal("Fix did not pause bob in support again")
	}
	code, j := d.call(t, http.MethodGet, "/api/v1/users/"+webBob.id+"/journal", testToken("admin"), nil)
	entries, _ := j["entries"].([]any)
	if code != http.StatusOK || len(entries) == 0 {
		t.Fatalf("bob's journal: %d %v", code, j)
	}
	last := entries[0].(map[string]any)
	if last["kind"] != "reconcile" || last["actor"] != webAdmin.id || !strings.Contains(toJSON(last), `"queue":"support"`) {
		t.Errorf("bob's last journal entry: %s", toJSON(last))
	}
	eventually(t, 5*time.Second, "the reported filter no longer lists bob", func() bool { in, _ := reported(); return !in })
	if _, body, _ := w.get("/?user=" + webBob.id + "&done=fixed"); !strings.Contains(body, `id="in-sync"`) {
		t.Errorf("bob's status after the fix: %s", between(body, `id="status-card"`, "</section>"))
	}
}

// TestWebSessionsAcrossInstances: two presenced on the lab's Redis and Asterisk. Alice signs
// in on one and goes on, with the same cookie, on the other: its pages know her and carry the
// same CSRF token, a switch posted there with it is carried out (the standby relays it to the
// leader), and signing out there ends the session on the first too. The admin page and GET
// /api/v1/instance of each say which one leads.
func TestWebSessionsAcrossInstances(t *testing.T) {
	var cfgB Config
	a, p := startWebDaemonWith(t, func(c *Config) {
		c.InstanceID = "web-a"
		cfgB = *c
		cfgB.InstanceID = "web-b"
	})
	b := startDaemon(t, cfgB)
	b.waitRole(t, "standby", 20*time.Second)
	a.switchTo(t, webAlice.id, "available", "")

	onA := newWebClient(t, a.base)
	if code, _ := onA.signIn(webAlice.id, webPassword); code != http.StatusSeeOther {
		t.Fatalf("sign in on a: %d", code)
	}
	_, _, tokA := onA.get("/")
	// The same browser (cookies are per host, not per port) on the other instance.
	onB := &webClient{t: t, base: b.base, c: onA.c}
	code, body, tokB := onB.get("/")
	if code != http.StatusOK || !strings.Contains(body, "Alice Archer") || tokB == "" || tokB != tokA {
		t.Fatalf("b's status page with a's session: %d, token %q (a's %q)", code, tokB, tokA)
	}
	if code, _ := onB.post("/switch", url.Values{"csrf": {tokA}, "profile": {"lunch"}, "info": {"via b"}}); code != http.StatusSeeOther {
		t.Fatalf("switch on b with a's token: %d", code)
	}
	eventually(t, 5*time.Second, "alice paused for Lunch", func() bool { return p.inQueues(webAlice, "Lunch") })
	if st := a.status(t, webAlice); st.Profile != "lunch" || !strings.Contains(st.raw, `"actor":"`+webAlice.id+`"`) {
		t.Errorf("alice after the switch on b: %s", st.raw)
	}
	if code, _ := onB.post("/switch", url.Values{"csrf": {"forged"}, "profile": {"available"}}); code != http.StatusForbidden {
		t.Errorf("a forged token on b: %d", code)
	}

	// Which instance leads, on each: the API and the admin page agree.
	admin := newWebClient(t, a.base)
	if code, _ := admin.signIn(webAdmin.id, webPassword); code != http.StatusSeeOther {
		t.Fatalf("admin sign in: %d", code)
	}
	for _, tc := range []struct {
		d        *daemonUnderTest
		id, role string
	}{{a, "web-a", "leader"}, {b, "web-b", "standby"}} {
		code, in := tc.d.call(t, http.MethodGet, "/api/v1/instance", testToken("admin"), nil)
		if code != http.StatusOK || in["id"] != tc.id || in["role"] != tc.role || in["leader"] != "web-a" || in["ready"] != true ||
			in["leader_epoch"] == nil {
			t.Errorf("GET /api/v1/instance of %s: %d %v", tc.id, code, in)
		}
		if code, _ := tc.d.call(t, http.MethodGet, "/api/v1/instance", webAlice.token(), nil); code != http.StatusForbidden {
			t.Errorf("a user's token on %s: %d", tc.id, code)
		}
		page := &webClient{t: t, base: tc.d.base, c: admin.c}
		_, body, _ := page.get("/admin")
		role, leader := between(body, `<dd id="role">`, "</dd>"), between(body, `<dd id="leader">`, "</dd>")
		wantLeader := `<dd id="leader">web-a (epoch ` + jsonNumber(in["leader_epoch"]) + ")"
		if tc.role == "leader" {
			wantLeader += ", this instance"
		}
		if !strings.HasPrefix(role, `<dd id="role">`+tc.role+":") || leader != wantLeader {
			t.Errorf("the admin page of %s: role %q, leader %q (want %q)", tc.id, role, leader, wantLeader)
		}
	}

	// Signed out on b, the session is over on a too.
	if code, _ := onB.post("/signout", url.Values{"csrf": {tokA}}); code != http.StatusSeeOther {
		t.Fatalf("sign out on b: %d", code)
	}
	if code, _, _ := onA.get("/"); code != http.StatusSeeOther {
		t.Errorf("a after the sign-out on b: %d, want a redirect to the sign-in", code)
	}
	a.switchTo(t, webAlice.id, "available", "")
}

// jsonNumber is a whole JSON number (decoded as float64) in decimal.
func jsonNumber(v any) string {
	f, _ := v.(float64)
	return strconv.FormatInt(int64(f), 10)
}

// between is the part of s from the first a to the next b; "" without a.
func between(s, a, b string) string {
	i := strings.Index(s, a)
	if i < 0 {
		return ""
	}
	s = s[i:]
	if j := strings.Index(s, b); j >= 0 {
		return s[:j]
	}
	return s
}
