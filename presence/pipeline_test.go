package presence

import (
	"encoding/json"
	"strings"
	"testing"
)

func strp(s string) *string { return &s }

// entered is the intent of a lineage that enters profiles in turn, from none and with info, with
// no exit chains: what FoldSteps makes of it.
func entered(u *User, info string, profiles ...*Profile) Intent {
	steps := make([]Step, len(profiles))
	for i, p := range profiles {
		steps[i] = Step{Profile: p.ID, Info: info}
	}
	return FoldSteps(u, steps, profiles, nil)
}

// TestDesiredIntentFoldsExitThenEnter: a user's lineage, switch after switch as the engine
// records it (the profile left with its exit chain, then the profile entered), folds to the
// desired intent; a switch calls its webhooks.
func TestDesiredIntentFoldsExitThenEnter(t *testing.T) {
	u := alice()
	av := defaultProfiles()[0]
	l := lunch()
	dnd := defaultProfiles()[1]
	meeting := Profile{ID: "meeting", Name: "Meeting", Presence: "away",
		OnEnter: []Action{
			{Kind: ActionDND},
			{Kind: ActionFollowMe, Families: []Family{FamilyMobile}, Order: RingSequential, RingTime: 15},
			{Kind: ActionForward, Type: ForwardBusy, To: "1002"},
			{Kind: ActionCallerID, Value: "Support <100>"},
			{Kind: ActionVariable, Name: "APP/1001/x", Value: "50%: a,b"},
			{Kind: ActionVariable, Scope: "global", Name: "G1001", Value: "1"},
			{Kind: ActionWebhook, URL: "http://hook/x"},
			{Kind: ActionQueueLogout, Queues: QueueSelector{"sales"}, Disabled: true},
		},
		OnExit: []Action{{Kind: ActionDND, On: off()}, {Kind: ActionForward, Type: ForwardBusy, On: off()}}}
	profiles := []*Profile{&av, &l, &dnd, &meeting}
	var steps []Step
	// switchTo switches from from (nil for none) to to: the steps the engine adds to the
	// lineage, its fold, and the switch's webhooks.
	switchTo := func(from, to *Profile, info string) (Intent, []Webhook) {
		if from != nil {
			steps = append(steps, Step{Profile: from.ID, Exit: true, Info: info})
		}
		steps = append(steps, Step{Profile: to.ID, Info: info})
		return FoldSteps(&u, steps, profiles, nil), switchWebhooks(&u, from, to, info, nil)
	}

	in, hooks := switchTo(nil, &av, "")
	for _, q := range []string{"support", "sales"} {
		if qi := in.Queues[q]; qi.Member == nil || !*qi.Member || qi.Paused || len(hooks) != 0 {
			t.Fatalf("available: %s %+v", q, qi)
		}
	}
	if in.DND == nil || in.DND.On || in.Presence.State != "available" {
		t.Fatalf("available: dnd %+v presence %+v", in.DND, in.Presence)
	}

	in, _ = switchTo(&av, &l, "until 1pm")
	if q := in.Queues["support"]; q.Member == nil || !*q.Member || !q.Paused || q.Reason != "Lunch" {
		t.Fatalf("lunch: support %+v", q)
	}
	if in.Presence.Message != "Lunch (until 1pm)" || in.Presence.State != "away" {
		t.Fatalf("lunch presence %+v", in.Presence)
	}

	in, hooks = switchTo(&l, &meeting, "")
	if q := in.Queues["sales"]; q.Member == nil || !*q.Member || q.Paused {
		t.Fatalf("meeting: lunch's exit unpauses, the disabled logout does nothing: %+v", q)
	}
	if !in.DND.On || in.DND.Text != "Meeting" || in.Forward[ForwardBusy] != "1002" || *in.CallerID != "Support <100>" {
		t.Fatalf("meeting: %+v %+v %v", in.DND, in.Forward, in.CallerID)
	}
	if len(hooks) != 1 || hooks[0].URL != "http://hook/x" {
		t.Fatalf("hooks %+v", hooks)
	}

	prev := in // sharing its maps: a later fold must not write to them
	in, _ = switchTo(&meeting, &dnd, "")
	if !in.DND.On || in.DND.Text != "Do not disturb" {
		t.Fatalf("dnd after meeting's exit turned it off: %+v", in.DND)
	}
	if f, managed := in.Forward[ForwardBusy]; !managed || f != "" {
		t.Fatalf("busy forward unset by meeting's exit: %q %v", f, managed)
	}
	if !prev.DND.On || prev.Forward[ForwardBusy] != "1002" {
		t.Fatal("a later fold changed an earlier intent")
	}
}

