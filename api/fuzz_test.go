package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/presenced/presenced/presence"
)

// FuzzSwitchBody sends garbage as the body of PUT /users/{user}/profile: whatever it is, the
// answer is a JSON error or a switch, never a 500 or a panic, and as openapi.json describes it.
func FuzzSwitchBody(f *testing.F) {
	for _, seed := range []string{
		``, ` `, `{}`, `[]`, `null`, `"dnd"`, `5`, `{"profile":"dnd"}`, `{"profile":"lunch","info":"until 4pm"}`,
		`{"profile":"nosuch"}`, `{"profile":5}`, `{"profile":null}`, `{"profile":"dnd","info":null}`,
		`{"profile":"dnd","info":"\u0000"}`, `{"profile":"dnd","extra":1}`, `{"profile":"dnd"}{"profile":"dnd"}`,
		`{"profile":"dnd"`, `{"profile":"\ud800"}`, "{\"profile\":\"\xff\xfe\"}", `{"PROFILE":"dnd"}`,
		`{"profile":{"id":"dnd"}}`, `{"profile":["dnd"]}`, `{"info":"x"}`, `{"profile":"../../etc/passwd"}`,
		`{"profile":"available","info":"` + string(bytes.Repeat([]byte("é"), 300)) + `"}`,
		string(bytes.Repeat([]byte("["), 10000)), `{"profile":"dnd","info":"\r\nAction: Logoff\r\n"}`,
	} {
		f.Add([]byte(seed))
	}
	a := newTestAPI(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest("PUT", "/api/v1/users/alice/profile", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+adminToken)
		rec := httptest.NewRecorder()
		a.h.ServeHTTP(rec, req)
		checkAnswer(t, req, rec)
		if rec.Code >= 500 {
			t.Fatalf("body %q: status %d: %s", body, rec.Code, rec.Body)
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("body %q: answer not JSON: %q", body, rec.Body)
		}
		switch rec.Code {
		case 200, 400, 404, 413, 422:
		default:
			t.Fatalf("body %q: unexpected status %d: %s", body, rec.Code, rec.Body)
		}
	})
}

// FuzzProfileBody sends garbage as the body of PUT /users/{user}/profiles/{id} with a user's
// token: the answer is a JSON error or the saved profile, never a 500 or a panic, and a saved
// profile is one the engine accepts again.
func FuzzProfileBody(f *testing.F) {
	for _, seed := range []string{
		``, `{}`, `[]`, `null`, `{"name":"Home"}`, `{"id":"other"}`, `{"owner":"bob"}`, `{"personal":true}`,
		`{"name":"Home","on_enter":[{"action":"followme","families":["mobile","softphone"],"order":"sequential","ring_time":15}]}`,
		`{"on_enter":[{"action":"variable","name":"CF/1002","value":"8666"}]}`,
		`{"on_enter":[{"action":"variable","scope":"global","name":"PRESENCED_APP","value":"x"}]}`,
		`{"on_enter":[{"action":"location","device":"Local/8999@lab-sink/n"}]}`,
		`{"on_enter":[{"action":"caller_id","value":"\"Carol\" <1003>"}]}`,
		`{"on_enter":[{"action":"forward","type":"unconditional","to":"*552"}]}`,
		`{"on_enter":[{"action":"webhook","url":"http://169.254.169.254/"}]}`,
		`{"on_enter":[{"action":"queue_pause","queues":"all","reason":"Lunch"}],"on_exit":[{"action":"queue_unpause","queues":["support"]}]}`,
		`{"on_enter":[{"action":"dnd","on":"yes"}]}`, `{"on_enter":[{"action":"dnd","enabled":null}]}`,
		`{"visibility":"private","presence":"away","colour":"#ff0000","icon":"coffee","activation":"77","priority":3,"sticky":true}`,
		`{"name":"\u000b"}`, `{"colour":"red;x:y"}`, `{"on_enter":[{"action":"followme","ring_time":-1}]}`,
	} {
		f.Add([]byte(seed))
	}
	a := newTestAPI(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest("PUT", "/api/v1/users/alice/profiles/fuzz", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+aliceToken)
		rec := httptest.NewRecorder()
		a.h.ServeHTTP(rec, req)
		checkAnswer(t, req, rec)
		if rec.Code >= 500 || !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("body %q: status %d: %q", body, rec.Code, rec.Body)
		}
		switch rec.Code {
		case 200, 201:
			var p presence.Profile
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
				t.Fatalf("body %q: answer %q: %v", body, rec.Body, err)
			}
			u, _ := a.h.engine.Catalog().User("alice")
			for _, chain := range [][]presence.Action{p.OnEnter, p.OnExit} {
				for _, act := range chain {
					if err := a.h.engine.Catalog().CheckPersonalAction(u, act); err != nil {
						t.Fatalf("body %q: saved an action the rules refuse: %v", body, err)
					}
				}
			}
		case 400, 409, 413, 422:
		default:
			t.Fatalf("body %q: unexpected status %d: %s", body, rec.Code, rec.Body)
		}
	})
}

// FuzzTriggerBody sends garbage as the body and name of POST /users/{user}/triggers/{name}: the
// answer is JSON and never a 500.
func FuzzTriggerBody(f *testing.F) {
	for _, seed := range []struct{ name, body string }{
		{"zoom", `{"state":"start","profile":"dnd"}`}, {"zoom", `{"state":"end"}`}, {"zoom", `{"state":"start"}`},
		{"zoom", `{"state":"pause"}`}, {"a%0D%0Ab", `{"state":"start","profile":"dnd"}`}, {"x", `{}`}, {"x", ``},
		{"x", `{"state":"start","profile":"nosuch"}`}, {"x", `{"state":5}`}, {"%00", `{"state":"end"}`},
	} {
		f.Add(seed.name, []byte(seed.body))
	}
	a, _, _ := newTriggerAPI(f)
	f.Fuzz(func(t *testing.T, name string, body []byte) {
		req, err := http.NewRequest("POST", "http://presenced/api/v1/users/alice/triggers/"+url.PathEscape(name), bytes.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("Authorization", "Bearer "+aliceToken)
		rec := httptest.NewRecorder()
		a.h.ServeHTTP(rec, req)
		if rec.Code == http.StatusTemporaryRedirect && (name == "." || name == "..") {
			return // ServeMux redirects a path with a dot segment to its clean form
		}
		checkAnswer(t, req, rec)
		if rec.Code >= 500 || !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("name %q body %q: status %d: %q", name, body, rec.Code, rec.Body)
		}
	})
}
