package presence_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/presencetest"
)

// newTestEngine runs an engine over the lab Redis with a fresh key prefix, switching through
// an in-memory PBX: it proves the engine's loop, not Asterisk (the concerns' own tests do
// that against the lab).
func newTestEngine(t *testing.T, users []presence.User, profiles []presence.Profile) (*presence.Engine, *presencetest.PBX, *presence.StateStore) {
	t.Helper()
	return newTestEngineFrom(t, presence.CatalogConfig{Users: users, Profiles: profiles}, nil)
}

// newTestEngineFrom is newTestEngine with the catalog's rules and limits, and metrics in reg
// (nil for none).
func newTestEngineFrom(t *testing.T, cfg presence.CatalogConfig, reg prometheus.Registerer) (*presence.Engine, *presencetest.PBX, *presence.StateStore) {
	t.Helper()
	return newTestEngineWith(t, cfg, func(o *presencetest.RigOptions) { o.Engine.Registerer = reg })
}

// newTestEngineWith is newTestEngine with the catalog's rules and limits, and the rig's
// options (the engine's, the state store's) changed by opts.
func newTestEngineWith(t *testing.T, cfg presence.CatalogConfig, opts func(*presencetest.RigOptions)) (*presence.Engine, *presencetest.PBX, *presence.StateStore) {
	t.Helper()
	r, pbx := newTestRig(t, cfg, opts)
	return r.Engine, pbx, r.States
}

// newTestRig is newTestEngineWith's rig, and the PBX it switches through.
func newTestRig(t *testing.T, cfg presence.CatalogConfig, opts func(*presencetest.RigOptions)) (*presencetest.Rig, *presencetest.PBX) {
	t.Helper()
	pbx := presencetest.NewPBX()
	o := presencetest.RigOptions{Redis: presence.LabEnv(t).RedisClient(t, nil),
		Prefix: "test:" + t.Name() + ":" + fmt.Sprint(time.Now().UnixNano()) + ":", Catalog: cfg,
		Engine: testEngineOptions(nil, nil, pbx)}
	if opts != nil {
		opts(&o)
	}
	return presencetest.NewRig(t, o), pbx
}

// testEngineOptions are the options of the tests' engines over cat, states and pbx, with
// short retries.
func testEngineOptions(cat *presence.Catalog, states *presence.StateStore, pbx *presencetest.PBX) presence.EngineOptions {
	return presence.EngineOptions{Catalog: cat, Naming: presence.DefaultNaming(), States: states, Concerns: []presence.Concern{pbx},
		RetryMin: 20 * time.Millisecond, RetryMax: 100 * time.Millisecond}
}

func users(n int) []presence.User {
	out := make([]presence.User, n)
	for i := range out {
		ext := fmt.Sprint(2000 + i)
		out[i] = presence.User{ID: presence.UserID("u" + ext), Extension: ext, Devices: []presence.Device{{Dial: "PJSIP/" + ext, Family: presence.FamilyDesk}},
			Queues: []presence.QueueMembership{{Name: "support"}, {Name: "sales", Penalty: 1}}}
	}
	return out
}

