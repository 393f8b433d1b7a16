package api

import (
	"strings"
	"testing"

	"github.com/presenced/presenced/presence"
)

// TestWarningsAndReconcile: a pause undone by hand shows as "your device status does not
// match your profile" in the user's status, naming what differs, and POST .../reconcile
// fixes it in one call.
func TestWarningsAndReconcile(t *testing.T) {
	a := newTestAPI(t)
	a.must(t, "PUT", "/api/v1/users/alice/profile", aliceToken, `{"profile":"available"}`, 200, nil)
	a.must(t, "PUT", "/api/v1/users/alice/profile", aliceToken, `{"profile":"lunch"}`, 200, nil)
	var st userStatusView
	a.must(t, "GET", "/api/v1/users/alice", aliceToken, "", 200, &st)
	if len(st.Warnings) != 0 || len(st.Differences) != 0 || st.Pending == nil || !st.InSync {
		t.Fatalf("in sync: %+v", st)
	}
	iface := presence.DefaultNaming().Interface(&fixtureUsers()[0])
	a.pbx.Edit(func(s *presence.Target) {
		for key, m := range s.Queues {
			if strings.HasSuffix(key, "|"+iface) {
				m.Paused, m.Reason = false, ""
			}
		}
	})
	a.must(t, "GET", "/api/v1/users/alice", aliceToken, "", 200, &st)
	if st.InSync || len(st.Warnings) != 1 || st.Warnings[0].Code != presence.WarningStatusMismatch ||
		!strings.Contains(st.Warnings[0].Message, "Your device status does not match your profile: queue ") ||
		!strings.Contains(st.Warnings[0].Message, "not paused, the profile says paused (Lunch)") ||
		len(st.Differences) == 0 || st.Differences[0].Policy != presence.PolicyEnforce {
		t.Fatalf("after an unpause by hand: %+v", st)
	}

	a.must(t, "POST", "/api/v1/users/alice/reconcile", bobToken, "", 403, nil)
	a.must(t, "POST", "/api/v1/users/nobody/reconcile", adminToken, "", 404, nil)
	var res presence.SwitchResult
	a.must(t, "POST", "/api/v1/users/alice/reconcile", aliceToken, "", 200, &res)
	if !res.InSync || res.Actor != "alice" || len(res.Outcomes) != len(st.Differences) {
		t.Fatalf("reconcile: %+v, want %d operations", res, len(st.Differences))
	}
	for _, o := range res.Outcomes {
		if o.Result != presence.ResultApplied || o.Op.Kind != presence.OpQueuePause {
			t.Errorf("reconcile outcome %s: %s", o.Op, o.Result)
		}
	}
	a.must(t, "GET", "/api/v1/users/alice", aliceToken, "", 200, &st)
	if !st.InSync || len(st.Warnings) != 0 {
		t.Fatalf("after reconcile: %+v", st)
	}
	var j journalView
	a.must(t, "GET", "/api/v1/users/alice/journal?limit=1", aliceToken, "", 200, &j)
	if len(j.Entries) != 1 || j.Entries[0].Kind != "reconcile" || j.Entries[0].Actor != "alice" {
		t.Fatalf("journal: %+v", j.Entries)
	}
	a.must(t, "GET", "/api/v1/users/alice?device=%01", aliceToken, "", 400, nil)
}

// TestNothingToDoAnswersArrays: a reconcile or preview with nothing to do answers
// "outcomes": [] (never null, as the document says array), and a user without queues has
// them as an empty array.
func TestNothingToDoAnswersArrays(t *testing.T) {
	a := newTestAPIWith(t, append(fixtureUsers(), presence.User{ID: "dora", Name: "Dora", Extension: "1004",
		Token: testToken("dora"), Devices: []presence.Device{{Dial: "PJSIP/1004", Family: presence.FamilyDesk}}}), nil)
	a.must(t, "PUT", "/api/v1/users/alice/profile", aliceToken, `{"profile":"lunch"}`, 200, nil)
	for _, rq := range []struct{ method, path, body string }{
		{"POST", "/api/v1/users/alice/reconcile", ""},
		{"POST", "/api/v1/users/alice/profile/preview", `{"profile":"lunch"}`},
		{"POST", "/api/v1/users/dora/reconcile", ""},
	} {
		rec := a.must(t, rq.method, rq.path, adminToken, rq.body, 200, nil)
		if !strings.Contains(rec.Body.String(), `"outcomes":[]`) {
			t.Errorf("%s %s with nothing to do: %s", rq.method, rq.path, rec.Body)
		}
	}
	rec := a.must(t, "GET", "/api/v1/users/dora", adminToken, "", 200, nil)
	for _, want := range []string{`"queues":[]`, `"drift":[]`, `"differences":[]`, `"warnings":[]`, `"pending":[]`} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("dora's status lacks %s: %s", want, rec.Body)
		}
	}
}
