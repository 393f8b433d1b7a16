package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/presenced/presenced/presence"
)

func TestSwitchStatusAndJournal(t *testing.T) {
	a := newTestAPI(t)
	var res presence.SwitchResult
	a.must(t, "PUT", "/api/v1/users/alice/profile", aliceToken, `{"profile":"lunch","info":"until 4pm"}`, 200, &res)
	if res.To != "lunch" || res.Info != "until 4pm" || res.Source != presence.SourceAPI || res.Actor != "alice" ||
		!res.InSync || res.Preview || len(res.Outcomes) == 0 {
		t.Fatalf("switch result %+v", res)
	}
	for _, o := range res.Outcomes {
		if o.Result != presence.ResultApplied {
			t.Errorf("outcome %s: %s", o.Op, o.Result)
		}
	}

	a.must(t, "PUT", "/api/v1/users/alice/profile", adminToken, `{"profile":"dnd"}`, 200, &res)
	if res.From != "lunch" || res.To != "dnd" || res.Actor != AdminActor {
		t.Fatalf("admin switch %+v", res)
	}

	rec := a.must(t, "GET", "/api/v1/users/alice", aliceToken, "", 200, nil)
	for _, secret := range []string{alicePIN, aliceToken, adminToken} {
		if strings.Contains(rec.Body.String(), secret) {
			t.Fatalf("status shows a secret %q: %s", secret, rec.Body)
		}
	}
	var st userStatusView
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	if st.User == nil || st.User.ID != "alice" || !st.Switched || st.Profile != "dnd" || st.Previous != "lunch" ||
		st.Source != presence.SourceAPI || st.Actor != AdminActor || st.Since.IsZero() ||
		st.Desired == nil || st.Observed == nil || len(st.Drift) != 0 || !st.InSync {
		t.Fatalf("status %s", rec.Body)
	}

	var never userStatusView
	a.must(t, "GET", "/api/v1/users/bob", adminToken, "", 200, &never)
	if never.Switched || never.Profile != "" || !never.InSync || never.Drift == nil {
		t.Fatalf("status of a user never switched: %+v", never)
	}

	var j journalView
	a.must(t, "GET", "/api/v1/users/alice/journal", aliceToken, "", 200, &j)
	if len(j.Entries) != 2 || j.Entries[0].To != "dnd" || j.Entries[1].To != "lunch" || j.Entries[1].Actor != "alice" ||
		j.Entries[0].Kind != "switch" || len(j.Unreadable) != 0 {
		t.Fatalf("journal %+v", j)
	}
	a.must(t, "GET", "/api/v1/users/alice/journal?limit=1", adminToken, "", 200, &j)
	if len(j.Entries) != 1 || j.Entries[0].To != "dnd" {
		t.Fatalf("journal limit=1: %+v", j)
	}
	a.must(t, "GET", "/api/v1/users/bob/journal", bobToken, "", 200, &j)
	if j.Entries == nil || len(j.Entries) != 0 {
		t.Fatalf("empty journal: %+v", j)
	}
}

func TestPreviewChangesNothing(t *testing.T) {
	a := newTestAPI(t)
	var res presence.SwitchResult
	a.must(t, "POST", "/api/v1/users/alice/profile/preview", aliceToken, `{"profile":"lunch","info":"back at 1"}`, 200, &res)
	if !res.Preview || res.To != "lunch" || len(res.Outcomes) == 0 {
		t.Fatalf("preview %+v", res)
	}
	for _, o := range res.Outcomes {
		if o.Result != presence.ResultPlanned {
			t.Errorf("preview outcome %s: %s", o.Op, o.Result)
		}
	}
	if ops := a.pbx.Applied(); len(ops) != 0 {
		t.Fatalf("preview applied %v", ops)
	}
	var j journalView
	a.must(t, "GET", "/api/v1/users/alice/journal", aliceToken, "", 200, &j)
	if len(j.Entries) != 0 {
		t.Fatalf("preview journaled %+v", j.Entries)
	}
	var st userStatusView
	a.must(t, "GET", "/api/v1/users/alice", aliceToken, "", 200, &st)
	if st.Switched || st.Profile != "" {
		t.Fatalf("preview saved state: %+v", st)
	}
}

