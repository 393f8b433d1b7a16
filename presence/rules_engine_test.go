package presence_test

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/presenced/presenced/presence"
)

// TestPersonalProfileStateFollowsTheProfile: what a personal profile put into the desired
// state goes when the profile is deleted, changes when it is changed, and an action stored
// under looser rules (written to Redis directly) never reaches the PBX.
func TestPersonalProfileStateFollowsTheProfile(t *testing.T) {
	ctx := context.Background()
	cfg := presence.OpenRules()
	cfg.Users = []presence.User{presence.Alice()}
	reg := prometheus.NewRegistry()
	e, pbx, states := newTestEngineFrom(t, cfg, reg)
	fwd := &presence.Profile{ID: "fwd", Name: "Forwarded", OnEnter: []presence.Action{
		{Kind: presence.ActionVariable, Name: "PROFILE/1001/var/x", Value: "1"},
		{Kind: presence.ActionForward, Type: presence.ForwardUnconditional, To: "1002"},
	}}
	if err := e.SaveProfile(ctx, "alice", fwd); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"fwd", presence.ProfileAvailable} {
		if _, err := e.Switch(ctx, presence.SwitchRequest{User: "alice", Profile: p, Source: presence.SourceAPI}); err != nil {
			t.Fatal(err)
		}
	}
	desired := func() *presence.Desired {
		t.Helper()
		st, err := e.Status(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		return st.Desired
	}
	if d := desired(); d.AstDB["PROFILE/1001/var/x"] == nil || *d.AstDB["CF/1001"] != "1002" {
		t.Fatalf("after leaving fwd its settings stay desired (nothing undid them): %+v", d.AstDB)
	}
	fwd.OnEnter[1].To = "1003"
	if err := e.SaveProfile(ctx, "alice", fwd); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the changed forward applied", func() bool { return dbGet(pbx, "CF/1001") == "1003" })
	if err := e.DeleteProfile(ctx, "alice", "fwd"); err != nil {
		t.Fatal(err)
	}
	if d := desired(); d.AstDB["CF/1001"] != nil || d.AstDB["PROFILE/1001/var/x"] != nil {
		t.Fatalf("after deleting fwd its settings are still desired: %+v", d.AstDB)
	}
	if _, has := desired().AstDB["CF/1001"]; has {
		t.Fatal("CF/1001 is still presenced's business after the profile that set it was deleted")
	}

	// A profile stored by an older presenced, or written to Redis by hand, is checked again.
	evil := &presence.Profile{ID: "evil", Name: "Evil", Owner: "alice", OnEnter: []presence.Action{
		{Kind: presence.ActionVariable, Name: "CF/1002", Value: "8666"},
		{Kind: presence.ActionVariable, Scope: "global", Name: "PRESENCED_APP", Value: "x"},
		{Kind: presence.ActionLocation, Device: "Local/8999@lab-sink/n"},
		{Kind: presence.ActionDND},
	}}
	if err := states.SavePersonalProfile(ctx, "alice", evil); err != nil {
		t.Fatal(err)
	}
	res, err := e.Switch(ctx, presence.SwitchRequest{User: "alice", Profile: "evil", Source: presence.SourceAPI})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range res.Outcomes {
		if o.Op.Key == "CF/1002" || o.Op.Key == "PRESENCED_APP" || o.Op.Key == "PROFILE/1001/location" {
			t.Errorf("a refused action reached the PBX: %s", o.Op)
		}
	}
	var (
		dnd        *string
		cf, global bool
	)
	pbx.Edit(func(state *presence.Target) {
		dnd = state.AstDB["DND/1001"]
		_, cf = state.AstDB["CF/1002"]
		_, global = state.Globals["PRESENCED_APP"]
	})
	if dnd == nil || cf || global {
		t.Fatalf("the allowed DND %v applied, CF/1002 %v and the global %v not", dnd, cf, global)
	}
	if n := testutil.ToFloat64(e.Metrics().RefusedActions); n < 3 {
		t.Errorf("presenced_personal_actions_refused_total = %v, want the three refused actions counted", n)
	}
}

