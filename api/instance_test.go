package api

import (
	"context"
	"reflect"
	"testing"
)

// TestInstance: GET /instance is the admin's: it answers what the daemon says of the instance
// (leader or standby, the leader, readiness), as openapi.json describes it (every answer of
// the tests is checked against it); a user's token is refused, and an API built without the
// instance's health answers 503.
func TestInstance(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   Instance
	}{
		{"leader", Instance{ID: "pd-a", Version: "v1.2.3", Role: "leader", Leader: "pd-a", LeaderEpoch: 7, Ready: true,
			Checks: map[string]string{"ami": "ok", "ari": "ok", "store": "ok"}}},
		{"standby", Instance{ID: "pd-b", Version: "v1.2.3", Role: "standby", Leader: "pd-a", LeaderEpoch: 7, Ready: true,
			Checks: map[string]string{"ami": "ok", "ari": "ok", "store": "ok"}}},
		{"election", Instance{ID: "pd-b", Version: "dev", Role: "standby", LeaderNote: "an election is under way", Ready: false,
			Checks: map[string]string{"ami": "not connected to 127.0.0.1:5038", "ari": "ok", "store": "ok"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newTestAPIWith(t, fixtureUsers(), func(o *Options) {
				o.Instance = func(context.Context) Instance { return tc.in }
			})
			var got Instance
			a.must(t, "GET", "/api/v1/instance", adminToken, "", 200, &got)
			if !reflect.DeepEqual(got, tc.in) {
				t.Errorf("answered %+v, want %+v", got, tc.in)
			}
			a.must(t, "GET", "/api/v1/instance", aliceToken, "", 403, nil)
			a.must(t, "GET", "/api/v1/instance", "", "", 401, nil)
		})
	}
	a := newTestAPI(t)
	a.must(t, "GET", "/api/v1/instance", adminToken, "", 503, nil)
}
