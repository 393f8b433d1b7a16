package api

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/presenced/presenced/internal/fakeclock"
	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/trigger"
)

// newTriggerAPI is a Handler with a trigger scheduler, engine and API on one controlled clock.
func newTriggerAPI(t testing.TB) (*testAPI, *trigger.Scheduler, *fakeclock.Clock) {
	t.Helper()
	clock := fakeclock.New(time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC))
	r := newRig(t, fixtureUsers(), presence.StateStoreOptions{}, clock.Now)
	s, err := trigger.New(trigger.Options{Engine: r.Engine, States: r.States, Redis: r.Redis, Prefix: r.Prefix, Now: clock.Now,
		Schedules: []presence.Schedule{{Name: "lunch", From: "12:00", To: "13:00", Profile: "lunch"}}, DefaultLocation: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(Options{Engine: r.Engine, AdminToken: adminToken, Triggers: s, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return &testAPI{h: h, pbx: r.PBX, states: r.States, rdb: r.Redis, prefix: r.Prefix}, s, clock
}

func TestTimedProfileThroughTheAPI(t *testing.T) {
	a, s, clock := newTriggerAPI(t)
	ctx := context.Background()
	a.must(t, "PUT", "/api/v1/users/alice/profile", aliceToken, `{"profile":"available"}`, 200, nil)
	a.must(t, "PUT", "/api/v1/users/alice/profile", aliceToken, `{"profile":"dnd","until":"30m"}`, 200, nil)
	var v userStatusView
	a.must(t, "GET", "/api/v1/users/alice", aliceToken, "", 200, &v)
	want := clock.Now().Add(30 * time.Minute)
	if v.Profile != "dnd" || v.Until == nil || !v.Until.Equal(want) || v.Trigger != "alice" || v.ReturnsTo != "available" ||
		v.NextChange == nil || v.NextChange.Kind != "expiry" || !v.NextChange.At.Equal(want) {
		t.Fatalf("status: %+v, next %+v", v, v.NextChange)
	}
	clock.Advance(30 * time.Minute)
	if err := s.Step(ctx); err != nil {
		t.Fatal(err)
	}
	v = userStatusView{}
	a.must(t, "GET", "/api/v1/users/alice", aliceToken, "", 200, &v)
	if v.Profile != "available" || v.Source != presence.SourceExpiry || v.Until != nil {
		t.Fatalf("after expiry: %+v", v)
	}
	// The next change is the lunch range at 12:00.
	if v.NextChange == nil || v.NextChange.Trigger != "schedule:lunch" || v.NextChange.At.Hour() != 12 {
		t.Fatalf("next change: %+v", v.NextChange)
	}
	until := clock.Now().Add(2 * time.Hour).Format(time.RFC3339)
	a.must(t, "PUT", "/api/v1/users/alice/profile", aliceToken, `{"profile":"dnd","until":"`+until+`"}`, 200, nil)
	for _, tc := range []struct{ body, msg string }{
		{`{"profile":"dnd","until":"-5m"}`, "not in the future"},
		{`{"profile":"dnd","until":"2020-01-01T00:00:00Z"}`, "not in the future"},
		{`{"profile":"dnd","until":"9000h"}`, "more than a year ahead"},
	} {
		rec := a.do(t, "PUT", "/api/v1/users/alice/profile", aliceToken, tc.body)
		if rec.Code != 422 || !contains(rec.Body.String(), tc.msg) {
			t.Errorf("%s: %d %s", tc.body, rec.Code, rec.Body)
		}
	}
}

func TestExternalTriggerEndpoint(t *testing.T) {
	a, _, _ := newTriggerAPI(t)
	a.must(t, "PUT", "/api/v1/users/alice/profile", aliceToken, `{"profile":"available"}`, 200, nil)
	for _, step := range []struct {
		token, body string
		status      int
		switched    bool
		profile     string
	}{
		{aliceToken, `{"state":"end"}`, 200, false, "available"},
		{aliceToken, `{"state":"start","profile":"dnd"}`, 200, true, "dnd"},
		{adminToken, `{"state":"start","profile":"dnd"}`, 200, false, "dnd"},
		{bobToken, `{"state":"end"}`, 403, false, "dnd"},
		{aliceToken, `{"state":"end"}`, 200, true, "available"},
		{aliceToken, `{"state":"end"}`, 200, false, "available"},
		{aliceToken, `{"state":"start"}`, 422, false, "available"},
		{aliceToken, `{"state":"begin","profile":"dnd"}`, 422, false, "available"},
		{aliceToken, `{"state":"start","profile":"nope"}`, 404, false, "available"},
		{"", `{"state":"end"}`, 401, false, "available"},
	} {
		rec := a.do(t, "POST", "/api/v1/users/alice/triggers/zoom", step.token, step.body)
		if rec.Code != step.status {
			t.Fatalf("%s: status %d, want %d: %s", step.body, rec.Code, step.status, rec.Body)
		}
		if rec.Code == 200 {
			var res trigger.ExternalResult
			if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil {
				t.Fatal(err)
			}
			if res.Switched != step.switched || res.Trigger != "external:zoom" {
				t.Errorf("%s: %+v, want switched=%v", step.body, res, step.switched)
			}
		}
		var v userStatusView
		a.must(t, "GET", "/api/v1/users/alice", adminToken, "", 200, &v)
		if v.Profile != step.profile {
			t.Errorf("%s: alice in %q, want %q", step.body, v.Profile, step.profile)
		}
	}
}

func TestTriggersNeedTheScheduler(t *testing.T) {
	a := newTestAPI(t)
	rec := a.do(t, "PUT", "/api/v1/users/alice/profile", aliceToken, `{"profile":"dnd","until":"30m"}`)
	if rec.Code != 422 || !contains(rec.Body.String(), "timed profiles need the trigger scheduler") {
		t.Errorf("until without scheduler: %d %s", rec.Code, rec.Body)
	}
	rec = a.do(t, "POST", "/api/v1/users/alice/triggers/zoom", aliceToken, `{"state":"end"}`)
	if rec.Code != 503 {
		t.Errorf("trigger without scheduler: %d %s", rec.Code, rec.Body)
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// TestUntilAsPeopleSayIt: "until": "16:00" in Europe/Berlin the evening before the spring
// change ends at 16:00 summer time the next day (14:00 UTC, not 24 hours' 15:00): the answer
// says so in the user's zone, and the user returns then.
func TestUntilAsPeopleSayIt(t *testing.T) {
	a, s, clock := newTriggerAPI(t)
	ctx := context.Background()
	if err := s.SetTimeZone(ctx, "alice", "Europe/Berlin"); err != nil {
		t.Fatal(err)
	}
	clock.Set(time.Date(2026, 3, 28, 19, 0, 0, 0, time.UTC)) // 20:00 CET
	a.must(t, "PUT", "/api/v1/users/alice/profile", aliceToken, `{"profile":"available"}`, 200, nil)
	var res struct {
		To    string    `json:"to"`
		Until time.Time `json:"until"`
	}
	rec := a.must(t, "PUT", "/api/v1/users/alice/profile", aliceToken, `{"profile":"dnd","until":"16:00"}`, 200, &res)
	if res.To != "dnd" || !strings.Contains(rec.Body.String(), `"until":"2026-03-29T16:00:00+02:00"`) {
		t.Fatalf("answer %s, want until 2026-03-29T16:00:00+02:00", rec.Body)
	}
	for _, step := range []struct {
		at      time.Time
		profile string
	}{
		{time.Date(2026, 3, 29, 13, 59, 0, 0, time.UTC), "dnd"},
		{time.Date(2026, 3, 29, 14, 0, 0, 0, time.UTC), "available"},
	} {
		clock.Set(step.at)
		if err := s.Step(ctx); err != nil {
			t.Fatal(err)
		}
		var v userStatusView
		a.must(t, "GET", "/api/v1/users/alice", aliceToken, "", 200, &v)
		if v.Profile != step.profile {
			t.Fatalf("at %s: %s, want %s", step.at, v.Profile, step.profile)
		}
	}
	rec = a.do(t, "PUT", "/api/v1/users/alice/profile", aliceToken, `{"profile":"dnd","until":"tomorrow 8"}`)
	if rec.Code != 422 || !contains(rec.Body.String(), `tomorrow 08:00`) {
		t.Fatalf("a bad until: %d %s", rec.Code, rec.Body)
	}
	a.must(t, "PUT", "/api/v1/users/alice/profile", aliceToken, `{"profile":"dnd","until":"monday"}`, 200, &res)
	if want := time.Date(2026, 3, 30, 8, 0, 0, 0, mustZone(t, "Europe/Berlin")); !res.Until.Equal(want) {
		t.Fatalf("until monday: %v, want %v", res.Until, want)
	}
}

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	l, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}
