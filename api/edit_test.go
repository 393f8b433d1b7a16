package api

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/presenced/presenced/presence"
)

// TestPreviewProfileEdit: POST /users/{user}/profiles/{id}/preview says what switching to a
// personal profile as edited would do, checked as PUT checks it, and stores nothing.
func TestPreviewProfileEdit(t *testing.T) {
	a := newTestAPI(t)
	focus := func(reason, icon string) string {
		return `{"name":"Focus","icon":"` + icon + `","on_enter":[{"action":"queue_login","queues":"all"},{"action":"queue_pause","queues":"all","reason":"` + reason + `"}]}`
	}
	a.must(t, "PUT", "/api/v1/users/alice/profiles/focus", aliceToken, focus("Stored", "focus"), http.StatusCreated, nil)
	reasons := func(res presence.SwitchResult) []string {
		var out []string
		for _, o := range res.Outcomes {
			if o.Result != presence.ResultPlanned {
				t.Errorf("preview outcome %s: %s", o.Op, o.Result)
			}
			if m := o.Op.Member; m != nil && m.Paused {
				out = append(out, m.Reason)
			}
		}
		return out
	}
	for _, tc := range []struct {
		name, path, token, body string
		want                    string // the pause reason previewed
	}{
		{"an edit of a stored profile", "/api/v1/users/alice/profiles/focus/preview", aliceToken, focus("Edited", "focus"), "Edited"},
		{"a profile not stored yet", "/api/v1/users/alice/profiles/draft/preview", aliceToken, focus("Draft", ""), "Draft"},
		{"the admin on alice's", "/api/v1/users/alice/profiles/focus/preview", adminToken, focus("By admin", "moon"), "By admin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var res presence.SwitchResult
			a.must(t, "POST", tc.path, tc.token, tc.body, http.StatusOK, &res)
			if got := reasons(res); !res.Preview || len(got) == 0 || slices.ContainsFunc(got, func(r string) bool { return r != tc.want }) {
				t.Fatalf("previewed pauses %q, want %q: %+v", got, tc.want, res)
			}
		})
	}
	// Nothing stored, nothing applied, nothing journaled.
	var p profileView
	a.must(t, "GET", "/api/v1/users/alice/profiles/focus", aliceToken, "", 200, &p)
	if p.OnEnter[1].Reason != "Stored" || p.Icon != "focus" {
		t.Fatalf("the stored profile changed: %+v", p.Profile)
	}
	a.must(t, "GET", "/api/v1/users/alice/profiles/draft", aliceToken, "", http.StatusNotFound, nil)
	if ops := a.pbx.Applied(); len(ops) != 0 {
		t.Fatalf("a preview applied %v", ops)
	}
	var j journalView
	a.must(t, "GET", "/api/v1/users/alice/journal", aliceToken, "", 200, &j)
	if len(j.Entries) != 0 {
		t.Fatalf("a preview journaled %+v", j.Entries)
	}

	// Refused as PUT refuses.
	for _, tc := range []struct {
		name, path, token, body string
		code                    int
		fields                  []string
	}{
		{"another user's profile", "/api/v1/users/alice/profiles/focus/preview", bobToken, focus("x", ""), http.StatusForbidden, nil},
		{"a system-wide id", "/api/v1/users/alice/profiles/lunch/preview", aliceToken, focus("x", ""), http.StatusForbidden, nil},
		{"an unknown icon and an invalid action", "/api/v1/users/alice/profiles/focus/preview", aliceToken,
			`{"name":"Focus","icon":"rocket","on_enter":[{"action":"queue_pause","queues":"nosuchqueue"}]}`,
			http.StatusUnprocessableEntity, []string{"icon", "on_enter[0].queues"}},
		{"a webhook", "/api/v1/users/alice/profiles/focus/preview", aliceToken,
			`{"name":"Focus","on_enter":[{"action":"webhook","url":"http://example.com/"}]}`, http.StatusUnprocessableEntity, []string{"on_enter[0]"}},
		{"another id in the body", "/api/v1/users/alice/profiles/focus/preview", aliceToken, `{"id":"other"}`, http.StatusUnprocessableEntity, []string{"id"}},
		{"an unknown field", "/api/v1/users/alice/profiles/focus/preview", aliceToken, `{"nope":1}`, http.StatusBadRequest, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var e errorBody
			a.must(t, "POST", tc.path, tc.token, tc.body, tc.code, &e)
			for _, f := range tc.fields {
				if !slices.ContainsFunc(e.Problems, func(p problem) bool { return p.Field == f }) {
					t.Errorf("no problem at %s: %+v", f, e)
				}
			}
		})
	}
}

