package presence

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestPersonalProfileStateFollowsTheProfile: what a personal profile put into the desired
// state goes when the profile is deleted, changes when it is changed, and an action stored
// under looser rules (written to Redis directly) never reaches the PBX.
func TestPersonalProfileStateFollowsTheProfile(t *testing.T) {
	ctx := context.Background()
	cfg := openRules()
	cfg.Users = []User{alice()}
	reg := prometheus.NewRegistry()
	e, pbx, states := newTestEngineFrom(t, cfg, reg)
	fwd := &Profile{ID: "fwd", Name: "Forwarded", OnEnter: []Action{
		{Kind: ActionVariable, Name: "PROFILE/1001/var/x", Value: "1"},
		{Kind: ActionForward, Type: ForwardUnconditional, To: "1002"},
	}}
	if err := e.SaveProfile(ctx, "alice", fwd); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"fwd", ProfileAvailable} {
		if _, err := e.Switch(ctx, SwitchRequest{User: "alice", Profile: p, Source: SourceAPI}); err != nil {
			t.Fatal(err)
		}
	}
	desired := func() *Desired {
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
	waitFor(t, "the changed forward applied", func() bool {
		pbx.mu.Lock()
		defer pbx.mu.Unlock()
		v := pbx.state.AstDB["CF/1001"]
		return v != nil && *v == "1003"
	})
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
	evil := &Profile{ID: "evil", Name: "Evil", Owner: "alice", OnEnter: []Action{
		{Kind: ActionVariable, Name: "CF/1002", Value: "8666"},
		{Kind: ActionVariable, Scope: "global", Name: "PRESENCED_APP", Value: "x"},
		{Kind: ActionLocation, Device: "Local/8999@lab-sink/n"},
		{Kind: ActionDND},
	}}
	if err := states.SavePersonalProfile(ctx, "alice", evil); err != nil {
		t.Fatal(err)
	}
	res, err := e.Switch(ctx, SwitchRequest{User: "alice", Profile: "evil", Source: SourceAPI})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range res.Outcomes {
		if o.Op.Key == "CF/1002" || o.Op.Key == "PRESENCED_APP" || o.Op.Key == "PROFILE/1001/location" {
			t.Errorf("a refused action reached the PBX: %s", o.Op)
		}
	}
	pbx.mu.Lock()
	dnd := pbx.state.AstDB["DND/1001"]
	_, cf := pbx.state.AstDB["CF/1002"]
	_, global := pbx.state.Globals["PRESENCED_APP"]
	pbx.mu.Unlock()
	if dnd == nil || cf || global {
		t.Fatalf("the allowed DND %v applied, CF/1002 %v and the global %v not", dnd, cf, global)
	}
	if n := testutil.ToFloat64(e.metrics.refusedActions); n < 3 {
		t.Errorf("presenced_personal_actions_refused_total = %v, want the three refused actions counted", n)
	}
}

// TestLimits: the number of personal profiles, of actions and the info are bounded.
func TestLimits(t *testing.T) {
	ctx := context.Background()
	cfg := CatalogConfig{Users: []User{alice()}, Limits: Limits{PersonalProfiles: 2, Actions: 3, InfoLength: 10}}
	e, _, _ := newTestEngineFrom(t, cfg, nil)
	for _, id := range []string{"a", "b"} {
		if err := e.SaveProfile(ctx, "alice", &Profile{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.SaveProfile(ctx, "alice", &Profile{ID: "c"}); err == nil || !strings.Contains(err.Error(), "the limit is 2 (limits.personal_profiles)") {
		t.Errorf("a third profile: %v", err)
	}
	if err := e.SaveProfile(ctx, "alice", &Profile{ID: "b"}); err != nil {
		t.Errorf("replacing one of two: %v", err)
	}
	four := make([]Action, 4)
	for i := range four {
		four[i] = Action{Kind: ActionDND}
	}
	if err := e.SaveProfile(ctx, "alice", &Profile{ID: "a", OnEnter: four}); err == nil || !strings.Contains(err.Error(), "4 actions in on_enter and on_exit, the limit is 3") {
		t.Errorf("four actions: %v", err)
	}
	for _, info := range []string{"eleven char", "a\r\nAction: Logoff", "\x01"} {
		if _, err := e.Switch(ctx, SwitchRequest{User: "alice", Profile: "dnd", Info: info, Source: SourceAPI}); err == nil || !strings.Contains(err.Error(), "info:") {
			t.Errorf("info %q: %v", info, err)
		}
	}
	if _, err := e.Switch(ctx, SwitchRequest{User: "alice", Profile: "dnd", Info: "ten chars!", Source: SourceAPI}); err != nil {
		t.Errorf("info of 10 characters: %v", err)
	}
}

// TestWebhooksDoNotNamePrivateProfiles: the admin's webhooks see that a user switched, not the
// name or info of the user's own private profile.
func TestWebhooksDoNotNamePrivateProfiles(t *testing.T) {
	ctx := context.Background()
	avail := Profile{ID: ProfileAvailable, Name: "Available", Presence: "available",
		OnEnter: []Action{{Kind: ActionWebhook, URL: "http://hooks.example/enter"}},
		OnExit:  []Action{{Kind: ActionWebhook, URL: "http://hooks.example/exit"}}}
	e, _, _ := newTestEngine(t, []User{alice()}, []Profile{avail})
	if err := e.SaveProfile(ctx, "alice", &Profile{ID: "doc", Name: "Oncology", Visibility: VisibilityPrivate, Presence: "away"}); err != nil {
		t.Fatal(err)
	}
	hookEvents := func(res *SwitchResult) []SwitchEvent {
		var out []SwitchEvent
		for _, o := range res.Outcomes {
			if o.Op.Kind == OpWebhook {
				out = append(out, *o.Op.Event)
			}
		}
		return out
	}
	for _, step := range []struct{ to, info, wantFrom, wantTo, wantInfo string }{
		{ProfileAvailable, "", "", ProfileAvailable, ""},
		{"doc", "chemo at St. Mary", ProfileAvailable, "", ""},
		{ProfileAvailable, "back", "", ProfileAvailable, "back"},
	} {
		res, err := e.Switch(ctx, SwitchRequest{User: "alice", Profile: step.to, Info: step.info, Source: SourceAPI})
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
