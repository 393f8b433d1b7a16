package presencetest_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/presencetest"
)

func TestPBXAppliesAndFailsOnRequest(t *testing.T) {
	ctx := context.Background()
	pbx := presencetest.NewPBX()
	u := &presence.User{ID: "alice"}
	put := presence.Op{Kind: presence.OpDBPut, Key: "PROFILE/1001/active", Value: "lunch"}
	glob := presence.Op{Kind: presence.OpGlobal, Key: "X", Value: "1"}

	pbx.Fail(presence.OpDBPut)
	out := pbx.Apply(ctx, u, []presence.Op{put, glob})
	if got, want := presencetest.Results(out), []presence.Result{presence.ResultFailed, presence.ResultApplied}; !slices.Equal(got, want) {
		t.Fatalf("results while db_put fails: %v, want %v", got, want)
	}
	pbx.Fail("")
	out = pbx.Apply(ctx, u, []presence.Op{put})
	if got, want := presencetest.Results(out), []presence.Result{presence.ResultApplied}; !slices.Equal(got, want) {
		t.Fatalf("results once the failures end: %v, want %v", got, want)
	}
	if got := len(pbx.Applied()); got != 3 {
		t.Fatalf("%d operations recorded, want 3 (the failed one too)", got)
	}

	want := presence.NewTarget()
	want.AstDB["PROFILE/1001/active"] = nil
	have := map[presence.UserID]*presence.Target{"alice": presence.NewTarget()}
	if err := pbx.Observe(ctx, map[presence.UserID]*presence.Target{"alice": want}, have); err != nil {
		t.Fatal(err)
	}
	if v := have["alice"].AstDB["PROFILE/1001/active"]; v == nil || *v != "lunch" {
		t.Fatalf("observed %v, want lunch", v)
	}
}

func TestPBXObserveDelayAndCount(t *testing.T) {
	ctx := context.Background()
	pbx := presencetest.NewPBX()
	none := map[presence.UserID]*presence.Target{}
	pbx.SetObserveDelay(20 * time.Millisecond)
	start := time.Now()
	if err := pbx.Observe(ctx, none, none); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 20*time.Millisecond {
		t.Fatalf("Observe took %v, want at least the 20ms delay", d)
	}
	pbx.SetObserveDelay(0)
	if err := pbx.Observe(ctx, none, none); err != nil {
		t.Fatal(err)
	}
	if n := pbx.Observes(); n != 2 {
		t.Fatalf("Observes = %d, want 2", n)
	}
}

// TestRigCatalogAndStop: a Rig's catalog takes RigOptions.Catalog's rules with Users and
// Profiles added to it, and Stop ends the engine's term before the test ends.
func TestRigCatalogAndStop(t *testing.T) {
	ctx := context.Background()
	store, err := presence.OpenRedis(ctx, presence.RedisOptions{}) // the embedded store
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close(context.Background()) })
	alice := presence.User{ID: "alice", Extension: "1001", Devices: []presence.Device{{Dial: "PJSIP/1001", Family: presence.FamilyDesk}}}
	r := presencetest.NewRig(t, presencetest.RigOptions{Redis: store.Client(), Prefix: "rigtest:",
		Users: []presence.User{alice}, Profiles: []presence.Profile{{ID: "lunch", Name: "Lunch"}},
		Catalog: presence.CatalogConfig{Limits: presence.Limits{PersonalProfiles: 2}, HotDesks: []string{"PJSIP/hotdesk-1"}}})
	if _, ok := r.Catalog.User("alice"); !ok {
		t.Error("the catalog lacks the user of RigOptions.Users")
	}
	if _, ok := r.Catalog.Profile("lunch"); !ok {
		t.Error("the catalog lacks the profile of RigOptions.Profiles")
	}
	if got := r.Catalog.Limits().PersonalProfiles; got != 2 {
		t.Errorf("personal profiles limit %d, want RigOptions.Catalog's 2", got)
	}
	if got := r.Catalog.HotDesks(); !slices.Equal(got, []string{"PJSIP/hotdesk-1"}) {
		t.Errorf("hot desks %v, want RigOptions.Catalog's", got)
	}
	if !r.Engine.Running() {
		t.Fatal("the rig's engine does not run")
	}
	r.Stop()
	if r.Engine.Running() {
		t.Fatal("the engine still runs after Stop")
	}
	r.Stop() // again, as the test's end does: nothing
}
