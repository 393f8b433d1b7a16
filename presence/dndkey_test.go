package presence_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/presencetest"
)

// byHand changes the in-memory PBX as a phone would: an astdb key (nil deletes it) or a lamp.
func byHand(pbx *presencetest.PBX, db map[string]*string, devices map[string]string) {
	pbx.Edit(func(state *presence.Target) {
		for k, v := range db {
			if v == nil {
				delete(state.AstDB, k)
			} else {
				state.AstDB[k] = v
			}
		}
		for k, v := range devices {
			state.Devices[k] = v
		}
	})
}

// dbGet is the astdb key on the PBX, "" when it does not exist.
func dbGet(pbx *presencetest.PBX, key string) string {
	var v string
	pbx.Edit(func(state *presence.Target) {
		if p := state.AstDB[key]; p != nil {
			v = *p
		}
	})
	return v
}

// deviceState is the lamp's state on the PBX.
func deviceState(pbx *presencetest.PBX, key string) string {
	var v string
	pbx.Edit(func(state *presence.Target) { v = state.Devices[key] })
	return v
}

// dndKeyEngine is an engine whose dnd policy is switch, with the options opts sets.
func dndKeyEngine(t *testing.T, u presence.User, opts presence.DNDKeyOptions, more ...presence.Profile) (*presence.Engine, *presencetest.PBX, *presence.StateStore) {
	t.Helper()
	return newTestEngineWith(t, dndKeyConfig(u, more...), func(o *presencetest.RigOptions) { withDNDKey(opts)(&o.Engine) })
}

// dndKeyConfig is the catalog of dndKeyEngine: u, and the profiles lunch, quiet and more.
func dndKeyConfig(u presence.User, more ...presence.Profile) presence.CatalogConfig {
	quiet := presence.Profile{ID: "quiet", Name: "Quiet", OnEnter: []presence.Action{{Kind: presence.ActionDND},
		{Kind: presence.ActionQueuePause, Queues: presence.QueueSelector{"all"}, Reason: "Quiet"}},
		OnExit: []presence.Action{{Kind: presence.ActionDND, On: new(false)}, {Kind: presence.ActionQueueUnpause, Queues: presence.QueueSelector{"all"}}}}
	profiles := append([]presence.Profile{presence.Lunch(), quiet}, more...)
	return presence.CatalogConfig{Users: []presence.User{u}, Profiles: profiles}
}

// withDNDKey sets the dnd policy switch and the DND key's options opts.
func withDNDKey(opts presence.DNDKeyOptions) func(*presence.EngineOptions) {
	return func(o *presence.EngineOptions) {
		o.Policies, o.DNDKey = presence.Policies{presence.DriftDND: presence.PolicySwitch}, opts
	}
}