func TestPersonalProfiles(t *testing.T) {
	a := newTestAPI(t)
	home := `{"name":"Home office","activation":"7","presence":"available",
		"on_enter":[{"action":"followme","families":["softphone","mobile"],"order":"sequential","ring_time":20},
		            {"action":"dnd","on":false,"disabled":true}]}`

	var p profileView
	rec := a.must(t, "PUT", "/api/v1/users/alice/profiles/home", aliceToken, home, http.StatusCreated, &p)
	if loc := rec.Header().Get("Location"); loc != "/api/v1/users/alice/profiles/home" {
		t.Errorf("Location %q", loc)
	}
	if p.ID != "home" || p.Owner != "alice" || !p.Personal || p.Name != "Home office" || len(p.OnEnter) != 2 {
		t.Fatalf("created %+v", p)
	}
	// What GET answers can be sent back as it is: "id", "owner" and "personal" are accepted.
	var got profileView
	rec = a.must(t, "GET", "/api/v1/users/alice/profiles/home", aliceToken, "", 200, &got)
	a.must(t, "PUT", "/api/v1/users/alice/profiles/home", adminToken, rec.Body.String(), http.StatusOK, &p)

	var list profileList
	a.must(t, "GET", "/api/v1/users/alice/profiles", aliceToken, "", 200, &list)
	personal := map[string]bool{}
	for _, v := range list.Profiles {
		personal[v.ID] = v.Personal
	}
	if len(list.Profiles) != 4 || !personal["home"] || personal["lunch"] || personal["available"] || personal["dnd"] {
		t.Fatalf("profiles %s", mustJSON(t, list))
	}
	a.must(t, "GET", "/api/v1/users/bob/profiles", bobToken, "", 200, &list)
	if len(list.Profiles) != 3 {
		t.Fatalf("bob sees alice's profile: %s", mustJSON(t, list))
	}

	// The active profile can be neither changed nor deleted.
	a.must(t, "PUT", "/api/v1/users/alice/profile", aliceToken, `{"profile":"home"}`, 200, nil)
	for _, tc := range []struct{ method, body string }{{"PUT", home}, {"DELETE", ""}} {
		var e errorBody
		a.must(t, tc.method, "/api/v1/users/alice/profiles/home", aliceToken, tc.body, http.StatusConflict, &e)
		if !strings.Contains(e.Error, `"home"`) {
			t.Errorf("%s active profile: %+v", tc.method, e)
		}
	}
	a.must(t, "PUT", "/api/v1/users/alice/profile", aliceToken, `{"profile":"available"}`, 200, nil)
	rec = a.must(t, "DELETE", "/api/v1/users/alice/profiles/home", aliceToken, "", http.StatusNoContent, nil)
	if rec.Body.Len() != 0 {
		t.Errorf("204 with a body: %s", rec.Body)
	}
	a.must(t, "GET", "/api/v1/users/alice/profiles/home", aliceToken, "", http.StatusNotFound, nil)
}

func TestEveryone(t *testing.T) {
	a := newTestAPI(t)
	a.must(t, "PUT", "/api/v1/users/alice/profile", aliceToken, `{"profile":"lunch","info":"until 1pm"}`, 200, nil)
	for _, token := range []string{adminToken, aliceToken, bobToken} {
		var out presenceList
		rec := a.must(t, "GET", "/api/v1/presence", token, "", 200, &out)
		if len(out.Users) != 2 {
			t.Fatalf("presence %s", rec.Body)
		}
		alice, bob := out.Users[0], out.Users[1]
		if alice.User != "alice" || alice.Profile != "lunch" || alice.Label != "Lunch" || alice.Presence != "away" ||
			alice.Info != "until 1pm" || alice.Since.IsZero() {
			t.Errorf("alice %+v", alice)
		}
		if bob.User != "bob" || bob.Profile != "" || strings.Contains(rec.Body.String(), "0001-01-01") {
			t.Errorf("bob, never switched: %s", rec.Body)
		}
	}
}