func TestSwitchAppliesOnlyWhatDiffers(t *testing.T) {
	ctx := context.Background()
	e, pbx, _ := newTestEngine(t, []presence.User{presence.Alice()}, []presence.Profile{presence.Lunch()})
	res, err := e.Switch(ctx, presence.SwitchRequest{User: "alice", Profile: presence.ProfileAvailable, Source: presence.SourceAPI})
	if err != nil {
		t.Fatal(err)
	}
	if !res.InSync || len(res.Outcomes) == 0 {
		t.Fatalf("first switch: %+v", res)
	}
	res, err = e.Switch(ctx, presence.SwitchRequest{User: "alice", Profile: "lunch", Info: "back 1pm", Source: presence.SourceAPI})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range res.Outcomes {
		got = append(got, o.Op.String())
	}
	want := []string{
		"queue_pause sales Local/1001@presenced-queue-member/n paused (Lunch)",
		"queue_pause support Local/1001@presenced-queue-member/n paused (Lunch)",
		`db_put PROFILE/1001/active="lunch"`,
		`db_put PROFILE/1001/info="back 1pm"`,
		`device_state Custom:PROFILE1001-1="INVALID"`,
		`device_state Custom:PROFILE1001-3="BUSY"`,
		`presence CustomPresence:1001 away "Lunch (back 1pm)"`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("ops:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	st, err := e.Status(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if st.State.Profile != "lunch" || st.State.Previous != presence.ProfileAvailable || len(st.Drift) != 0 {
		t.Fatalf("status %+v drift %v", st.State, st.Drift)
	}
	_ = pbx
}

func TestPreviewChangesNothing(t *testing.T) {
	ctx := context.Background()
	e, pbx, states := newTestEngine(t, []presence.User{presence.Alice()}, []presence.Profile{presence.Lunch()})
	res, err := e.Preview(ctx, presence.SwitchRequest{User: "alice", Profile: "lunch", Source: presence.SourceAPI})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Preview || len(res.Outcomes) == 0 || res.Outcomes[0].Result != presence.ResultPlanned {
		t.Fatalf("preview %+v", res)
	}
	if len(pbx.Applied()) != 0 {
		t.Fatalf("preview applied %v", pbx.Applied())
	}
	if _, found, _ := states.Load(ctx, "alice"); found {
		t.Fatal("preview saved state")
	}
	if j, _ := states.Journal(ctx, "alice", 10); len(j) != 0 {
		t.Fatal("preview journaled")
	}
}

func TestUnknownUserAndProfile(t *testing.T) {
	e, _, _ := newTestEngine(t, []presence.User{presence.Alice()}, nil)
	ctx := context.Background()
	if _, err := e.Switch(ctx, presence.SwitchRequest{User: "nobody", Profile: "dnd"}); !errors.Is(err, presence.ErrUnknownUser) {
		t.Errorf("unknown user: %v", err)
	}
	if _, err := e.Switch(ctx, presence.SwitchRequest{User: "alice", Profile: "golf"}); !errors.Is(err, presence.ErrUnknownProfile) || !strings.Contains(err.Error(), `"golf"`) {
		t.Errorf("unknown profile: %v", err)
	}
}

// TestConcurrentSwitchesOfOneUserAreSerialised: many switches of one user at once end in the
// last one's state with every switch journaled, each computed from its predecessor.
func TestConcurrentSwitchesOfOneUserAreSerialised(t *testing.T) {
	ctx := context.Background()
	e, pbx, states := newTestEngine(t, []presence.User{presence.Alice()}, []presence.Profile{presence.Lunch()})
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			p := []string{presence.ProfileAvailable, "lunch", presence.ProfileDND}[i%3]
			if _, err := e.Switch(ctx, presence.SwitchRequest{User: "alice", Profile: p, Source: presence.SourceAPI}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	j, err := states.Journal(ctx, "alice", 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(j) != 20 {
		t.Fatalf("journal has %d entries, want 20", len(j))
	}
	for i := 0; i+1 < len(j); i++ { // newest first: each switch starts where the one before ended
		if j[i].From != j[i+1].To {
			t.Fatalf("entry %d from %q, but the switch before went to %q", i, j[i].From, j[i+1].To)
		}
	}
	st, err := e.Status(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if st.State.Profile != j[0].To || len(st.Drift) != 0 {
		t.Fatalf("final %q (journal says %q), drift %v", st.State.Profile, j[0].To, st.Drift)
	}
	_ = pbx
}

// TestManyUsersShareObservations: a burst of switches of different users costs far fewer
// reads of the PBX than switches.
func TestManyUsersShareObservations(t *testing.T) {
	ctx := context.Background()
	us := users(200)
	e, pbx, _ := newTestEngine(t, us, nil)
	// A read long enough that the switches saved meanwhile (each a Redis round trip or two
	// apart, more on a loaded machine) join the next read rather than start their own.
	pbx.SetObserveDelay(20 * time.Millisecond)
	var wg sync.WaitGroup
	for _, u := range us {
		wg.Go(func() {
			res, err := e.Switch(ctx, presence.SwitchRequest{User: u.ID, Profile: presence.ProfileAvailable, Source: presence.SourceSchedule})
			if err != nil || !res.InSync {
				t.Errorf("%s: %v %+v", u.ID, err, res)
			}
		})
	}
	wg.Wait()
	if n := pbx.Observes(); n > 40 {
		t.Fatalf("%d reads of the PBX for 200 switches; want them batched", n)
	}
	t.Logf("200 switches, %d batched reads", pbx.Observes())
}

// TestFailureIsRetriedAndVisibleAsDrift: a failed operation leaves the switch out of sync,
// shows as drift with a repair due, and is repaired once the PBX accepts it.
func TestFailureIsRetriedAndVisibleAsDrift(t *testing.T) {
	ctx := context.Background()
	e, pbx, states := newTestEngine(t, []presence.User{presence.Alice()}, []presence.Profile{presence.Lunch()})
	pbx.Fail(presence.OpQueuePause)
	if _, err := e.Switch(ctx, presence.SwitchRequest{User: "alice", Profile: presence.ProfileAvailable, Source: presence.SourceAPI}); err != nil {
		t.Fatal(err)
	}
	res, err := e.Switch(ctx, presence.SwitchRequest{User: "alice", Profile: "lunch", Source: presence.SourceAPI})
	if err != nil {
		t.Fatal(err)
	}
	if res.InSync {
		t.Fatal("a failed pause reported in sync")
	}
	st, err := e.Status(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Drift) != 2 || st.RepairDue == nil {
		t.Fatalf("drift %v, repair due %v", st.Drift, st.RepairDue)
	}
	pbx.Fail("")
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err = e.Status(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Drift) == 0 && st.RepairDue == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not repaired: drift %v", st.Drift)
		}
		time.Sleep(20 * time.Millisecond)
	}
	j, _ := states.Journal(ctx, "alice", 10)
	if len(j) < 3 || j[0].Kind != "repair" || !j[0].InSync {
		t.Fatalf("journal %+v", j)
	}
}

func TestPersonalProfiles(t *testing.T) {
	ctx := context.Background()
	e, _, _ := newTestEngine(t, []presence.User{presence.Alice()}, []presence.Profile{presence.Lunch()})
	home := &presence.Profile{ID: "home", Name: "Home office", Activation: "7",
		OnEnter: []presence.Action{{Kind: presence.ActionFollowMe, Families: []presence.Family{presence.FamilySoftphone, presence.FamilyMobile}}}}
	if err := e.SaveProfile(ctx, "alice", home); err != nil {
		t.Fatal(err)
	}
	if err := e.SaveProfile(ctx, "alice", &presence.Profile{ID: "lunch"}); !errors.Is(err, presence.ErrSystemProfile) {
		t.Errorf("editing a system profile: %v", err)
	}
	if err := e.SaveProfile(ctx, "alice", &presence.Profile{ID: "gym", Activation: "3"}); err == nil || !strings.Contains(err.Error(), `activation number of profile "lunch"`) {
		t.Errorf("clashing activation: %v", err)
	}
	if err := e.SaveProfile(ctx, "alice", &presence.Profile{ID: "bad", OnEnter: []presence.Action{{Kind: "teleport"}}}); err == nil || !strings.Contains(err.Error(), `unknown action "teleport"`) {
		t.Errorf("bad action: %v", err)
	}
	if err := e.SaveProfile(ctx, "alice", &presence.Profile{ID: "hook", OnEnter: []presence.Action{{Kind: presence.ActionWebhook, URL: "http://10.0.0.1/x"}}}); err == nil || !strings.Contains(err.Error(), "webhooks are for system-wide profiles only") {
		t.Errorf("webhook in a personal profile: %v", err)
	}
	if _, err := e.Switch(ctx, presence.SwitchRequest{User: "alice", Profile: "home", Source: presence.SourceAPI}); err != nil {
		t.Fatal(err)
	}
	if err := e.DeleteProfile(ctx, "alice", "home"); !errors.Is(err, presence.ErrProfileActive) {
		t.Errorf("deleting the active profile: %v", err)
	}
	if err := e.SaveProfile(ctx, "alice", home); !errors.Is(err, presence.ErrProfileActive) {
		t.Errorf("editing the active profile: %v", err)
	}
	if _, err := e.Switch(ctx, presence.SwitchRequest{User: "alice", Profile: presence.ProfileAvailable, Source: presence.SourceAPI}); err != nil {
		t.Fatal(err)
	}
	if err := e.DeleteProfile(ctx, "alice", "home"); err != nil {
		t.Fatal(err)
	}
	if err := e.DeleteProfile(ctx, "alice", "home"); !errors.Is(err, presence.ErrUnknownProfile) {
		t.Errorf("deleting twice: %v", err)
	}
	if err := e.DeleteProfile(ctx, "alice", presence.ProfileDND); !errors.Is(err, presence.ErrSystemProfile) {
		t.Errorf("deleting a system profile: %v", err)
	}
}

// TestCorruptStateIsReportedNotLost: unreadable Redis data is named in the error; a switch
// proceeds from an empty state and the other users are unaffected.
func TestCorruptStateIsReportedNotLost(t *testing.T) {
	ctx := context.Background()
	us := users(2)
	e, _, states := newTestEngine(t, us, nil)
	if err := states.Redis().HSet(ctx, states.UserKey(us[0].ID), "state", "{not json", "version", "3").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Status(ctx, us[0].ID); err == nil || !strings.Contains(err.Error(), states.UserKey(us[0].ID)) {
		t.Fatalf("status of corrupt user: %v", err)
	}
	everyone, err := e.Everyone(ctx, presence.EveryoneOptions{Admin: true})
	if err != nil || len(everyone) != 1 || everyone[0].User != us[1].ID {
		t.Fatalf("everyone, the unreadable user left out: %+v %v", everyone, err)
	}
	if _, err := e.Switch(ctx, presence.SwitchRequest{User: us[1].ID, Profile: presence.ProfileDND, Source: presence.SourceAPI}); err != nil {
		t.Fatalf("other user: %v", err)
	}
	res, err := e.Switch(ctx, presence.SwitchRequest{User: us[0].ID, Profile: presence.ProfileDND, Source: presence.SourceAPI})
	if err != nil || !res.InSync {
		t.Fatalf("switch of corrupt user: %v %+v", err, res)
	}
	if st, _ := e.Status(ctx, us[0].ID); st.State.Version != 4 {
		t.Fatalf("version after overwrite = %d, want 4", st.State.Version)
	}
}

func TestStateSaveConflict(t *testing.T) {
	ctx := context.Background()
	_, _, states := newTestEngine(t, []presence.User{presence.Alice()}, nil)
	st, err := states.Save(ctx, "alice", presence.UserState{Profile: "a"})
	if err != nil || st.Version != 1 {
		t.Fatalf("first save: %+v %v", st, err)
	}
	if _, err := states.Save(ctx, "alice", presence.UserState{Profile: "b", Version: 0}); !errors.Is(err, presence.ErrConflict) {
		t.Fatalf("stale save: %v", err)
	}
	got, _, _ := states.Load(ctx, "alice")
	if got.Profile != "a" {
		t.Fatalf("stale save overwrote: %+v", got)
	}
}

// TestCheckAllPutsBackWhatDrifted: after the PBX lost its state (an Asterisk restart without
// persistent members), CheckAll restores every switched user and leaves the others alone.
func TestCheckAllPutsBackWhatDrifted(t *testing.T) {
	ctx := context.Background()
	us := users(30)
	e, pbx, _ := newTestEngine(t, us, nil)
	for _, u := range us[:20] {
		if _, err := e.Switch(ctx, presence.SwitchRequest{User: u.ID, Profile: presence.ProfileAvailable, Source: presence.SourceAPI}); err != nil {
			t.Fatal(err)
		}
	}
	var before int
	pbx.Edit(func(state *presence.Target) {
		before = len(state.Queues)
		*state = *presence.NewTarget() // Asterisk restarted and forgot everything
	})

	sum, err := e.CheckAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Users != 20 || sum.Repaired != 20 || sum.Failed != 0 {
		t.Fatalf("summary %+v, want 20 users checked and repaired", sum)
	}
	var after int
	pbx.Edit(func(state *presence.Target) { after = len(state.Queues) })
	if after != before || before != 40 {
		t.Fatalf("queue members before %d, after repair %d; want 40", before, after)
	}
	sum, err = e.CheckAll(ctx)
	if err != nil || sum.Repaired != 0 || sum.Failed != 0 {
		t.Fatalf("second CheckAll in sync: %+v %v", sum, err)
	}
}

// TestEventsRepairAndFlappingIsNotFought: a change the PBX reports is looked at whenever it
// comes (right after presenced's own change too): the echo of presenced's own switch finds
// nothing to do, a change by hand is put back; when someone keeps changing it back, presenced
// reports it and stops repairing until the window has passed, while a reconcile still applies.
func TestEventsRepairAndFlappingIsNotFought(t *testing.T) {
	ctx := context.Background()
	u := presence.Alice()
	e, pbx, _ := newTestEngineWith(t, presence.CatalogConfig{Users: []presence.User{u}, Profiles: []presence.Profile{presence.Lunch()}}, func(o *presencetest.RigOptions) {
		o.Engine.FlapLimit, o.Engine.FlapWindow = 3, time.Minute
	})
	if _, err := e.Switch(ctx, presence.SwitchRequest{User: "alice", Profile: presence.ProfileAvailable, Source: presence.SourceAPI}); err != nil {
		t.Fatal(err)
	}
	if res, err := e.Check(ctx, "alice"); err != nil || len(res.Outcomes) != 0 || !res.InSync {
		t.Fatalf("the echo of presenced's own switch: %v %v", err, resultsOf(res))
	}
	iface := presence.DefaultNaming().Interface(&u)
	removeByHand := func() {
		pbx.Edit(func(state *presence.Target) { delete(state.Queues, "support|"+iface) })
	}
	isMember := func() bool { return member(pbx, "support", iface) != nil }
	for i := range 3 {
		removeByHand()
		e.CheckSoon("alice") // what the queue watcher does on QueueMemberRemoved
		waitFor(t, fmt.Sprintf("repair %d", i+1), isMember)
	}
	removeByHand()
	res, err := e.Check(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if isMember() || res.InSync || len(res.Outcomes) == 0 || res.Outcomes[0].Result != presence.ResultReported {
		t.Fatalf("a member changed back three times within the window is still fought: member %v, %v", isMember(), resultsOf(res))
	}
	if n := testutil.ToFloat64(e.Metrics().Flapping); n != 1 {
		t.Errorf("flapping reported %v times, want 1", n)
	}
	if res, err := e.Enforce(ctx, "alice", "alice"); err != nil || !res.InSync || !isMember() {
		t.Fatalf("a reconcile of a flapping user: %v %v, member %v", err, resultsOf(res), isMember())
	}
}

// BoundTo names the user bound to a hot desk, and asks the PBX about no phone that cannot be
// one: a user's own phone, or a trunk whose calls come in through a trusted context.
func TestBoundToAsksOnlyAboutHotDesks(t *testing.T) {
	ctx := context.Background()
	desk := presence.Profile{ID: "at-desk", Name: "At the hot desk", Activation: "7",
		OnEnter: []presence.Action{{Kind: presence.ActionLocation, Device: "PJSIP/hotdesk-1"}}}
	e, pbx, _ := newTestEngineFrom(t, presence.CatalogConfig{Users: []presence.User{presence.Alice()},
		Profiles: []presence.Profile{desk}, HotDesks: []string{"PJSIP/hotdesk-2"}}, nil)
	if _, err := e.Switch(ctx, presence.SwitchRequest{User: "alice", Profile: "at-desk", Source: presence.SourceAPI}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		device string
		bound  bool
		asks   bool // whether the PBX is read
	}{
		{"PJSIP/hotdesk-1", true, true},
		{"PJSIP/hotdesk-2", false, true},
		{"PJSIP/1001", false, false},
		{"PJSIP/lab-trunk", false, false},
	} {
		before := pbx.Observes()
		u, ok, err := e.BoundTo(ctx, tc.device)
		if err != nil {
			t.Fatalf("BoundTo(%s): %v", tc.device, err)
		}
		if ok != tc.bound || (ok && u.ID != "alice") {
			t.Errorf("BoundTo(%s) = %v, %v; want bound %v", tc.device, u, ok, tc.bound)
		}
		if asked := pbx.Observes() > before; asked != tc.asks {
			t.Errorf("BoundTo(%s) read the PBX: %v, want %v", tc.device, asked, tc.asks)
		}
	}
}
