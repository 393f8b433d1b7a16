package presence_test

import (
	"context"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/presencetest"
)

func TestTeardown(t *testing.T) {
	s := func(v string) *string { return &v }
	old := &presence.Target{Interface: "Local/1003@q/n",
		Queues: map[string]*presence.QueueMember{"support": {Interface: "Local/1003@q/n"}, "sales": {Interface: "Local/1003@q/n", Membership: presence.MembershipOptional},
			"gone": nil},
		AstDB:    map[string]*string{"DND/1003": s("YES"), "CF/1003": nil, "PROFILE/1003/active": s("meeting")},
		Devices:  map[string]string{"Custom:DND1003": "BUSY", "Custom:PROFILE1003-4": "BUSY"},
		Presence: map[string]*presence.PresenceValue{"CustomPresence:1003": {State: "dnd"}},
		Globals:  map[string]*string{"FLAG": s("1")}}
	for _, tc := range []struct {
		name string
		keep *presence.Target
		want *presence.Target
	}{
		{"removed user: everything presenced set goes", nil, &presence.Target{Interface: "Local/1003@q/n",
			Queues:   map[string]*presence.QueueMember{"support": nil},
			AstDB:    map[string]*string{"DND/1003": nil, "PROFILE/1003/active": nil},
			Devices:  map[string]string{"Custom:DND1003": "INVALID", "Custom:PROFILE1003-4": "INVALID"},
			Presence: map[string]*presence.PresenceValue{"CustomPresence:1003": {State: "not_set"}},
			Globals:  map[string]*string{"FLAG": nil}}},
		{"kept keys stay to the new desired state", &presence.Target{Interface: "Local/1003@q/n",
			Queues: map[string]*presence.QueueMember{"support": {}}, AstDB: map[string]*string{"DND/1003": nil},
			Devices: map[string]string{"Custom:DND1003": "INVALID"}, Presence: map[string]*presence.PresenceValue{"CustomPresence:1003": {State: "away"}},
			Globals: map[string]*string{}}, &presence.Target{Interface: "Local/1003@q/n",
			Queues: map[string]*presence.QueueMember{}, AstDB: map[string]*string{"PROFILE/1003/active": nil},
			Devices: map[string]string{"Custom:PROFILE1003-4": "INVALID"}, Presence: map[string]*presence.PresenceValue{},
			Globals: map[string]*string{"FLAG": nil}}},
		{"another extension: the old member goes", &presence.Target{Interface: "Local/1009@q/n", Queues: map[string]*presence.QueueMember{"support": {}}},
			&presence.Target{Interface: "Local/1003@q/n", Queues: map[string]*presence.QueueMember{"support": nil},
				AstDB:    map[string]*string{"DND/1003": nil, "PROFILE/1003/active": nil},
				Devices:  map[string]string{"Custom:DND1003": "INVALID", "Custom:PROFILE1003-4": "INVALID"},
				Presence: map[string]*presence.PresenceValue{"CustomPresence:1003": {State: "not_set"}},
				Globals:  map[string]*string{"FLAG": nil}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var keep *presence.Desired
			if tc.keep != nil {
				keep = &presence.Desired{Target: *tc.keep}
			}
			if got := presence.Teardown(&presence.Desired{Target: *old}, keep, "INVALID"); !reflect.DeepEqual(got, &presence.Desired{Target: *tc.want}) {
				t.Errorf("Teardown =\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}
}

func TestDiffCatalogs(t *testing.T) {
	u := func(id, ext string) presence.User {
		return presence.User{ID: presence.UserID(id), Extension: ext, Devices: []presence.Device{{Dial: "PJSIP/" + ext, Family: presence.FamilyDesk}}}
	}
	lunch := presence.Profile{ID: "lunch", Name: "Lunch", OnEnter: []presence.Action{{Kind: presence.ActionQueuePause, Queues: presence.QueueSelector{"all"}}}}
	old, err := presence.NewCatalogFrom(presence.CatalogConfig{Users: []presence.User{u("alice", "1001"), u("carol", "1003"), u("dave", "1004")}, Profiles: []presence.Profile{lunch}})
	if err != nil {
		t.Fatal(err)
	}
	lunch2 := lunch
	lunch2.OnEnter = []presence.Action{{Kind: presence.ActionQueuePause, Queues: presence.QueueSelector{"all"}, Reason: "Mittag"}}
	cur, err := presence.NewCatalogFrom(presence.CatalogConfig{Users: []presence.User{u("alice", "1001"), u("bob", "1002"), u("dave", "1005")}, Profiles: []presence.Profile{lunch2}})
	if err != nil {
		t.Fatal(err)
	}
	ch := presence.DiffCatalogs(old, cur)
	if !slices.Equal(ch.Added, []presence.UserID{"bob"}) || !slices.Equal(ch.Removed, []presence.UserID{"carol"}) ||
		!slices.Equal(ch.Changed, []presence.UserID{"dave"}) || !slices.Equal(ch.Profiles, []string{"lunch"}) || ch.Rules {
		t.Fatalf("DiffCatalogs = %+v", ch)
	}
	if same := presence.DiffCatalogs(old, old); !same.Empty() {
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
	work := presence.Profile{ID: "work", Name: "Work", OnEnter: []presence.Action{{Kind: presence.ActionQueueLogin, Queues: presence.QueueSelector{"all"}}}}
	leader, pbx, states := newTestEngine(t, []presence.User{presence.Alice(), presence.Bob()}, []presence.Profile{presence.Lunch(), work})
	for _, sw := range []presence.SwitchRequest{{User: "alice", Profile: "work"}, {User: "alice", Profile: "lunch"}, {User: "bob", Profile: "work"}} {
		sw.Source = presence.SourceAPI
		if _, err := leader.Switch(ctx, sw); err != nil {
			t.Fatal(err)
		}
	}
	old := leader.Catalog()
	standby, err := presence.NewEngine(presence.EngineOptions{Catalog: old, Naming: presence.DefaultNaming(), States: states, Concerns: []presence.Concern{pbx},
		RetryMin: 20 * time.Millisecond, RetryMax: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	changed := presence.Lunch()
	changed.OnEnter[0].Reason = "Mittag"
	cur, err := presence.NewCatalogFrom(presence.CatalogConfig{Users: []presence.User{presence.Alice()}, Profiles: []presence.Profile{changed, work}})
	if err != nil {
		t.Fatal(err)
	}
	ch := standby.SetCatalog(cur)
	if !slices.Equal(ch.Removed, []presence.UserID{"bob"}) || !slices.Equal(ch.Profiles, []string{"lunch"}) {
		t.Fatalf("changes %+v", ch)
	}
	bobMember := "support|Local/1002@presenced-queue-member/n"
	var before *presence.QueueMember
	pbx.Edit(func(state *presence.Target) { before = state.Queues[bobMember] })
	if before == nil {
		t.Fatal("bob is no support member before the reload")
	}

	presencetest.Run(t, standby) // it leads now (the old leader's engine keeps running in this test, but no longer matters)
	deadline := time.Now().Add(10 * time.Second)
	for {
		var (
			gone        bool
			alicePaused *presence.QueueMember
		)
		pbx.Edit(func(state *presence.Target) {
			gone = state.Queues[bobMember] == nil && state.AstDB["PROFILE/1002/active"] == nil
			alicePaused = state.Queues["support|Local/1001@presenced-queue-member/n"]
		})
		n, _ := states.Redis().Exists(ctx, states.UserKey("bob")).Result()
		// The journal entry is written after the pass applied the change: wait for it too.
		j, jerr := standby.Journal(ctx, "alice", 1)
		journaled := jerr == nil && len(j) == 1 && j[0].Kind == presence.JournalReload
		if gone && n == 0 && alicePaused != nil && alicePaused.Reason == "Mittag" && journaled {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after leading: bob gone %v, bob's key %d, alice's member %+v, alice's last journal entry %+v %v (want a reload)",
				gone, n, alicePaused, j, jerr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	archived, err := states.Redis().Keys(ctx, states.Prefix()+"archive:*:user:bob*").Result()
	if err != nil || len(archived) != 2 { // state and journal; bob has no personal profiles
		t.Fatalf("archived keys %v %v", archived, err)
	}

	// A third instance that reloaded too and leads later finds it all done: nothing archived
	// again, nothing journaled again.
	third, err := presence.NewEngine(presence.EngineOptions{Catalog: old, Naming: presence.DefaultNaming(), States: states, Concerns: []presence.Concern{pbx}})
	if err != nil {
		t.Fatal(err)
	}
	third.SetCatalog(cur)
	presencetest.Run(t, third)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		left := third.RetiredUsers()
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d users still retired on the third instance", left)
		}
	}
	if again, _ := states.Redis().Keys(ctx, states.Prefix()+"archive:*:user:bob*").Result(); len(again) != 2 {
		t.Fatalf("archived keys after the third instance: %v", again)
	}
	if j, _ := third.Journal(ctx, "alice", 2); len(j) != 2 || j[1].Kind == presence.JournalReload {
		t.Fatalf("alice's journal after the third instance: %+v, want one reload entry", j)
	}
}
