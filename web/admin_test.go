package web

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// TestAdminHealth: the admin page shows this instance's health as the daemon gives it (what
// GET /api/v1/instance answers): its id, its role, the leader with its epoch or why none is
// known, readiness and each check.
func TestAdminHealth(t *testing.T) {
	ok := map[string]string{"ami": "ok", "ari": "ok", "store": "ok"}
	for _, tc := range []struct {
		name   string
		health Health
		want   map[string]string // element id → its text
	}{
		{"leader", Health{Instance: "pd-a", Version: "v1.2.3", Role: "leader", Leader: "pd-a", LeaderEpoch: 4, Ready: true, Checks: ok},
			map[string]string{"instance": `pd-a <span class="hint">v1.2.3</span>`, "role": "leader: writes to Asterisk",
				"leader": "pd-a (epoch 4), this instance", "ready": "yes"}},
		{"standby", Health{Instance: "pd-b", Role: "standby", Leader: "pd-a", LeaderEpoch: 4, Ready: true, Checks: ok},
			map[string]string{"instance": "pd-b", "role": "standby: serves the API and these pages, the leader writes",
				"leader": "pd-a (epoch 4)", "ready": "yes"}},
		{"waiting", Health{Instance: "pd-b", Role: "standby", Leader: "pd-b", LeaderEpoch: 5, LeaderNote: "waiting for an earlier lease to run out before it writes", Checks: ok},
			map[string]string{"leader": "pd-b (epoch 5), this instance: waiting for an earlier lease to run out before it writes"}},
		{"election", Health{Instance: "pd-b", Role: "standby", LeaderNote: "an election is under way",
			Checks: map[string]string{"ami": "not connected to 127.0.0.1:5038", "ari": "ok", "store": "ok"}},
			map[string]string{"leader": "none known: an election is under way", "ready": "no"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newAppWith(t, nil, func(o *Options, _ *redis.Client) {
				o.Health = func(context.Context) Health { return tc.health }
			})
			c := a.client(t)
			c.signIn("carol", testPassword)
			code, body, _ := c.get("/admin")
			if code != http.StatusOK {
				t.Fatalf("admin page: %d", code)
			}
			for id, want := range tc.want {
				if got := between(body, `<dd id="`+id+`">`, "</dd>"); got != `<dd id="`+id+`">`+want {
					t.Errorf("%s: %q, want %q", id, got, want)
				}
			}
			for k, v := range tc.health.Checks {
				if !strings.Contains(body, "<dt>"+k+"</dt><dd>"+v+"</dd>") {
					t.Errorf("check %s: %s not shown", k, v)
				}
			}
		})
	}
	// Only admins see it.
	a := newAppWith(t, nil, func(o *Options, _ *redis.Client) {
		o.Health = func(context.Context) Health { t.Error("health read for a user"); return Health{} }
	})
	c := a.client(t)
	c.signIn("alice", testPassword)
	if code, _, _ := c.get("/admin"); code != http.StatusForbidden {
		t.Errorf("alice: %d", code)
	}
}
