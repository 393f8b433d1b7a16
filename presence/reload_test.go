package presence

import (
	"context"
	"reflect"
	"slices"
	"testing"
	"time"
)

func TestTeardown(t *testing.T) {
	s := func(v string) *string { return &v }
	old := &Target{Interface: "Local/1003@q/n",
		Queues: map[string]*QueueMember{"support": {Interface: "Local/1003@q/n"}, "sales": {Interface: "Local/1003@q/n", Membership: MembershipOptional},
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
			var keep *Desired
			if tc.keep != nil {
				keep = &Desired{Target: *tc.keep}
			}
			if got := Teardown(&Desired{Target: *old}, keep, "INVALID"); !reflect.DeepEqual(got, &Desired{Target: *tc.want}) {
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
	old, err := NewCatalogFrom(CatalogConfig{Users: []User{u("alice", "1001"), u("carol", "1003"), u("dave", "1004")}, Profiles: []Profile{lunch}})
	if err != nil {
		t.Fatal(err)
	}
	lunch2 := lunch
	lunch2.OnEnter = []Action{{Kind: ActionQueuePause, Queues: QueueSelector{"all"}, Reason: "Mittag"}}
	cur, err := NewCatalogFrom(CatalogConfig{Users: []User{u("alice", "1001"), u("bob", "1002"), u("dave", "1005")}, Profiles: []Profile{lunch2}})
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

// TestReloadOnStandbyIsDoneWhenItLeads: a catalog replaced while the engine does not run (a
// standby reloads) changes nothing on the PBX then; when the engine runs (it became the
// leader) the removed user's PBX state is taken off and their keys archived, and the user in
// a changed profile gets it, journaled as a reload.
func TestReloadOnStandbyIsDoneWhenItLeads(t *testing.T) {
	ctx := context.Background()
	// newTestEngine runs the engine; a second engine over the same store and PBX plays the
	// standby that takes over.
	work := Profile{ID: "work", Name: "Work", OnEnter: []Action{{Kind: ActionQueueLogin, Queues: QueueSelector{"all"}}}}
	leader, pbx, states := newTestEngine(t, []User{alice(), bob()}, []Profile{lunch(), work})
	for _, sw := range []SwitchRequest{{User: "alice", Profile: "work"}, {User: "alice", Profile: "lunch"}, {User: "bob", Profile: "work"}} {
		sw.Source = SourceAPI
		if _, err := leader.Switch(ctx, sw); err != nil {
			t.Fatal(err)
		}
	}
	old := leader.Catalog()
	standby, err := NewEngine(EngineOptions{Catalog: old, Naming: DefaultNaming(), States: states, Concerns: []Concern{pbx},
		RetryMin: 20 * time.Millisecond, RetryMax: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	changed := lunch()
	changed.OnEnter[0].Reason = "Mittag"
	cur, err := NewCatalogFrom(CatalogConfig{Users: []User{alice()}, Profiles: []Profile{changed, work}})
	if err != nil {
		t.Fatal(err)
	}
	ch := standby.SetCatalog(cur)
	if !slices.Equal(ch.Removed, []UserID{"bob"}) || !slices.Equal(ch.Profiles, []string{"lunch"}) {
		t.Fatalf("changes %+v", ch)
	}
	bobMember := "support|Local/1002@presenced-queue-member/n"
	pbx.mu.Lock()
	before := pbx.state.Queues[bobMember]
	pbx.mu.Unlock()
	if before == nil {
		t.Fatal("bob is no support member before the reload")
	}

	runEngine(t, standby) // it leads now (the old leader's engine keeps running in this test, but no longer matters)
	deadline := time.Now().Add(10 * time.Second)
	for {
		pbx.mu.Lock()
		gone := pbx.state.Queues[bobMember] == nil && pbx.state.AstDB["PROFILE/1002/active"] == nil
		alicePaused := pbx.state.Queues["support|Local/1001@presenced-queue-member/n"]
		pbx.mu.Unlock()
		n, _ := states.rdb.Exists(ctx, states.userKey("bob")).Result()
		// The journal entry is written after the pass applied the change: wait for it too.
		j, jerr := standby.Journal(ctx, "alice", 1)
		journaled := jerr == nil && len(j) == 1 && j[0].Kind == JournalReload
		if gone && n == 0 && alicePaused != nil && alicePaused.Reason == "Mittag" && journaled {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after leading: bob gone %v, bob's key %d, alice's member %+v, alice's last journal entry %+v %v (want a reload)",
				gone, n, alicePaused, j, jerr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	archived, err := states.rdb.Keys(ctx, states.prefix+"archive:*:user:bob*").Result()
	if err != nil || len(archived) != 2 { // state and journal; bob has no personal profiles
		t.Fatalf("archived keys %v %v", archived, err)
	}

	// A third instance that reloaded too and leads later finds it all done: nothing archived
	// again, nothing journaled again.
	third, err := NewEngine(EngineOptions{Catalog: old, Naming: DefaultNaming(), States: states, Concerns: []Concern{pbx}})
	if err != nil {
		t.Fatal(err)
	}
	third.SetCatalog(cur)
	runEngine(t, third)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		third.retireMu.Lock()
		left := len(third.retired)
		third.retireMu.Unlock()
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d users still retired on the third instance", left)
		}
	}
	if again, _ := states.rdb.Keys(ctx, states.prefix+"archive:*:user:bob*").Result(); len(again) != 2 {
		t.Fatalf("archived keys after the third instance: %v", again)
	}
	if j, _ := third.Journal(ctx, "alice", 2); len(j) != 2 || j[1].Kind == JournalReload {
		t.Fatalf("alice's journal after the third instance: %+v, want one reload entry", j)
	}
}
