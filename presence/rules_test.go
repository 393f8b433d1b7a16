package presence

import (
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
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