// TestErrors covers every error status: who may not, what does not exist, what is malformed,
// what is invalid, and which field is to blame.
func TestErrors(t *testing.T) {
	a := newTestAPI(t)
	big := `{"profile":"lunch","info":"` + strings.Repeat("x", 5000) + `"}`
	for _, tc := range []struct {
		name, method, path, token, body string
		status                          int
		msg, field                      string
		header                          [2]string
	}{
		{"no token", "GET", "/api/v1/users/alice", "", "", 401, "missing bearer token", "", [2]string{"WWW-Authenticate", `Bearer realm="presenced"`}},
		{"wrong token", "GET", "/api/v1/users/alice", "nope", "", 401, "invalid token", "", [2]string{"WWW-Authenticate", `Bearer realm="presenced", error="invalid_token"`}},
		{"token prefix", "GET", "/api/v1/users/alice", aliceToken[:5], "", 401, "invalid token", "", [2]string{}},
		{"no token for presence", "GET", "/api/v1/presence", "", "", 401, "missing bearer token", "", [2]string{}},
		{"other user's status", "GET", "/api/v1/users/alice", bobToken, "", 403, `user "bob" may not act on user "alice"`, "", [2]string{}},
		{"other user's switch", "PUT", "/api/v1/users/alice/profile", bobToken, `{"profile":"dnd"}`, 403, "may not act", "", [2]string{}},
		{"other user's profiles", "PUT", "/api/v1/users/alice/profiles/x", bobToken, `{}`, 403, "may not act", "", [2]string{}},
		{"unknown user to a user", "GET", "/api/v1/users/nobody", aliceToken, "", 403, "may not act", "", [2]string{}},
		{"edit system profile", "PUT", "/api/v1/users/alice/profiles/lunch", aliceToken, `{"name":"Mine"}`, 403, `system-wide profile "lunch"`, "", [2]string{}},
		{"delete system profile", "DELETE", "/api/v1/users/alice/profiles/dnd", adminToken, "", 403, `system-wide profile "dnd"`, "", [2]string{}},
		{"unknown user", "GET", "/api/v1/users/nobody", adminToken, "", 404, `unknown user "nobody"`, "", [2]string{}},
		{"unknown user switch", "PUT", "/api/v1/users/nobody/profile", adminToken, `{"profile":"dnd"}`, 404, `unknown user "nobody"`, "", [2]string{}},
		{"unknown user journal", "GET", "/api/v1/users/nobody/journal", adminToken, "", 404, `unknown user "nobody"`, "", [2]string{}},
		{"unknown user profiles", "GET", "/api/v1/users/nobody/profiles", adminToken, "", 404, `unknown user "nobody"`, "", [2]string{}},
		{"unknown user profile put", "PUT", "/api/v1/users/nobody/profiles/x", adminToken, `{}`, 404, `unknown user "nobody"`, "", [2]string{}},
		{"unknown profile switch", "PUT", "/api/v1/users/alice/profile", aliceToken, `{"profile":"nosuch"}`, 404, `unknown profile "nosuch"`, "", [2]string{}},
		{"unknown profile preview", "POST", "/api/v1/users/alice/profile/preview", aliceToken, `{"profile":"nosuch"}`, 404, `unknown profile "nosuch"`, "", [2]string{}},
		{"unknown profile get", "GET", "/api/v1/users/alice/profiles/nosuch", aliceToken, "", 404, `unknown profile "nosuch"`, "", [2]string{}},
		{"unknown profile delete", "DELETE", "/api/v1/users/alice/profiles/nosuch", aliceToken, "", 404, `unknown profile "nosuch"`, "", [2]string{}},
		{"unknown path", "GET", "/api/v1/nothing", adminToken, "", 404, "no such endpoint: /api/v1/nothing", "", [2]string{}},
		{"oversized body", "PUT", "/api/v1/users/alice/profile", aliceToken, big, 413, "body larger than 4096 bytes", "", [2]string{}},
		{"oversized profile", "PUT", "/api/v1/users/alice/profiles/x", aliceToken, big, 413, "body larger", "", [2]string{}},
		{"malformed JSON", "PUT", "/api/v1/users/alice/profile", aliceToken, `{"profile":`, 400, "malformed JSON", "", [2]string{}},
		{"syntax error", "PUT", "/api/v1/users/alice/profile", aliceToken, `{"profile" "dnd"}`, 400, "malformed JSON at byte", "", [2]string{}},
		{"empty body", "PUT", "/api/v1/users/alice/profile", aliceToken, "", 400, "the body is empty", "", [2]string{}},
		{"array body", "PUT", "/api/v1/users/alice/profile", aliceToken, `["dnd"]`, 400, "must be a JSON object", "", [2]string{}},
		{"null body", "POST", "/api/v1/users/alice/profile/preview", aliceToken, `null`, 400, "must be a JSON object", "", [2]string{}},
		{"string body", "PUT", "/api/v1/users/alice/profiles/x", aliceToken, `"x"`, 400, "must be a JSON object", "", [2]string{}},
		{"trailing data", "PUT", "/api/v1/users/alice/profile", aliceToken, `{"profile":"dnd"} {}`, 400, "unexpected data after", "", [2]string{}},
		{"unknown field", "PUT", "/api/v1/users/alice/profile", aliceToken, `{"profile":"dnd","expires":"4pm"}`, 400, `unknown field "expires"`, "expires", [2]string{}},
		{"invalid until", "PUT", "/api/v1/users/alice/profile", aliceToken, `{"profile":"dnd","until":"4pm"}`, 422, `until: "4pm" is neither an RFC 3339 time, a duration such as 90m, a time such as 16:00`, "until", [2]string{}},
		{"unknown action field", "PUT", "/api/v1/users/alice/profiles/x", aliceToken, `{"on_enter":[{"action":"dnd","colour":"red"}]}`, 400, `unknown field "colour"`, "colour", [2]string{}},
		{"wrong type", "PUT", "/api/v1/users/alice/profile", aliceToken, `{"profile":5}`, 400, "profile: want a string, got number", "profile", [2]string{}},
		{"wrong nested type", "PUT", "/api/v1/users/alice/profiles/x", aliceToken, `{"on_enter":[{"action":"followme","ring_time":"20"}]}`, 400, "want an integer, got string", "on_enter.ring_time", [2]string{}},
		{"wrong queues type", "PUT", "/api/v1/users/alice/profiles/x", aliceToken, `{"on_enter":[{"action":"queue_login","queues":5}]}`, 400, `queues: want "all"`, "queues", [2]string{}},
		{"missing profile", "PUT", "/api/v1/users/alice/profile", aliceToken, `{"info":"x"}`, 422, "profile: required", "profile", [2]string{}},
		{"control characters in info", "PUT", "/api/v1/users/alice/profile", aliceToken, `{"profile":"dnd","info":"a\r\nAction: Logoff"}`, 422, "info: must not contain control characters", "info", [2]string{}},
		{"info too long", "POST", "/api/v1/users/alice/profile/preview", aliceToken, `{"profile":"dnd","info":"` + strings.Repeat("é", 201) + `"}`, 422, "info: at most 200 characters", "info", [2]string{}},
		{"unknown action", "PUT", "/api/v1/users/alice/profiles/x", aliceToken, `{"on_enter":[{"action":"teleport"}]}`, 422, `on_enter[0]: unknown action "teleport"`, "on_enter[0]", [2]string{}},
		{"unknown queue", "PUT", "/api/v1/users/alice/profiles/x", aliceToken, `{"on_exit":[{"action":"queue_logout","queues":["salse"]}]}`, 422, `unknown queue "salse"`, "on_exit[0].queues", [2]string{}},
		{"clashing activation", "PUT", "/api/v1/users/alice/profiles/x", aliceToken, `{"activation":"3"}`, 422, `activation number of profile "lunch"`, "activation", [2]string{}},
		{"bad profile id", "PUT", "/api/v1/users/alice/profiles/-x", aliceToken, `{}`, 422, "must be 1-64 letters", "id", [2]string{}},
		{"id differs from path", "PUT", "/api/v1/users/alice/profiles/x", aliceToken, `{"id":"y"}`, 422, `"y" differs from the path's "x"`, "id", [2]string{}},
		{"owner differs from path", "PUT", "/api/v1/users/alice/profiles/x", adminToken, `{"owner":"bob"}`, 422, `"bob" differs`, "owner", [2]string{}},
		{"limit zero", "GET", "/api/v1/users/alice/journal?limit=0", aliceToken, "", 400, "limit", "limit", [2]string{}},
		{"limit too big", "GET", "/api/v1/users/alice/journal?limit=1001", aliceToken, "", 400, "from 1 to 1000", "limit", [2]string{}},
		{"limit not a number", "GET", "/api/v1/users/alice/journal?limit=ten", aliceToken, "", 400, `"ten"`, "limit", [2]string{}},
		{"method on switch", "GET", "/api/v1/users/alice/profile", aliceToken, "", 405, "method GET not allowed", "", [2]string{"Allow", "PUT"}},
		{"method on status", "POST", "/api/v1/users/alice", aliceToken, "{}", 405, "", "", [2]string{"Allow", "GET, HEAD"}},
		{"method on profile", "PATCH", "/api/v1/users/alice/profiles/x", aliceToken, "{}", 405, "", "", [2]string{"Allow", "DELETE, GET, HEAD, PUT"}},
		{"method on presence", "DELETE", "/api/v1/presence", "", "", 405, "", "", [2]string{"Allow", "GET, HEAD"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := a.do(t, tc.method, tc.path, tc.token, tc.body)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			var e errorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" {
				t.Fatalf("error body %q: %v", rec.Body, err)
			}
			if !strings.Contains(e.Error, tc.msg) {
				t.Errorf("error %q, want it to contain %q", e.Error, tc.msg)
			}
			if e.Field != tc.field {
				t.Errorf("field %q, want %q (error %q)", e.Field, tc.field, e.Error)
			}
			if tc.header[0] != "" && rec.Header().Get(tc.header[0]) != tc.header[1] {
				t.Errorf("%s: %q, want %q", tc.header[0], rec.Header().Get(tc.header[0]), tc.header[1])
			}
		})
	}
	if ops := a.pbx.Applied(); len(ops) != 0 {
		t.Fatalf("failed requests changed the PBX: %v", ops)
	}
}

