package api

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"testing"
)

// FuzzSwitchBody sends garbage as the body of PUT /users/{user}/profile: whatever it is, the
// answer is a JSON error or a switch, never a 500 or a panic.
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
