package presence

import (
	"encoding/json"
	"strings"
	"testing"
)

func alice() User {
	return User{
		ID: "alice", Name: "Alice", Extension: "1001",
		Devices: []Device{{Dial: "PJSIP/1001", Family: FamilyDesk}, {Dial: "PJSIP/1001-mobile", Family: FamilyMobile},
			{Dial: "PJSIP/1001-soft", Family: FamilySoftphone}},
		Queues: []QueueMembership{{Name: "support", Penalty: 0}, {Name: "sales", Penalty: 1}},
	}
}

func off() *bool { f := false; return &f }

func lunch() Profile {
	return Profile{ID: "lunch", Name: "Lunch", Activation: "3", Presence: "away",
		OnEnter: []Action{{Kind: ActionQueuePause, Queues: QueueSelector{"all"}, Reason: "Lunch"}},
		OnExit:  []Action{{Kind: ActionQueueUnpause, Queues: QueueSelector{"all"}}}}
}

func TestCatalogRejectsBadDefinitions(t *testing.T) {
	for _, tc := range []struct {
		name     string
		users    []User
		profiles []Profile
		want     string
	}{
		{"unknown action", nil, []Profile{{ID: "x", OnEnter: []Action{{Kind: "queue_logon"}}}}, `profiles[0] (x).on_enter[0]: unknown action "queue_logon"`},
		{"unknown queue", []User{alice()}, []Profile{{ID: "x", OnEnter: []Action{{Kind: ActionQueueLogin, Queues: QueueSelector{"salse"}}}}}, `unknown queue "salse"`},
		{"duplicate activation", nil, []Profile{{ID: "a", Activation: "3"}, {ID: "b", Activation: "3"}}, `profiles[1] (b).activation: "3" is already the activation number of profile "a"`},
		{"duplicate profile id", nil, []Profile{{ID: "a"}, {ID: "a"}}, `"a" is used by another profile`},
		{"missing queues", []User{alice()}, []Profile{{ID: "x", OnExit: []Action{{Kind: ActionQueuePause}}}}, "on_exit[0].queues: required"},
		{"bad activation", nil, []Profile{{ID: "x", Activation: "1a"}}, `activation: "1a" must be 1-8 digits`},
		{"bad presence", nil, []Profile{{ID: "x", Presence: "busy"}}, `presence: "busy" is not one of`},
		{"forward without number", nil, []Profile{{ID: "x", OnEnter: []Action{{Kind: ActionForward, Type: ForwardBusy}}}}, "on_enter[0].to"},
		{"forward bad type", nil, []Profile{{ID: "x", OnEnter: []Action{{Kind: ActionForward, Type: "always", To: "1"}}}}, `type: "always"`},
		{"followme bad family", nil, []Profile{{ID: "x", OnEnter: []Action{{Kind: ActionFollowMe, Families: []Family{"pager"}}}}}, `families: "pager"`},
		{"lamp not custom", nil, []Profile{{ID: "x", OnEnter: []Action{{Kind: ActionLamp, Device: "PJSIP/1001", State: "BUSY"}}}}, "must be a Custom: device"},
		{"variable without family", nil, []Profile{{ID: "x", OnEnter: []Action{{Kind: ActionVariable, Name: "FOO", Value: "1"}}}}, "FAMILY/key"},
		{"webhook bad url", nil, []Profile{{ID: "x", OnEnter: []Action{{Kind: ActionWebhook, URL: "ftp://x"}}}}, "is not an http(s) URL"},
		{"presence message too long", nil, []Profile{{ID: "x", OnEnter: []Action{{Kind: ActionPresence, Message: "a," + strings.Repeat("b", 300)}}}}, "keeps 255 bytes"},
		{"variable with a leading blank", nil, []Profile{{ID: "x", OnEnter: []Action{{Kind: ActionVariable, Name: "A/b", Value: " x"}}}}, "must not start with a blank"},
		{"reserved user id", []User{func() User { u := alice(); u.ID = "admin"; return u }()}, nil, `"admin" is reserved`},
		{"user without devices", []User{{ID: "bob", Extension: "1002"}}, nil, "users[0] (bob).devices: at least one device"},
		{"user bad dial", []User{{ID: "bob", Extension: "1002", Devices: []Device{{Dial: "1002", Family: FamilyDesk}}}}, nil, `devices[0].dial: "1002" is not a dial string`},
		{"user bad family", []User{{ID: "bob", Extension: "1002", Devices: []Device{{Dial: "PJSIP/1002", Family: "pager"}}}}, nil, `devices[0].family: "pager"`},
		{"duplicate extension", []User{alice(), func() User { u := alice(); u.ID = "alice2"; return u }()}, nil, `"1001" is already the extension of user "alice"`},
		{"bad time zone", []User{func() User { u := alice(); u.TimeZone = "Mars/Olympus"; return u }()}, nil, `time_zone: "Mars/Olympus"`},
		{"enabled: false on dnd", nil, []Profile{{ID: "x", OnEnter: []Action{{Kind: ActionDND, Enabled: off()}}}},
			"on_enter[0].enabled: is not a key: to switch dnd off write on: false (probably meant); to keep the action without running it write disabled: true"},
		{"enabled: false on queue_logout", []User{alice()}, []Profile{{ID: "x", OnEnter: []Action{{Kind: ActionQueueLogout, Queues: QueueSelector{"all"}, Enabled: off()}}}},
			"on_enter[0].enabled: is not a key: to keep the action without running it write disabled: true (queue_logout has no on: false)"},
		{"enabled: true", nil, []Profile{{ID: "x", OnExit: []Action{{Kind: ActionDND, Enabled: func() *bool { b := true; return &b }()}}}},
			"on_exit[0].enabled: is not a key: actions run unless disabled: true; remove it"},
		{"on on queue_logout", []User{alice()}, []Profile{{ID: "x", OnEnter: []Action{{Kind: ActionQueueLogout, Queues: QueueSelector{"all"}, On: off()}}}},
			"on_enter[0].on: has no meaning for queue_logout (its fields: queues, disabled)"},
		{"on on presence", nil, []Profile{{ID: "x", OnEnter: []Action{{Kind: ActionPresence, State: "away", On: off()}}}},
			"on_enter[0].on: has no meaning for presence (its fields: state, message, disabled)"},
		{"queues on followme", nil, []Profile{{ID: "x", OnEnter: []Action{{Kind: ActionFollowMe, Families: []Family{FamilyDesk}, Queues: QueueSelector{"all"}}}}},
			"on_enter[0].queues: has no meaning for followme"},
		{"reason on queue_unpause", []User{alice()}, []Profile{{ID: "x", OnEnter: []Action{{Kind: ActionQueueUnpause, Queues: QueueSelector{"all"}, Reason: "x"}}}},
			"on_enter[0].reason: has no meaning for queue_unpause"},
		{"to on dnd", nil, []Profile{{ID: "x", OnEnter: []Action{{Kind: ActionDND, To: "1002"}}}}, "on_enter[0].to: has no meaning for dnd (its fields: on, disabled)"},
		{"ring_times without sequential", nil, []Profile{{ID: "x", OnEnter: []Action{{Kind: ActionFollowMe, Families: []Family{FamilyDesk}, RingTimes: []int{10}}}}},
			"on_enter[0].ring_times: only with order: sequential"},
		{"ring_times not one per family", nil, []Profile{{ID: "x", OnEnter: []Action{{Kind: ActionFollowMe, Order: RingSequential,
			Families: []Family{FamilyDesk, FamilyMobile}, RingTimes: []int{10}}}}}, "1 ring times for 2 families"},
		{"ring_times and ring_time", nil, []Profile{{ID: "x", OnEnter: []Action{{Kind: ActionFollowMe, Order: RingSequential,
			Families: []Family{FamilyDesk}, RingTimes: []int{10}, RingTime: 5}}}}, "set either ring_time"},
		{"ring time of a step out of range", nil, []Profile{{ID: "x", OnEnter: []Action{{Kind: ActionFollowMe, Order: RingSequential,
			Families: []Family{FamilyDesk, FamilyMobile}, RingTimes: []int{10, 0}}}}}, "ring_times[1]: 0 must be between 1 and 600"},
		{"family twice", nil, []Profile{{ID: "x", OnEnter: []Action{{Kind: ActionFollowMe, Families: []Family{FamilyDesk, FamilyDesk}}}}}, `families: "desk" listed twice`},
		{"negative penalty", []User{func() User { u := alice(); u.Queues[0].Penalty = -1; return u }()}, nil, "penalty: -1 must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewCatalogFrom(CatalogConfig{Users: tc.users, Profiles: tc.profiles})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestCatalogAddsDefaultProfiles(t *testing.T) {
	c, err := NewCatalogFrom(CatalogConfig{Users: []User{alice()}, Profiles: []Profile{lunch(), {ID: "meeting", Activation: "1"}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{ProfileAvailable, ProfileDND, "lunch", "meeting"} {
		if _, ok := c.Profile(id); !ok {
			t.Errorf("profile %q missing", id)
		}
	}
	av, _ := c.Profile(ProfileAvailable)
	if av.Activation != "" {
		t.Errorf("default available kept activation %q that the admin gave to meeting", av.Activation)
	}
	if m, _ := c.Profile("meeting"); m.Name != "meeting" {
		t.Errorf("name defaults to the id, got %q", m.Name)
	}
}

func TestQueueSelectorJSON(t *testing.T) {
	for in, want := range map[string]QueueSelector{`"all"`: {"all"}, `["a","b"]`: {"a", "b"}, `"support"`: {"support"}} {
		var s QueueSelector
		if err := json.Unmarshal([]byte(in), &s); err != nil || strings.Join(s, ",") != strings.Join(want, ",") {
			t.Errorf("%s → %v, %v", in, s, err)
		}
	}
	var s QueueSelector
	if err := json.Unmarshal([]byte(`3`), &s); err == nil {
		t.Error("a number was accepted as queues")
	}
}

// TestDisabledActionDoesNotRun: disabled: true keeps an action in the profile without running
// it; on: false switches its state off.
func TestDisabledActionDoesNotRun(t *testing.T) {
	u := alice()
	off := false
	for _, tc := range []struct {
		name string
		dnd  Action
		want *bool // in.DND.On; nil: the profile says nothing of DND
	}{
		{"disabled", Action{Kind: ActionDND, Disabled: true}, nil},
		{"on: false", Action{Kind: ActionDND, On: &off}, &off},
		{"on", Action{Kind: ActionDND}, func() *bool { b := true; return &b }()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := Profile{ID: "x", OnEnter: []Action{tc.dnd}}
			if _, err := NewCatalogFrom(CatalogConfig{Users: []User{u}, Profiles: []Profile{p}}); err != nil {
				t.Fatal(err)
			}
			in := entered(&u, "", &p)
			switch {
			case tc.want == nil && in.DND != nil:
				t.Fatalf("DND %+v, want untouched", in.DND)
			case tc.want != nil && (in.DND == nil || in.DND.On != *tc.want):
				t.Fatalf("DND %+v, want on=%v", in.DND, *tc.want)
			}
		})
	}
}