// TestActionSemanticsInPersonalProfiles: the API refuses what the configuration refuses: the
// old enabled key with a hint, on where it means nothing; disabled: true is kept.
func TestActionSemanticsInPersonalProfiles(t *testing.T) {
	a := newTestAPI(t)
	for _, tc := range []struct{ body, field, msg string }{
		{`{"on_enter":[{"action":"dnd","enabled":false}]}`, "on_enter[0].enabled", "to switch dnd off write on: false (probably meant)"},
		{`{"on_enter":[{"action":"queue_logout","queues":"all","on":false}]}`, "on_enter[0].on", "has no meaning for queue_logout"},
		{`{"on_exit":[{"action":"followme","families":["desk"],"to":"1002"}]}`, "on_exit[0].to", "has no meaning for followme"},
	} {
		var e errorBody
		a.must(t, "PUT", "/api/v1/users/alice/profiles/x", aliceToken, tc.body, 422, &e)
		if e.Field != tc.field || !strings.Contains(e.Error, tc.msg) {
			t.Errorf("%s: field %q error %q, want %q naming %q", tc.body, e.Field, e.Error, tc.field, tc.msg)
		}
	}
	var p profileView
	a.must(t, "PUT", "/api/v1/users/alice/profiles/x", aliceToken, `{"on_enter":[{"action":"dnd","disabled":true}]}`, http.StatusCreated, &p)
	if len(p.OnEnter) != 1 || !p.OnEnter[0].Disabled {
		t.Fatalf("saved %+v, want the dnd action kept disabled", p.OnEnter)
	}
}