func TestCompileNamesFreePBXStyle(t *testing.T) {
	u := alice()
	u.Queues = append(u.Queues, QueueMembership{Name: "bench1"})
	n := DefaultNaming()
	l := lunch()
	av := defaultProfiles()[0]
	in := Intent{
		Queues:    map[string]QueueIntent{"support": {Member: ptr(true), Paused: true, Reason: "Lunch"}, "sales": {Member: ptr(false)}, "other": {Member: ptr(true)}, "bench1": {Paused: true}},
		DND:       &DNDIntent{On: true, Text: "Lunch (back 1pm)"},
		RingList:  &RingList{Families: []Family{FamilyDesk, FamilyMobile}, Order: RingSequential, RingTime: 15},
		Mobile:    off(),
		Forward:   map[ForwardType]string{ForwardUnconditional: "1002", ForwardBusy: ""},
		NoAnswer:  strp("voicemail"),
		CallerID:  strp("Support <100>"),
		Location:  strp(""),
		Presence:  &PresenceValue{State: "away", Message: "Lunch, back 1pm"},
		Lamps:     map[string]string{"Custom:X": "inuse"},
		Variables: map[string]*string{"astdb:APP/1001/x": strp("v"), "global:G1001": nil},
	}
	tg := Compile(&u, in, Active{Profile: &l, Info: "back 1pm"}, []*Profile{&av, &l}, n)
	b, _ := json.MarshalIndent(tg, "", " ")
	check := func(what string, ok bool) {
		t.Helper()
		if !ok {
			t.Errorf("%s wrong in:\n%s", what, b)
		}
	}
	check("support member", tg.Queues["support"] != nil && tg.Queues["support"].Paused && tg.Queues["support"].Reason == "Lunch" &&
		tg.Queues["support"].Interface == "Local/1001@presenced-queue-member/n" && tg.Queues["support"].StateInterface == "hint:1001@hints")
	check("sales must not be member", tg.Queues["sales"] == nil && hasKey(tg.Queues, "sales"))
	check("queue the user is not in ignored", !hasKey(tg.Queues, "other"))
	check("pause without login leaves membership alone", tg.Queues["bench1"] != nil && tg.Queues["bench1"].Membership == MembershipOptional && tg.Queues["bench1"].Paused)
	check("interface", tg.Interface == "Local/1001@presenced-queue-member/n")
	check("active", deref(tg.AstDB["PROFILE/1001/active"]) == "lunch" && deref(tg.AstDB["PROFILE/1001/info"]) == "back 1pm")
	check("dnd", deref(tg.AstDB["DND/1001"]) == "YES" && tg.Devices["Custom:DND1001"] == "BUSY" && deref(tg.AstDB["PROFILE/1001/dndtext"]) == "Lunch (back 1pm)")
	check("ring list without mobile", deref(tg.AstDB["PROFILE/1001/dialstring"]) == "PJSIP/1001|" && deref(tg.AstDB["PROFILE/1001/ringmode"]) == "sequential" && deref(tg.AstDB["PROFILE/1001/ringtime"]) == "15")
	check("forwards", deref(tg.AstDB["CF/1001"]) == "1002" && tg.AstDB["CFB/1001"] == nil && hasKey(tg.AstDB, "CFB/1001") && !hasKey(tg.AstDB, "CFU/1001"))
	check("no answer, caller id, location", deref(tg.AstDB["PROFILE/1001/noanswer"]) == "voicemail" && deref(tg.AstDB["PROFILE/1001/callerid"]) == "Support <100>" && tg.AstDB["PROFILE/1001/location"] == nil)
	check("profile lamps", tg.Devices["Custom:PROFILE1001-3"] == "BUSY" && tg.Devices["Custom:PROFILE1001-1"] == "INVALID")
	check("lamp action", tg.Devices["Custom:X"] == "INUSE")
	check("presence", tg.Presence["CustomPresence:1001"].State == "away")
	check("variables", deref(tg.AstDB["APP/1001/x"]) == "v" && hasKey(tg.Globals, "G1001") && tg.Globals["G1001"] == nil)
}