// pressDND turns alice's DND on or off on the PBX as the DND key of her phone does (the astdb
// key written, or deleted) and has e look at her at once.
func pressDND(t *testing.T, e *presence.Engine, pbx *presencetest.PBX, on bool) *presence.SwitchResult {
	t.Helper()
	v := new("YES")
	if !on {
		v = nil
	}
	byHand(pbx, map[string]*string{"DND/1001": v}, nil)
	res, err := e.Check(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// waitProfile waits until the user's state is in profile, and returns it.
func waitProfile(t *testing.T, states *presence.StateStore, id presence.UserID, profile string) presence.UserState {
	t.Helper()
	var st presence.UserState
	waitFor(t, string(id)+" in "+profile, func() bool {
		var err error
		st, _, err = states.Load(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		return st.Profile == profile && st.Record != nil && st.Record.Version == st.Version && st.Record.InSync
	})
	return st
}

// TestDNDKeySwitchesProfiles: under reconcile.policy.dnd switch, DND turned on by hand (the
// astdb key, as FreePBX's *78 writes it) switches the user to their DND profile, with source
// phone and an actor naming what was seen, and the lamp, queues and presence follow; DND
// turned off again (the key deleted, as *79 does) takes them back to the profile before. A
// lamp toggled (a BLF key) does the same.
func TestDNDKeySwitchesProfiles(t *testing.T) {
	ctx := context.Background()
	u := presence.Alice()
	e, pbx, states := dndKeyEngine(t, u, presence.DNDKeyOptions{})
	iface := presence.DefaultNaming().Interface(&u)
	for _, p := range []string{presence.ProfileAvailable, "lunch"} {
		if _, err := e.Switch(ctx, presence.SwitchRequest{User: "alice", Profile: p, Source: presence.SourceAPI}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.CheckAll(ctx); err != nil {
		t.Fatal(err)
	}

	byHand(pbx, map[string]*string{"DND/1001": new("YES")}, nil)
	res, err := e.Check(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(resultsOf(res), "; "); !strings.Contains(got, "switching db_del DND/1001") {
		t.Fatalf("the repair that saw the key: %s, want the DND key's op switching", got)
	}
	st := waitProfile(t, states, "alice", presence.ProfileDND)
	if st.Source != presence.SourcePhone || st.Actor != "DND key on (astdb DND/1001 = YES)" || st.Previous != "lunch" {
		t.Fatalf("state after the DND key: source %q actor %q previous %q", st.Source, st.Actor, st.Previous)
	}
	if deviceState(pbx, "Custom:DND1001") != "BUSY" || dbGet(pbx, "PROFILE/1001/active") != presence.ProfileDND {
		t.Fatalf("PBX after the switch: lamp %q, active %q", deviceState(pbx, "Custom:DND1001"), dbGet(pbx, "PROFILE/1001/active"))
	}
	j, err := states.Journal(ctx, "alice", 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(j) == 0 || j[0].Kind != "switch" || j[0].Source != presence.SourcePhone || j[0].To != presence.ProfileDND {
		t.Fatalf("the journal's last entry: %+v", j)
	}

	// DND off by hand: back to lunch, the profile before.
	byHand(pbx, map[string]*string{"DND/1001": nil}, nil)
	if _, err := e.Check(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	st = waitProfile(t, states, "alice", "lunch")
	if st.Actor != "DND key off (astdb DND/1001 not set)" {
		t.Fatalf("actor of the return %q", st.Actor)
	}
	if deviceState(pbx, "Custom:DND1001") != "INVALID" || !member(pbx, "support", iface).Paused {
		t.Fatalf("PBX after the return: lamp %q, support %+v", deviceState(pbx, "Custom:DND1001"), member(pbx, "support", iface))
	}

	// The lamp, toggled from a BLF key.
	byHand(pbx, nil, map[string]string{"Custom:DND1001": "BUSY"})
	if _, err := e.Check(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	st = waitProfile(t, states, "alice", presence.ProfileDND)
	if st.Actor != "DND key on (lamp Custom:DND1001 BUSY)" || dbGet(pbx, "DND/1001") != "YES" {
		t.Fatalf("after the lamp: actor %q, DND/1001 %q", st.Actor, dbGet(pbx, "DND/1001"))
	}
	byHand(pbx, nil, map[string]string{"Custom:DND1001": "NOT_INUSE"})
	if _, err := e.Check(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	waitProfile(t, states, "alice", "lunch")
	if dbGet(pbx, "DND/1001") != "" {
		t.Fatalf("DND/1001 = %q after the lamp went off", dbGet(pbx, "DND/1001"))
	}
	// Counted once the switch has returned, just after its pass.
	waitFor(t, "presenced_dnd_key_switches_total{switched} 4", func() bool {
		return testutil.ToFloat64(e.Metrics().DNDSwitches.WithLabelValues("switched")) == 4
	})
	if n := testutil.ToFloat64(e.Metrics().DNDChanges.WithLabelValues("on")); n != 2 {
		t.Errorf("presenced_dnd_key_changes_total{on} = %v, want 2", n)
	}
}

// TestDNDKeyUserProfileAndDefault: a user's own dnd_profile wins over the system-wide one; DND
// off goes to the default profile when the profile before would leave DND on; a user whose
// lineage never mentioned DND is watched too (DND off is their desired state).
func TestDNDKeyUserProfileAndDefault(t *testing.T) {
	ctx := context.Background()
	u := presence.Alice()
	u.DNDProfile = "quiet"
	e, pbx, states := dndKeyEngine(t, u, presence.DNDKeyOptions{})
	if _, err := e.Switch(ctx, presence.SwitchRequest{User: "alice", Profile: "lunch", Source: presence.SourceAPI}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.CheckAll(ctx); err != nil {
		t.Fatal(err)
	}
	byHand(pbx, map[string]*string{"DND/1001": new("YES")}, nil)
	if _, err := e.Check(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	waitProfile(t, states, "alice", "quiet")
	// By hand into dnd: the profile before is quiet, which turns DND on: off goes to available.
	if _, err := e.Switch(ctx, presence.SwitchRequest{User: "alice", Profile: presence.ProfileDND, Source: presence.SourceAPI}); err != nil {
		t.Fatal(err)
	}
	byHand(pbx, map[string]*string{"DND/1001": nil}, nil)
	if _, err := e.Check(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	waitProfile(t, states, "alice", presence.ProfileAvailable)
}

// TestDNDKeyFlapProtection: past dnd_key.switches within the window the DND key is not
// followed: the fallback (report here) leaves DND as the phone set it, the outcome and the
// status say why, and the refusal is counted once.
func TestDNDKeyFlapProtection(t *testing.T) {
	for _, fallback := range []presence.Policy{presence.PolicyReport, presence.PolicyEnforce} {
		t.Run(string(fallback), func(t *testing.T) {
			ctx := context.Background()
			e, pbx, states := dndKeyEngine(t, presence.Alice(), presence.DNDKeyOptions{Switches: 2, Window: time.Hour, Fallback: fallback})
			if _, err := e.Switch(ctx, presence.SwitchRequest{User: "alice", Profile: presence.ProfileAvailable, Source: presence.SourceAPI}); err != nil {
				t.Fatal(err)
			}
			if _, err := e.CheckAll(ctx); err != nil {
				t.Fatal(err)
			}
			pressDND(t, e, pbx, true)
			waitProfile(t, states, "alice", presence.ProfileDND)
			pressDND(t, e, pbx, false)
			waitProfile(t, states, "alice", presence.ProfileAvailable)
			res := pressDND(t, e, pbx, true)
			got := strings.Join(resultsOf(res), "; ")
			var note string
			for _, o := range res.Outcomes {
				if o.Op.Key == "DND/1001" {
					note = o.Note
				}
			}
			if !strings.Contains(note, "switched alice 2 times within 1h0m0s: not followed until") {
				t.Fatalf("outcome note %q (%s)", note, got)
			}
			switch fallback {
			case presence.PolicyReport:
				if !strings.Contains(got, "reported db_del DND/1001") {
					t.Fatalf("outcomes %s, want the key reported", got)
				}
				if dbGet(pbx, "DND/1001") != "YES" {
					t.Fatalf("DND/1001 %q, want left as the phone set it", dbGet(pbx, "DND/1001"))
				}
				st, err := e.Status(ctx, "alice")
				if err != nil {
					t.Fatal(err)
				}
				if len(st.Differences) == 0 || st.Differences[0].Policy != presence.PolicySwitch {
					t.Fatalf("status differences %+v", st.Differences)
				}
				pressDND(t, e, pbx, true) // looked at again: refused again, counted once
			case presence.PolicyEnforce:
				if dbGet(pbx, "DND/1001") != "" || !strings.Contains(got, "applied db_del DND/1001") {
					t.Fatalf("DND/1001 %q, outcomes %s: want it put back", dbGet(pbx, "DND/1001"), got)
				}
			}
			if st, _, _ := states.Load(ctx, "alice"); st.Profile != presence.ProfileAvailable {
				t.Fatalf("profile %q after the refused key, want available", st.Profile)
			}
			if n := testutil.ToFloat64(e.Metrics().DNDSwitches.WithLabelValues("refused")); n != 1 {
				t.Errorf("presenced_dnd_key_switches_total{refused} = %v, want 1", n)
			}
		})
	}
}

// TestDNDKeyIgnoresTheWantedStateMoving: a difference that comes from the desired state, not
// from the PBX (here an operation of a switch that failed), is put back as the lamp policy
// says, never taken for the DND key: the user stays where they switched.
func TestDNDKeyIgnoresTheWantedStateMoving(t *testing.T) {
	ctx := context.Background()
	e, pbx, states := dndKeyEngine(t, presence.Alice(), presence.DNDKeyOptions{})
	if _, err := e.Switch(ctx, presence.SwitchRequest{User: "alice", Profile: presence.ProfileAvailable, Source: presence.SourceAPI}); err != nil {
		t.Fatal(err)
	}
	pbx.Fail(presence.OpDeviceState)
	res, err := e.Switch(ctx, presence.SwitchRequest{User: "alice", Profile: presence.ProfileDND, Source: presence.SourceAPI})
	if err != nil {
		t.Fatal(err)
	}
	if res.InSync {
		t.Fatalf("switch with the lamps failing: %s", resultsOf(res))
	}
	pbx.Fail("")
	// The retry after the failure, or this repair, whichever comes first, puts the lamp back.
	if _, err := e.Check(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the DND lamp put back", func() bool { return deviceState(pbx, "Custom:DND1001") == "BUSY" })
	if st, _, _ := states.Load(ctx, "alice"); st.Profile != presence.ProfileDND || st.Source != presence.SourceAPI {
		t.Fatalf("state %q (%s), want dnd as switched", st.Profile, st.Source)
	}
	if n := testutil.ToFloat64(e.Metrics().DNDChanges.WithLabelValues("off")); n != 0 {
		t.Errorf("presenced_dnd_key_changes_total{off} = %v, want 0", n)
	}
}

// TestSwitchDNDToggles: the feature code's toggle: DND on to the DND profile, off back to the
// profile before.
func TestSwitchDNDToggles(t *testing.T) {
	ctx := context.Background()
	e, _, _ := dndKeyEngine(t, presence.Alice(), presence.DNDKeyOptions{})
	if _, err := e.Switch(ctx, presence.SwitchRequest{User: "alice", Profile: "lunch", Source: presence.SourceAPI}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct {
		profile string
		on      bool
	}{{presence.ProfileDND, true}, {"lunch", false}, {presence.ProfileDND, true}} {
		res, on, err := e.SwitchDND(ctx, presence.DNDRequest{User: "alice", Source: presence.SourceFeatureCode, Actor: "*76"})
		if err != nil {
			t.Fatal(err)
		}
		if res.To != want.profile || on != want.on || !res.InSync {
			t.Fatalf("toggle: to %q on %v in sync %v, want %q %v", res.To, on, res.InSync, want.profile, want.on)
		}
	}
	off := false
	if res, _, err := e.SwitchDND(ctx, presence.DNDRequest{User: "alice", On: &off, Source: presence.SourceFeatureCode}); err != nil || res.To != "lunch" {
		t.Fatalf("DND off: %v %+v", err, res)
	}
}

func TestDNDKeyOptionsValidate(t *testing.T) {
	u := presence.Alice()
	u.DNDProfile = "lunch"
	cat, err := presence.NewCatalogFrom(presence.CatalogConfig{Users: []presence.User{u}, Profiles: []presence.Profile{presence.Lunch()}})
	if err != nil {
		t.Fatal(err)
	}
	err = presence.DNDKeyOptions{Profile: "gone", DefaultProfile: "nope", Switches: -1, Fallback: "adopt"}.Validate("dnd_key", cat)
	for _, want := range []string{
		"dnd_key.switches: -1 is negative",
		`dnd_key.fallback: "adopt" is not enforce or report`,
		`dnd_key.profile: "gone" is not a system-wide profile`,
		`dnd_key.default_profile: "nope" is not a system-wide profile`,
		`users[0] (alice).dnd_profile: profile "lunch" does not turn DND on`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v, want it to say %q", err, want)
		}
	}
	if err := (presence.DNDKeyOptions{Profile: presence.ProfileDND}).Validate("dnd_key", cat); err == nil {
		t.Error("alice's dnd_profile lunch passed")
	}
	u.DNDProfile = ""
	cat, _ = presence.NewCatalogFrom(presence.CatalogConfig{Users: []presence.User{u}})
	if err := (presence.DNDKeyOptions{Profile: presence.ProfileDND, Switches: 3, Window: time.Minute}).Validate("dnd_key", cat); err != nil {
		t.Errorf("valid options: %v", err)
	}
	if err := (presence.Policies{presence.DriftQueuePause: presence.PolicySwitch}).Validate(); err == nil || !strings.Contains(err.Error(), "switch is only for dnd") {
		t.Errorf("switch for queue_pause: %v", err)
	}
	if err := (presence.Policies{presence.DriftDND: presence.PolicySwitch}).Validate(); err != nil {
		t.Errorf("switch for dnd: %v", err)
	}
}

// TestDNDKeyCountSurvivesANewLeader: the switches by the DND key are counted in Redis, so the
// engine of a new leader (a new term over the same store and PBX) goes on counting: the limit
// reached under the first holds under the second.
func TestDNDKeyCountSurvivesANewLeader(t *testing.T) {
	ctx := context.Background()
	opts := presence.DNDKeyOptions{Switches: 2, Window: time.Hour, Fallback: presence.PolicyReport}
	r, pbx := newTestRig(t, dndKeyConfig(presence.Alice()), func(o *presencetest.RigOptions) { withDNDKey(opts)(&o.Engine) })
	e1, states := r.Engine, r.States
	if _, err := e1.Switch(ctx, presence.SwitchRequest{User: "alice", Profile: presence.ProfileAvailable, Source: presence.SourceAPI}); err != nil {
		t.Fatal(err)
	}
	pressDND(t, e1, pbx, true)
	waitProfile(t, states, "alice", presence.ProfileDND)
	pressDND(t, e1, pbx, false)
	waitProfile(t, states, "alice", presence.ProfileAvailable)

	// The next leader: a new engine over the same store and PBX, the first one's term ended.
	o := testEngineOptions(e1.Catalog(), states, pbx)
	withDNDKey(opts)(&o)
	e2, err := presence.NewEngine(o)
	if err != nil {
		t.Fatal(err)
	}
	r.Stop()
	presencetest.Run(t, e2)
	res := pressDND(t, e2, pbx, true)
	if got := strings.Join(resultsOf(res), "; "); !strings.Contains(got, "reported db_del DND/1001") {
		t.Fatalf("the new leader's repair: %s, want the key reported (the limit reached)", got)
	}
	if st, _, _ := states.Load(ctx, "alice"); st.Profile != presence.ProfileAvailable {
		t.Fatalf("profile %q, want available: the new leader switched past the limit", st.Profile)
	}
}