// TestValidationListsEveryProblem: a 422 names the first field and lists all of them.
func TestValidationListsEveryProblem(t *testing.T) {
	a := newTestAPI(t)
	var e errorBody
	a.must(t, "PUT", "/api/v1/users/alice/profiles/x", aliceToken,
		`{"visibility":"secret","on_enter":[{"action":"forward","type":"sometimes"}]}`, 422, &e)
	fields := map[string]bool{}
	for _, p := range e.Problems {
		fields[p.Field] = true
	}
	if e.Field != "visibility" || !fields["on_enter[0].type"] || !fields["on_enter[0].to"] || len(e.Problems) != 3 {
		t.Fatalf("problems %+v", e)
	}
}

// TestCorruptRedisData: unreadable state answers 500 naming the key; an unreadable journal
// entry is named while the readable ones are still answered.
func TestCorruptRedisData(t *testing.T) {
	a := newTestAPI(t)
	ctx := context.Background()
	a.must(t, "PUT", "/api/v1/users/alice/profile", aliceToken, `{"profile":"lunch"}`, 200, nil)
	if err := a.rdb.XAdd(ctx, &redis.XAddArgs{Stream: a.prefix + "user:alice:journal", Values: map[string]any{"entry": "{not json"}}).Err(); err != nil {
		t.Fatal(err)
	}
	var j journalView
	a.must(t, "GET", "/api/v1/users/alice/journal", aliceToken, "", 200, &j)
	if len(j.Entries) != 1 || len(j.Unreadable) != 1 || !strings.Contains(j.Unreadable[0], a.prefix+"user:alice:journal") {
		t.Fatalf("journal with an unreadable entry: %+v", j)
	}

	key := a.prefix + "user:alice"
	if err := a.rdb.HSet(ctx, key, "state", "{not json").Err(); err != nil {
		t.Fatal(err)
	}
	var e errorBody
	a.must(t, "GET", "/api/v1/users/alice", aliceToken, "", 500, &e)
	if !strings.Contains(e.Error, key) || strings.Contains(e.Error, aliceToken) {
		t.Fatalf("corrupt state: %q", e.Error)
	}
	if !strings.Contains(a.logs.String(), key) {
		t.Errorf("corrupt state not logged: %s", a.logs)
	}
}

