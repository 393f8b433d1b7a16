package web

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/presenced/presenced/presence"
)

// TestStatusNamesTheDeviceOfThisBrowser: on My status a user says which of their devices this
// browser is at (a cookie, checked against their devices at every read); the will-not-ring
// warning is read for it and names it. Another user's device, or an unknown one, is refused.
func TestStatusNamesTheDeviceOfThisBrowser(t *testing.T) {
	a := newAppWith(t, nil, nil)
	ctx := context.Background()
	// A personal profile in which only alice's mobile rings (she has a desk phone only).
	if err := a.engine.SaveProfile(ctx, "alice", &presence.Profile{ID: "away-desk", Name: "Away from desk",
		OnEnter: []presence.Action{{Kind: presence.ActionFollowMe, Families: []presence.Family{presence.FamilyMobile}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.engine.Switch(ctx, presence.SwitchRequest{User: "alice", Profile: "away-desk", Source: presence.SourceAPI}); err != nil {
		t.Fatal(err)
	}
	c := a.client(t)
	c.signIn("alice", testPassword)
	_, body, tok := c.get("/")
	if !strings.Contains(body, `<option value="PJSIP/1001" >desk phone PJSIP/1001</option>`) || strings.Contains(body, "Your desk phone") {
		t.Fatalf("before choosing: %s", body)
	}
	for _, tc := range []struct {
		device string
		code   int
		want   string
	}{
		{"PJSIP/1002", http.StatusUnprocessableEntity, "That is not one of your devices."}, // bob's
		{"PJSIP/9", http.StatusUnprocessableEntity, "That is not one of your devices."},
		{"pjsip/1001", http.StatusSeeOther, ""},
	} {
		code, body, _ := c.post("/device", url.Values{"csrf": {tok}, "device": {tc.device}})
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("device %s: %d %s", tc.device, code, body)
		}
	}
	for _, path := range []string{"/", "/status-card"} {
		_, body, _ = c.get(path)
		if !strings.Contains(body, "Your desk phone PJSIP/1001 will not ring in this profile.") {
			t.Errorf("%s after choosing the desk phone: %s", path, body)
		}
	}
	if !strings.Contains(body, `selected>desk phone PJSIP/1001`) && !strings.Contains(c.mustGet("/"), `selected>desk phone PJSIP/1001`) {
		t.Error("the choice is not shown selected")
	}
	// A forged cookie naming bob's phone counts as no choice.
	u, _ := url.Parse(a.srv.URL)
	c.c.Jar.SetCookies(u, []*http.Cookie{{Name: deviceCookie, Value: "PJSIP/1002", Path: "/"}})
	if body := c.mustGet("/"); strings.Contains(body, "PJSIP/1002 will not ring") || strings.Contains(body, "Your desk phone") {
		t.Errorf("a forged device cookie: %s", body)
	}
	// "any of my phones" forgets the choice.
	if code, _, resp := c.post("/device", url.Values{"csrf": {tok}, "device": {""}}); code != http.StatusSeeOther ||
		!strings.Contains(resp.Header.Get("Set-Cookie"), deviceCookie+"=;") {
		t.Errorf("forget: %d %v", code, resp.Header)
	}
	// Without the CSRF token nothing is set.
	if code, _, _ := c.post("/device", url.Values{"device": {"PJSIP/1001"}}); code != http.StatusForbidden {
		t.Errorf("without csrf: %d", code)
	}
}

func (c *browserClient) mustGet(path string) string {
	c.t.Helper()
	code, body, _ := c.get(path)
	if code != http.StatusOK {
		c.t.Fatalf("GET %s: %d", path, code)
	}
	return body
}
