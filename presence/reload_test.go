package presence

import (
	"reflect"
	"slices"
	"testing"
)

func TestTeardown(t *testing.T) {
	s := func(v string) *string { return &v }
	old := &Target{Interface: "Local/1003@q/n",
		Queues: map[string]*QueueMember{"support": {Interface: "Local/1003@q/n"}, "sales": {Interface: "Local/1003@q/n", Optional: true},
			"gone": nil},
		AstDB:    map[string]*string{"DND/1003": s("YES"), "CF/1003": nil, "PROFILE/1003/active": s("meeting")},
		Devices:  map[string]string{"Custom:DND1003": "BUSY", "Custom:PROFILE1003-4": "BUSY"},
		Presence: map[string]*PresenceValue{"CustomPresence:1003": {State: "dnd"}},
		Globals:  map[string]*string{"FLAG": s("1")}}
	for _, tc := range []struct {
		name string
		keep *Target
		want *Target
	}{
		{"removed user: everything presenced set goes", nil, &Target{Interface: "Local/1003@q/n",
			Queues:   map[string]*QueueMember{"support": nil},
			AstDB:    map[string]*string{"DND/1003": nil, "PROFILE/1003/active": nil},
			Devices:  map[string]string{"Custom:DND1003": "INVALID", "Custom:PROFILE1003-4": "INVALID"},
			Presence: map[string]*PresenceValue{"CustomPresence:1003": {State: "not_set"}},
			Globals:  map[string]*string{"FLAG": nil}}},
		{"kept keys stay to the new desired state", &Target{Interface: "Local/1003@q/n",
			Queues: map[string]*QueueMember{"support": {}}, AstDB: map[string]*string{"DND/1003": nil},
			Devices: map[string]string{"Custom:DND1003": "INVALID"}, Presence: map[string]*PresenceValue{"CustomPresence:1003": {State: "away"}},
			Globals: map[string]*string{}}, &Target{Interface: "Local/1003@q/n",
			Queues: map[string]*QueueMember{}, AstDB: map[string]*string{"PROFILE/1003/active": nil},
			Devices: map[string]string{"Custom:PROFILE1003-4": "INVALID"}, Presence: map[string]*PresenceValue{},
			Globals: map[string]*string{"FLAG": nil}}},
		{"another extension: the old member goes", &Target{Interface: "Local/1009@q/n", Queues: map[string]*QueueMember{"support": {}}},
			&Target{Interface: "Local/1003@q/n", Queues: map[string]*QueueMember{"support": nil},
				AstDB:    map[string]*string{"DND/1003": nil, "PROFILE/1003/active": nil},
				Devices:  map[string]string{"Custom:DND1003": "INVALID", "Custom:PROFILE1003-4": "INVALID"},
				Presence: map[string]*PresenceValue{"CustomPresence:1003": {State: "not_set"}},
				Globals:  map[string]*string{"FLAG": nil}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Teardown(old, tc.keep, "INVALID"); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Teardown =\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}
}

func TestDiffCatalogs(t *testing.T) {
	u := func(id, ext string) User {
		return User{ID: UserID(id), Extension: ext, Devices: []Device{{Dial: "PJSIP/" + ext, Family: FamilyDesk}}}
	}
	lunch := Profile{ID: "lunch", Name: "Lunch", OnEnter: []Action{{Kind: ActionQueuePause, Queues: QueueSelector{"all"}}}}
	old, err := NewCatalog([]User{u("alice", "1001"), u("carol", "1003"), u("dave", "1004")}, []Profile{lunch})
	if err != nil {
		t.Fatal(err)
	}
	lunch2 := lunch
	lunch2.OnEnter = []Action{{Kind: ActionQueuePause, Queues: QueueSelector{"all"}, Reason: "Mittag"}}
	cur, err := NewCatalog([]User{u("alice", "1001"), u("bob", "1002"), u("dave", "1005")}, []Profile{lunch2})
	if err != nil {
		t.Fatal(err)
	}
	ch := DiffCatalogs(old, cur)
	if !slices.Equal(ch.Added, []UserID{"bob"}) || !slices.Equal(ch.Removed, []UserID{"carol"}) ||
		!slices.Equal(ch.Changed, []UserID{"dave"}) || !slices.Equal(ch.Profiles, []string{"lunch"}) || ch.Rules {
		t.Fatalf("DiffCatalogs = %+v", ch)
	}
	if same := DiffCatalogs(old, old); !same.Empty() {
		t.Fatalf("a catalog against itself: %+v", same)
	}
}