// TestPersonalProfileIcons: a personal profile's icon is one the web app draws, or none; the
// 422 names the field and the icons there are.
func TestPersonalProfileIcons(t *testing.T) {
	a := newTestAPI(t)
	for _, tc := range []struct {
		icon string
		code int
	}{
		{"", http.StatusCreated},
		{"moon", http.StatusOK},
		{"rocket", http.StatusUnprocessableEntity},
		{"Moon", http.StatusUnprocessableEntity},
	} {
		var e errorBody
		body := `{"name":"Evening","icon":"` + tc.icon + `"}`
		if tc.code == http.StatusUnprocessableEntity {
			body = `{"name":"Evening","icon":"` + tc.icon + `","activation":"x"}`
		}
		rec := a.must(t, "PUT", "/api/v1/users/alice/profiles/evening", aliceToken, body, tc.code, nil)
		if tc.code != http.StatusUnprocessableEntity {
			continue
		}
		decodeJSON(t, rec.Body.Bytes(), &e)
		i := slices.IndexFunc(e.Problems, func(p problem) bool { return p.Field == "icon" })
		if i < 0 || !strings.Contains(e.Problems[i].Error, "available, away, calendar") || !strings.Contains(e.Problems[i].Error, tc.icon) {
			t.Errorf("icon %q: %+v", tc.icon, e)
		}
		// The other problems come with it.
		if !slices.ContainsFunc(e.Problems, func(p problem) bool { return p.Field == "activation" }) {
			t.Errorf("icon %q: the activation's problem is missing: %+v", tc.icon, e)
		}
	}
}

// TestStatusDeviceIsTheUsers: GET /users/{user}?device= takes only the user's own devices, and
// the will-not-ring warning names the device given.
func TestStatusDeviceIsTheUsers(t *testing.T) {
	a := newTestAPI(t)
	a.must(t, "PUT", "/api/v1/users/alice/profiles/mobile-only", aliceToken,
		`{"name":"Mobile only","on_enter":[{"action":"followme","families":["mobile"]}]}`, http.StatusCreated, nil)
	a.must(t, "PUT", "/api/v1/users/alice/profile", aliceToken, `{"profile":"mobile-only"}`, 200, nil)
	for _, tc := range []struct {
		device string
		code   int
		warns  []string // the devices the will-not-ring warning names
	}{
		{"PJSIP/1001", 200, []string{"PJSIP/1001"}},
		{"pjsip/1001", 200, []string{"PJSIP/1001"}},
		{"PJSIP/1001-mobile", 200, nil},
		{"PJSIP/1002", 400, nil}, // bob's
		{"PJSIP/9999", 400, nil},
	} {
		var st userStatusView
		rec := a.must(t, "GET", "/api/v1/users/alice?device="+tc.device, aliceToken, "", tc.code, nil)
		if tc.code != 200 {
			var e errorBody
			decodeJSON(t, rec.Body.Bytes(), &e)
			if e.Field != "device" {
				t.Errorf("device %s: %+v", tc.device, e)
			}
			continue
		}
		decodeJSON(t, rec.Body.Bytes(), &st)
		var got []string
		for _, w := range st.Warnings {
			if w.Code == presence.WarningWillNotRing {
				got = w.Devices
			}
		}
		if !slices.Equal(got, tc.warns) {
			t.Errorf("device %s: will not ring %v, want %v (%+v)", tc.device, got, tc.warns, st.Warnings)
		}
	}
}

func decodeJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("not JSON: %v: %s", err, b)
	}
}

// TestScheduleTimeZone: PATCH /users/{user}/schedule sets the zone the user's own entries run
// in; the week shows them in it, the inherited ones keep the configuration's; an unknown zone
// is 422 at time_zone; another user's token is refused.
func TestScheduleTimeZone(t *testing.T) {
	a, _, _ := newTriggerAPI(t) // 2026-06-01 08:00 UTC; the inherited "lunch" 12:00-13:00 UTC
	a.must(t, "PUT", "/api/v1/users/alice/schedule/deep", aliceToken, `{"at":"09:30","profile":"lunch"}`, 200, nil)
	var v scheduleView
	a.must(t, "PATCH", "/api/v1/users/alice/schedule", aliceToken, `{"time_zone":"America/New_York"}`, 200, &v)
	if v.TimeZone != "America/New_York" || !v.OwnTimeZone || v.InheritedTimeZone != "UTC" {
		t.Fatalf("zones: %+v", v)
	}
	first := map[string]time.Time{}
	for _, o := range v.Week {
		if _, ok := first[o.Entry]; !ok {
			first[o.Entry] = o.Start
		}
	}
	// 09:30 in New York (EDT, UTC-4) is 13:30 UTC; the inherited lunch stays at 12:00 UTC.
	if !first["deep"].Equal(time.Date(2026, 6, 1, 13, 30, 0, 0, time.UTC)) || !first["lunch"].Equal(time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)) {
		t.Errorf("first occurrences %v", first)
	}
	var e errorBody
	a.must(t, "PATCH", "/api/v1/users/alice/schedule", aliceToken, `{"time_zone":"Atlantis/Capital"}`, 422, &e)
	if e.Field != "time_zone" || !strings.Contains(e.Error, "Atlantis/Capital") {
		t.Errorf("unknown zone: %+v", e)
	}
	a.must(t, "PATCH", "/api/v1/users/alice/schedule", bobToken, `{"time_zone":"UTC"}`, 403, nil)
	a.must(t, "PATCH", "/api/v1/users/alice/schedule", aliceToken, `{"zone":"UTC"}`, 400, nil)
	// Absent leaves it; "" resets it.
	a.must(t, "PATCH", "/api/v1/users/alice/schedule", aliceToken, `{}`, 200, &v)
	if v.TimeZone != "America/New_York" {
		t.Errorf("{} changed the zone: %+v", v)
	}
	a.must(t, "PATCH", "/api/v1/users/alice/schedule", adminToken, `{"time_zone":""}`, 200, &v)
	if v.TimeZone != "UTC" || v.OwnTimeZone {
		t.Errorf("after the reset: %+v", v)
	}
}