// TestLimits: the number of personal profiles, of actions and the info are bounded.
func TestLimits(t *testing.T) {
	ctx := context.Background()
	cfg := presence.CatalogConfig{Users: []presence.User{presence.Alice()}, Limits: presence.Limits{PersonalProfiles: 2, Actions: 3, InfoLength: 10}}
	e, _, _ := newTestEngineFrom(t, cfg, nil)
	for _, id := range []string{"a", "b"} {
		if err := e.SaveProfile(ctx, "alice", &presence.Profile{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.SaveProfile(ctx, "alice", &presence.Profile{ID: "c"}); err == nil || !strings.Contains(err.Error(), "the limit is 2 (limits.personal_profiles)") {
		t.Errorf("a third profile: %v", err)
	}
	if err := e.SaveProfile(ctx, "alice", &presence.Profile{ID: "b"}); err != nil {
		t.Errorf("replacing one of two: %v", err)
	}
	four := make([]presence.Action, 4)
	for i := range four {
		four[i] = presence.Action{Kind: presence.ActionDND}
	}
	if err := e.SaveProfile(ctx, "alice", &presence.Profile{ID: "a", OnEnter: four}); err == nil || !strings.Contains(err.Error(), "4 actions in on_enter and on_exit, the limit is 3") {
		t.Errorf("four actions: %v", err)
	}
	for _, info := range []string{"eleven char", "a\r\nAction: Logoff", "\x01"} {
		if _, err := e.Switch(ctx, presence.SwitchRequest{User: "alice", Profile: "dnd", Info: info, Source: presence.SourceAPI}); err == nil || !strings.Contains(err.Error(), "info:") {
			t.Errorf("info %q: %v", info, err)
		}
	}
	if _, err := e.Switch(ctx, presence.SwitchRequest{User: "alice", Profile: "dnd", Info: "ten chars!", Source: presence.SourceAPI}); err != nil {
		t.Errorf("info of 10 characters: %v", err)
	}
}

// TestWebhooksDoNotNamePrivateProfiles: the admin's webhooks see that a user switched, not the
// name or info of the user's own private profile.
func TestWebhooksDoNotNamePrivateProfiles(t *testing.T) {
	ctx := context.Background()
	avail := presence.Profile{ID: presence.ProfileAvailable, Name: "Available", Presence: "available",
		OnEnter: []presence.Action{{Kind: presence.ActionWebhook, URL: "http://hooks.example/enter"}},
		OnExit:  []presence.Action{{Kind: presence.ActionWebhook, URL: "http://hooks.example/exit"}}}
	e, _, _ := newTestEngine(t, []presence.User{presence.Alice()}, []presence.Profile{avail})
	if err := e.SaveProfile(ctx, "alice", &presence.Profile{ID: "doc", Name: "Oncology", Visibility: presence.VisibilityPrivate, Presence: "away"}); err != nil {
		t.Fatal(err)
	}
	hookEvents := func(res *presence.SwitchResult) []presence.SwitchEvent {
		var out []presence.SwitchEvent
		for _, o := range res.Outcomes {
			if o.Op.Kind == presence.OpWebhook {
				out = append(out, *o.Op.Event)
			}
		}
		return out
	}
	for _, step := range []struct{ to, info, wantFrom, wantTo, wantInfo string }{
		{presence.ProfileAvailable, "", "", presence.ProfileAvailable, ""},
		{"doc", "chemo at St. Mary", presence.ProfileAvailable, "", ""},
		{presence.ProfileAvailable, "back", "", presence.ProfileAvailable, "back"},
	} {
		res, err := e.Switch(ctx, presence.SwitchRequest{User: "alice", Profile: step.to, Info: step.info, Source: presence.SourceAPI})
		if err != nil {
			t.Fatal(err)
		}
		evs := hookEvents(res)
		if len(evs) != 1 {
			t.Fatalf("switch to %s: webhooks %+v", step.to, evs)
		}
		if ev := evs[0]; ev.From != step.wantFrom || ev.To != step.wantTo || ev.Info != step.wantInfo {
			t.Errorf("switch to %s: the webhook sees %q → %q (%q), want %q → %q (%q)", step.to, ev.From, ev.To, ev.Info,
				step.wantFrom, step.wantTo, step.wantInfo)
		}
		if res.To != step.to || res.Info != step.info {
			t.Errorf("the user's own answer is redacted: %+v", res.SwitchEvent)
		}
	}
}