func hasKey[V any](m map[string]V, k string) bool { _, ok := m[k]; return ok }

func TestPlan(t *testing.T) {
	member := func(paused bool, reason string, penalty int) *QueueMember {
		return &QueueMember{Interface: "Local/1001@q/n", Paused: paused, Reason: reason, Penalty: penalty}
	}
	for _, tc := range []struct {
		name       string
		want, have Target
		ops        []string
	}{
		{"in sync", Target{Queues: map[string]*QueueMember{"a": member(false, "", 0), "b": nil}, AstDB: map[string]*string{"DND/1": strp("YES"), "CF/1": nil}},
			Target{Queues: map[string]*QueueMember{"a": member(false, "", 0)}, AstDB: map[string]*string{"DND/1": strp("YES")}}, nil},
		{"optional member absent: nothing", Target{Queues: map[string]*QueueMember{"a": {Interface: "x", Paused: true, Membership: MembershipOptional}}}, Target{}, nil},
		{"optional member present: paused", Target{Queues: map[string]*QueueMember{"a": {Interface: "x", Paused: true, Reason: "Lunch", Membership: MembershipOptional}}},
			Target{Queues: map[string]*QueueMember{"a": {Interface: "x"}}}, []string{"queue_pause a x paused (Lunch)"}},
		{"join paused in one op", Target{Queues: map[string]*QueueMember{"a": member(true, "Lunch", 0)}}, Target{}, []string{"queue_add a Local/1001@q/n paused (Lunch)"}},
		{"leave", Target{Queues: map[string]*QueueMember{"a": nil}}, Target{Queues: map[string]*QueueMember{"a": member(false, "", 0)}}, []string{"queue_remove a Local/1001@q/n"}},
		{"static member is not removed", Target{Queues: map[string]*QueueMember{"a": nil}}, Target{Queues: map[string]*QueueMember{"a": {Interface: "x", Membership: MembershipStatic}}}, nil},
		{"pause reason changed", Target{Queues: map[string]*QueueMember{"a": member(true, "Meeting", 0)}}, Target{Queues: map[string]*QueueMember{"a": member(true, "Lunch", 0)}}, []string{"queue_pause a Local/1001@q/n paused (Meeting)"}},
		{"unpause ignores stale reason", Target{Queues: map[string]*QueueMember{"a": member(false, "", 0)}}, Target{Queues: map[string]*QueueMember{"a": member(true, "Lunch", 0)}}, []string{"queue_pause a Local/1001@q/n unpaused"}},
		{"penalty", Target{Queues: map[string]*QueueMember{"a": member(false, "", 2)}}, Target{Queues: map[string]*QueueMember{"a": member(false, "", 0)}}, []string{"queue_penalty a Local/1001@q/n penalty 2"}},
		{"astdb put and del, sorted", Target{AstDB: map[string]*string{"PROFILE/1/x": strp("2"), "CF/1": nil, "DND/1": strp("YES")}},
			Target{AstDB: map[string]*string{"PROFILE/1/x": strp("1"), "CF/1": strp("9")}}, []string{"db_del CF/1", `db_put DND/1="YES"`, `db_put PROFILE/1/x="2"`}},
		{"lamp case-insensitive", Target{Devices: map[string]string{"Custom:A": "NOT_INUSE", "Custom:B": "BUSY"}}, Target{Devices: map[string]string{"Custom:A": "not_inuse"}}, []string{`device_state Custom:B="BUSY"`}},
		{"presence message", Target{Presence: map[string]*PresenceValue{"CustomPresence:1": {State: "away", Message: "m2"}}},
			Target{Presence: map[string]*PresenceValue{"CustomPresence:1": {State: "AWAY", Message: "m1"}}}, []string{`presence CustomPresence:1 away "m2"`}},
		{"global cleared", Target{Globals: map[string]*string{"G": nil}}, Target{Globals: map[string]*string{"G": strp("1")}}, []string{`global G=""`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, op := range Plan(&Desired{Target: tc.want}, &tc.have) {
				got = append(got, op.String())
			}
			if strings.Join(got, "\n") != strings.Join(tc.ops, "\n") {
				t.Errorf("plan:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.ops, "\n"))
			}
		})
	}
}

func TestNamingValidate(t *testing.T) {
	n := DefaultNaming()
	if err := n.Validate(); err != nil {
		t.Fatal(err)
	}
	n.QueueInterface = "Local/1001@x/n"
	n.DNDFamily = "DN%D"
	n.LampOff = "OFF"
	err := n.Validate()
	for _, want := range []string{"naming.queue_interface", "naming.dnd_family", "naming.lamp_off"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want %s", err, want)
		}
	}
}