// TestClientGone: a request cancelled by its client is answered (and counted) as 499, not 5xx.
func TestClientGone(t *testing.T) {
	a := newTestAPI(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequestWithContext(ctx, "GET", "/api/v1/users/alice", nil)
	req.Header.Set("Authorization", "Bearer "+aliceToken)
	rec := httptest.NewRecorder()
	a.h.ServeHTTP(rec, req)
	if rec.Code != statusClientClosed {
		t.Fatalf("cancelled request: %d %s", rec.Code, rec.Body)
	}
}

func TestPanicIsRecovered(t *testing.T) {
	a := newTestAPI(t)
	h := a.h.instrument("GET /boom", func(w http.ResponseWriter, r *http.Request) {
		var m map[string]int
		m["x"] = 1 // nil map: panics
	})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/boom", nil))
	if rec.Code != 500 || !strings.Contains(rec.Body.String(), `"error":"internal error"`) {
		t.Fatalf("panic answered %d %s", rec.Code, rec.Body)
	}
	if logs := a.logs.String(); !strings.Contains(logs, "handler panicked") || !strings.Contains(logs, "nil map") {
		t.Fatalf("panic not logged: %s", logs)
	}
	if got := testutil.ToFloat64(a.h.metrics.requests.WithLabelValues("GET /boom", "500")); got != 1 {
		t.Fatalf("panic counted %v times", got)
	}
}

// TestMetricsLabelRoutesNotPaths: the route label is the pattern, so user IDs never make series.
func TestMetricsLabelRoutesNotPaths(t *testing.T) {
	a := newTestAPI(t)
	a.must(t, "GET", "/api/v1/users/alice", aliceToken, "", 200, nil)
	a.must(t, "GET", "/api/v1/users/bob", bobToken, "", 200, nil)
	a.do(t, "GET", "/api/v1/users/carol", bobToken, "")
	a.do(t, "DELETE", "/api/v1/users/alice/profile", aliceToken, "")
	a.do(t, "GET", "/api/v1/users/alice/x/y/z", aliceToken, "")
	if got := testutil.ToFloat64(a.h.metrics.requests.WithLabelValues("GET /api/v1/users/{user}", "200")); got != 2 {
		t.Errorf("GET status 200 counted %v", got)
	}
	if got := testutil.ToFloat64(a.h.metrics.requests.WithLabelValues("GET /api/v1/users/{user}", "403")); got != 1 {
		t.Errorf("GET status 403 counted %v", got)
	}
	if got := testutil.ToFloat64(a.h.metrics.requests.WithLabelValues("/api/v1/users/{user}/profile", "405")); got != 1 {
		t.Errorf("405 counted %v", got)
	}
	if got := testutil.ToFloat64(a.h.metrics.requests.WithLabelValues("/", "404")); got != 1 {
		t.Errorf("404 counted %v", got)
	}
	families, err := a.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "route" {
					seen++
					if strings.Contains(l.GetValue(), "alice") || strings.Contains(l.GetValue(), "bob") {
						t.Errorf("%s has a raw path label %q", f.GetName(), l.GetValue())
					}
				}
			}
		}
	}
	if seen == 0 {
		t.Fatal("no route labels registered")
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	a := newTestAPI(t)
	e := a.h.engine
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"no engine", Options{AdminToken: "x"}, "Engine is required"},
		{"negative body limit", Options{Engine: e, MaxBodyBytes: -1}, "MaxBodyBytes must not be negative"},
		{"admin token shared", Options{Engine: e, AdminToken: bobToken}, `token of user "bob"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
	// Without an admin token nobody is admin, not even with an empty bearer.
	h, err := New(Options{Engine: e, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	for _, auth := range []string{"Bearer ", "Bearer", "Basic " + adminToken, "bearer " + aliceToken} {
		req := httptest.NewRequest("GET", "/api/v1/users/bob", nil)
		req.Header.Set("Authorization", auth)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		checkAnswer(t, req, rec)
		want := 401
		if strings.HasPrefix(auth, "bearer ") {
			want = 403 // the scheme is case-insensitive: alice's token is valid, for alice only
		}
		if rec.Code != want {
			t.Errorf("Authorization %q: %d, want %d", auth, rec.Code, want)
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
