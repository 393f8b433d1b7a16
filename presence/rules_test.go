package presence

import (
	"context"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// openRules opens a variable and a lamp namespace, allows every action kind but webhook,
// denies international numbers, and declares a hot desk.
func openRules() CatalogConfig {
	kinds := kindStrings(ActionKinds())
	kinds = kinds[:len(kinds)-1] // webhook is last
	return CatalogConfig{
		Personal: PersonalRules{AllowedActions: kinds, Variables: []string{"PROFILE/{ext}/var/*", "APP/{ext}"},
			Lamps: []string{"Custom:USER{ext}-*"}, ForwardDeny: []string{"^00"}},
		HotDesks: []string{"PJSIP/hotdesk-1"},
	}
}

func kindStrings(ks []ActionKind) []string {
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = string(k)
	}
	return out
}

func aliceWithCallerIDs() User {
	u := alice()
	u.CallerIDs = []string{"+4930123451001"}
	return u
}

func bob() User {
	return User{ID: "bob", Name: "Bob", Extension: "1002", Devices: []Device{{Dial: "PJSIP/1002", Family: FamilyDesk}},
		Queues: []QueueMembership{{Name: "support"}, {Name: "billing"}}}
}

// TestPersonalActionsReachOnlyTheUsersOwnState: every attack of the security review is refused
// naming the field, and what is the user's own is accepted.
func TestPersonalActionsReachOnlyTheUsersOwnState(t *testing.T) {
	cfg := openRules()
	cfg.Users = []User{aliceWithCallerIDs(), bob()}
	cat, err := NewCatalogFrom(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defaults, err := NewCatalogFrom(CatalogConfig{Users: cfg.Users})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := cat.User("alice")
	for _, tc := range []struct {
		name    string
		cat     *Catalog
		a       Action
		wantErr string // "" means allowed
	}{
		{"another user's forward key", cat, Action{Kind: ActionVariable, Name: "CF/1002", Value: "8666"}, `"CF/1002" is not a key of yours`},
		{"another user's DND key", cat, Action{Kind: ActionVariable, Name: "DND/1003", Value: "YES"}, "not a key of yours"},
		{"own key outside the namespace", cat, Action{Kind: ActionVariable, Name: "PROFILE/1001/callerid", Value: "1003"}, "not a key of yours"},
		{"a global", cat, Action{Kind: ActionVariable, Scope: "global", Name: "PRESENCED_APP", Value: "x"}, "global variables are for system-wide profiles only"},
		{"own namespace", cat, Action{Kind: ActionVariable, Name: "PROFILE/1001/var/colour", Value: "blue"}, ""},
		{"own exact key", cat, Action{Kind: ActionVariable, Name: "APP/1001", Value: "1"}, ""},
		{"exact key of another", cat, Action{Kind: ActionVariable, Name: "APP/1002", Value: "1"}, "not a key of yours"},
		{"value longer than AMI takes", cat, Action{Kind: ActionVariable, Name: "PROFILE/1001/var/x", Value: strings.Repeat("x", 3000)}, "at most 1017 bytes"},
		{"variable not allowed by default", defaults, Action{Kind: ActionVariable, Name: "PROFILE/1001/var/x", Value: "1"}, `"variable" is not allowed in personal profiles`},
		{"lamp not allowed by default", defaults, Action{Kind: ActionLamp, Device: "Custom:USER1001-x", State: "BUSY"}, `"lamp" is not allowed`},
		{"another user's DND lamp", cat, Action{Kind: ActionLamp, Device: "Custom:DND1002", State: "BUSY"}, "not a lamp of yours"},
		{"lamp of another's namespace", cat, Action{Kind: ActionLamp, Device: "Custom:USER1002-x", State: "BUSY"}, "not a lamp of yours"},
		{"own lamp", cat, Action{Kind: ActionLamp, Device: "Custom:USER1001-x", State: "BUSY"}, ""},
		{"location in any dialplan", cat, Action{Kind: ActionLocation, Device: "Local/8999@lab-sink/n"}, "neither one of your devices nor a hot desk"},
		{"another user's phone as location", cat, Action{Kind: ActionLocation, Device: "PJSIP/1002"}, "neither one of your devices"},
		{"hot desk", cat, Action{Kind: ActionLocation, Device: "PJSIP/hotdesk-1"}, ""},
		{"own device", cat, Action{Kind: ActionLocation, Device: "PJSIP/1001-soft"}, ""},
		{"location off", cat, Action{Kind: ActionLocation, On: off()}, ""},
		{"a colleague's caller ID", cat, Action{Kind: ActionCallerID, Value: `"Carol" <1003>`}, "not a caller ID assigned to you"},
		{"own number under another name", cat, Action{Kind: ActionCallerID, Value: `"Support" <1001>`}, "not a caller ID assigned to you"},
		{"own extension", cat, Action{Kind: ActionCallerID, Value: "1001"}, ""},
		{"assigned number with own name", cat, Action{Kind: ActionCallerID, Value: `"Alice" <+4930123451001>`}, ""},
		{"assigned number", cat, Action{Kind: ActionCallerID, Value: "+4930123451001"}, ""},
		{"forward to a feature code", cat, Action{Kind: ActionForward, Type: ForwardUnconditional, To: "*552"}, "no * or #"},
		{"forward with #", cat, Action{Kind: ActionForward, Type: ForwardBusy, To: "1002#"}, "no * or #"},
		{"forward denied by the admin", cat, Action{Kind: ActionForward, Type: ForwardBusy, To: "0049301234"}, "forward_deny"},
		{"forward to a colleague", cat, Action{Kind: ActionForward, Type: ForwardBusy, To: "1002"}, ""},
		{"forward off", cat, Action{Kind: ActionForward, Type: ForwardBusy, On: off()}, ""},
		{"no answer to a feature code", cat, Action{Kind: ActionNoAnswer, To: "*98"}, "no * or #"},
		{"no answer to voicemail", cat, Action{Kind: ActionNoAnswer, To: "voicemail"}, ""},
		{"a queue the user is not in", cat, Action{Kind: ActionQueueLogin, Queues: QueueSelector{"billing"}}, `"billing" is not one of your queues`},
		{"own queues", cat, Action{Kind: ActionQueuePause, Queues: QueueSelector{"all"}}, ""},
		{"webhook", cat, Action{Kind: ActionWebhook, URL: "http://10.0.0.1/"}, "webhooks are for system-wide profiles only"},
		{"control character", cat, Action{Kind: ActionPresence, State: "away", Message: "a\vb"}, "must not contain control characters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cat.CheckPersonalAction(u, tc.a)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

// TestPersonalRulesValidate: patterns that would reach presenced's own names or another
// user's namespace are refused naming the key.
func TestPersonalRulesValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  CatalogConfig
		want string
	}{
		{"variables over presenced's keys", CatalogConfig{Personal: PersonalRules{Variables: []string{"PROFILE/{ext}/*"}}},
			`personal_profiles.variables[0]: "PROFILE/{ext}/*" reaches PROFILE/<ext>/active`},
		{"variables over the forward key", CatalogConfig{Personal: PersonalRules{Variables: []string{"CF/{ext}"}}}, "reaches CF/<ext>"},
		{"ext running into digits", CatalogConfig{Personal: PersonalRules{Variables: []string{"APP/x{ext}*"}}}, "must be followed by a separator"},
		{"lamp over the DND lamp", CatalogConfig{Personal: PersonalRules{Lamps: []string{"Custom:DND{ext}"}}}, "reaches Custom:DND<ext>"},
		{"lamp not Custom:", CatalogConfig{Personal: PersonalRules{Lamps: []string{"PJSIP/{ext}-*"}}}, "must be a Custom: device pattern"},
		{"webhook allowed", CatalogConfig{Personal: PersonalRules{AllowedActions: []string{"dnd", "webhook"}}}, "allowed_actions[1]: webhooks are for system-wide profiles only"},
		{"unknown kind", CatalogConfig{Personal: PersonalRules{AllowedActions: []string{"teleport"}}}, `allowed_actions[0]: unknown action "teleport"`},
		{"bad regexp", CatalogConfig{Personal: PersonalRules{ForwardDeny: []string{"(00"}}}, "forward_deny[0]"},
		{"limit out of range", CatalogConfig{Limits: Limits{Actions: 100000}}, "limits.actions: 100000 is not between 1 and 200"},
		{"bad hot desk", CatalogConfig{HotDesks: []string{"not a dial string"}}, "hot_desks[0]"},
		{"caller id not a number", CatalogConfig{Users: []User{func() User { u := alice(); u.CallerIDs = []string{"*55"}; return u }()}}, "caller_ids[0]"},
		{"penalty app_queue cannot keep", CatalogConfig{Users: []User{func() User { u := alice(); u.Queues[0].Penalty = 99999999999; return u }()}},
			"penalty: 99999999999 is more than 2147483647"},
		{"colour", CatalogConfig{Profiles: []Profile{{ID: "x", Colour: "red;background:url(x)"}}}, "profiles[0] (x).colour"},
		{"icon", CatalogConfig{Profiles: []Profile{{ID: "x", Icon: "<svg>"}}}, "profiles[0] (x).icon"},
		{"too many actions", CatalogConfig{Profiles: []Profile{{ID: "x", OnEnter: make([]Action, 21)}}}, "profiles[0] (x).on_enter: 21 actions in on_enter and on_exit, the limit is 20"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewCatalogFrom(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	if _, err := NewCatalogFrom(openRules()); err != nil {
		t.Fatalf("the open rules: %v", err)
	}
}

// TestCompactStepsKeepsTheIntent: however a user switches among profiles (pauses, logouts,
// presence that inherits the state before it), the compacted lineage folds to the same intent
// as every switch applied in turn, and stays short.
func TestCompactStepsKeepsTheIntent(t *testing.T) {
	u := alice()
	cat, err := NewCatalogFrom(CatalogConfig{Users: []User{u}, Profiles: []Profile{
		lunch(),
		{ID: "meeting", Name: "Meeting", Presence: "dnd", OnEnter: []Action{
			{Kind: ActionQueuePause, Queues: QueueSelector{"support"}, Reason: "Meeting"},
			{Kind: ActionForward, Type: ForwardBusy, To: "1002"}, {Kind: ActionMobile, On: off()}},
			OnExit: []Action{{Kind: ActionForward, Type: ForwardBusy, On: off()}}},
		{ID: "inherit", Name: "Inherit", OnEnter: []Action{{Kind: ActionPresence, Message: "keeps the state"}}},
		{ID: "logout", Name: "Logged out", OnEnter: []Action{{Kind: ActionQueueLogout, Queues: QueueSelector{"sales"}},
			{Kind: ActionFollowMe, Families: []Family{FamilyMobile}}, {Kind: ActionLamp, Device: "Custom:X1001", State: "BUSY"}}},
		{ID: "vars", Name: "Vars", OnEnter: []Action{{Kind: ActionVariable, Name: "APP/1001/a", Value: "1"},
			{Kind: ActionCallerID, Value: "100"}, {Kind: ActionLocation, Device: "PJSIP/hotdesk-1"}},
			OnExit: []Action{{Kind: ActionVariable, Name: "APP/1001/a", On: off()}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(cat.Profiles))
	for i, p := range cat.Profiles {
		ids[i] = p.ID
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for run := range 200 {
		var (
			want  Intent
			steps []Step
			from  *Profile
		)
		for n := range 1 + rng.IntN(40) {
			to, _ := cat.Profile(ids[rng.IntN(len(ids))])
			info := []string{"", "back at 3", "room 4, floor 2"}[rng.IntN(3)]
			// The switch applied to the intent before it: from's exit chain, then to's enter chain.
			if from != nil {
				want.fold(&u, from, true, info, nil)
			}
			want.fold(&u, to, false, info, nil)
			if from != nil {
				steps = append(steps, Step{Profile: from.ID, Exit: true, Info: info})
			}
			steps = CompactSteps(&u, append(steps, Step{Profile: to.ID, Info: info}), cat.Profiles, nil)
			if got := FoldSteps(&u, steps, cat.Profiles, nil); !reflect.DeepEqual(got, want) {
				t.Fatalf("run %d, switch %d (%d steps): the lineage folds to\n%+v\nevery switch applied in turn gives\n%+v", run, n, len(steps), got, want)
			}
			if len(steps) > 12 {
				t.Fatalf("run %d: %d steps after compaction: %+v", run, len(steps), steps)
			}
			from = to
		}
	}
}

// TestPrivateProfilesShowOnlyTheState: a private profile's presence on the PBX is the neutral
// text of its state, whatever message or info it was given; a public one shows them.
func TestPrivateProfilesShowOnlyTheState(t *testing.T) {
	u := alice()
	private := &Profile{ID: "doc", Name: "Doctor", Visibility: VisibilityPrivate, Presence: "away"}
	in := entered(&u, "chemo at St. Mary, back Tuesday", private)
	if in.Presence.Message != "Away" || in.Presence.State != "away" {
		t.Fatalf("private profile presence %+v", in.Presence)
	}
	withMessage := &Profile{ID: "doc2", Name: "Doctor", Visibility: VisibilityPrivate,
		OnEnter: []Action{{Kind: ActionPresence, State: "xa", Message: "chemo"}}}
	if in = entered(&u, "", withMessage); in.Presence.Message != "Extended away" {
		t.Fatalf("private presence action %+v", in.Presence)
	}
	public := &Profile{ID: "lunch", Name: "Lunch", Presence: "away"}
	if in = entered(&u, "back at 1", public); in.Presence.Message != "Lunch (back at 1)" {
		t.Fatalf("public %+v", in.Presence)
	}
	long := strings.Repeat("é", 200)
	if in = entered(&u, long, &Profile{ID: "l", Name: "Lunch, long", Presence: "away"}); len(in.Presence.Message) > MaxPresenceMessage {
		t.Fatalf("generated message of %d bytes, Asterisk keeps %d", len(in.Presence.Message), MaxPresenceMessage)
	}
}

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