// TestCompileRingList: the ring list is always explicit: the desk phones until a profile says
// otherwise (all devices of a user without desk phones); follow-me rings the families in the
// action's order, sequentially one step per family with a ring time per step.
func TestCompileRingList(t *testing.T) {
	alice := alice() // PJSIP/1001 desk, PJSIP/1001-mobile mobile, PJSIP/1001-soft softphone
	mobileOnly := User{ID: "bob", Extension: "1002", Devices: []Device{{Dial: "PJSIP/1002-mobile", Family: FamilyMobile}}}
	seq := func(fs []Family, times ...int) *RingList {
		return &RingList{Families: fs, Order: RingSequential, RingTimes: times}
	}
	for _, tc := range []struct {
		name             string
		u                User
		in               Intent
		dial, mode, time string // "" for a key that must not exist; "-" for one not named
	}{
		{"default: the desk phones", alice, Intent{}, "PJSIP/1001&PJSIP/1001-soft", "-", "-"},
		{"default without desk phones: every device", mobileOnly, Intent{}, "PJSIP/1002-mobile", "-", "-"},
		{"mobile on: the default and the mobile", alice, Intent{Mobile: ptr(true)}, "PJSIP/1001&PJSIP/1001-soft&PJSIP/1001-mobile", "simultaneous", ""},
		{"families in the action's order", alice, Intent{RingList: &RingList{Families: []Family{FamilyMobile, FamilyDesk}}},
			"PJSIP/1001-mobile&PJSIP/1001", "simultaneous", ""},
		{"sequential: a step per family, in order, a time each", alice, Intent{RingList: seq([]Family{FamilySoftphone, FamilyDesk, FamilyMobile}, 5, 10, 25)},
			"PJSIP/1001-soft|PJSIP/1001|PJSIP/1001-mobile|", "sequential", "5|10|25"},
		{"sequential: a family without devices is no step, nor its time", alice, Intent{RingList: seq([]Family{FamilyDECT, FamilyMobile, FamilyDesk}, 7, 25, 10)},
			"PJSIP/1001-mobile|PJSIP/1001|", "sequential", "25|10"},
		{"sequential: one ring time for every step", alice,
			Intent{RingList: &RingList{Families: []Family{FamilyDesk, FamilyMobile}, Order: RingSequential, RingTime: 15}},
			"PJSIP/1001|PJSIP/1001-mobile|", "sequential", "15"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg := Compile(&tc.u, tc.in, Active{}, nil, DefaultNaming())
			for key, want := range map[string]string{"dialstring": tc.dial, "ringmode": tc.mode, "ringtime": tc.time} {
				v, named := tg.AstDB["PROFILE/"+tc.u.Extension+"/"+key]
				switch {
				case want == "-" && named:
					t.Errorf("%s named (%q), want it left alone", key, deref(v))
				case want != "-" && (!named || deref(v) != want):
					t.Errorf("%s = %q (named %v), want %q", key, deref(v), named, want)
				}
			}
		})
	}
}
