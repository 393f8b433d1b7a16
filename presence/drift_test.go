package presence_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/presencetest"
)

// fakeDevices is a DeviceStates the test sets by hand.
type fakeDevices struct {
	mu sync.Mutex
	m  map[string]string
}

func (d *fakeDevices) DeviceState(dev string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.m[dev]
}

func (d *fakeDevices) set(dev, state string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.m == nil {
		d.m = map[string]string{}
	}
	d.m[dev] = state
}

// member is a copy of queue q's member iface on the PBX, nil when there is none.
func member(pbx *presencetest.PBX, q, iface string) *presence.QueueMember {
	var m *presence.QueueMember
	pbx.Edit(func(state *presence.Target) {
		if mem := state.Queues[q+"|"+iface]; mem != nil {
			c := *mem
			m = &c
		}
	})
	return m
}

// unpauseByHand unpauses queue q's member iface on the PBX, as an agent would.
func unpauseByHand(pbx *presencetest.PBX, q, iface string) {
	pbx.Edit(func(state *presence.Target) {
		state.Queues[q+"|"+iface].Paused = false
		state.Queues[q+"|"+iface].Reason = ""
	})
}

func resultsOf(res *presence.SwitchResult) []string {
	var out []string
	for _, o := range res.Outcomes {
		out = append(out, string(o.Result)+" "+o.Op.String())
	}
	return out
}

// TestDriftPolicies: a member unpaused by hand is put back (enforce), left alone and warned
// about until a reconcile (report), or accepted until the next switch (adopt).
func TestDriftPolicies(t *testing.T) {
	for _, pol := range []presence.Policy{presence.PolicyEnforce, presence.PolicyReport, presence.PolicyAdopt} {
		t.Run(string(pol), func(t *testing.T) {
			ctx := context.Background()
			u := presence.Alice()
			reg := prometheus.NewRegistry()
			e, pbx, states := newTestEngineWith(t, presence.CatalogConfig{Users: []presence.User{u}, Profiles: []presence.Profile{presence.Lunch()}}, func(o *presencetest.RigOptions) {
				o.Engine.Registerer, o.Engine.Policies = reg, presence.Policies{presence.DriftQueuePause: pol}
			})
			outOfSync := func() int64 {
				n, _, err := states.RecordCounts(ctx)
				if err != nil {
					t.Fatal(err)
				}
				return n
			}
			iface := presence.DefaultNaming().Interface(&u)
			for _, p := range []string{presence.ProfileAvailable, "lunch"} {
				if _, err := e.Switch(ctx, presence.SwitchRequest{User: "alice", Profile: p, Source: presence.SourceAPI}); err != nil {
					t.Fatal(err)
				}
			}
			// The full check an engine starts with is over (a loaded machine may run it late,
			// after the hand change, and have it deal with the drift before Check).
			if _, err := e.CheckAll(ctx); err != nil {
				t.Fatal(err)
			}
			unpauseByHand(pbx, "support", iface)

			res, err := e.Check(ctx, "alice")
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Join(resultsOf(res), "; ")
			st, err := e.Status(ctx, "alice")
			if err != nil {
				t.Fatal(err)
			}
			m := member(pbx, "support", iface)
			found := testutil.ToFloat64(e.Metrics().DriftFound.WithLabelValues("queue_pause"))
			switch pol {
			case presence.PolicyEnforce:
				if !m.Paused || !res.InSync || len(st.Warnings) != 0 {
					t.Fatalf("enforce: paused %v, in sync %v (%s), warnings %v", m.Paused, res.InSync, got, st.Warnings)
				}
				if r := testutil.ToFloat64(e.Metrics().DriftRepaired.WithLabelValues("queue_pause")); r != 1 || found != 1 {
					t.Fatalf("enforce: found %v repaired %v, want 1 and 1", found, r)
				}
			case presence.PolicyReport:
				if m.Paused || res.InSync || !strings.HasPrefix(got, "reported queue_pause support") {
					t.Fatalf("report: paused %v, in sync %v, outcomes %s", m.Paused, res.InSync, got)
				}
				if len(st.Warnings) != 1 || st.Warnings[0].Code != presence.WarningStatusMismatch {
					t.Fatalf("report: warnings %+v", st.Warnings)
				}
				want := "Your device status does not match your profile: queue support: not paused, the profile says paused (Lunch)"
				if !strings.HasPrefix(st.Warnings[0].Message, want) {
					t.Fatalf("report: warning %q, want it to start with %q", st.Warnings[0].Message, want)
				}
				if g := outOfSync(); g != 1 {
					t.Fatalf("report: users out of sync %v, want 1", g)
				}
				// A second check reports nothing new: the metric counts the difference once.
				if _, err := e.Check(ctx, "alice"); err != nil {
					t.Fatal(err)
				}
				if r := testutil.ToFloat64(e.Metrics().DriftReported.WithLabelValues("queue_pause")); r != 1 {
					t.Fatalf("report: reported %v after two checks, want 1", r)
				}
				// The one-call fix.
				res, err := e.Enforce(ctx, "alice", "alice")
				if err != nil || !res.InSync || !member(pbx, "support", iface).Paused {
					t.Fatalf("reconcile: %v in sync %v paused %v", err, res.InSync, member(pbx, "support", iface).Paused)
				}
				if st, _ := e.Status(ctx, "alice"); len(st.Warnings) != 0 || outOfSync() != 0 {
					t.Fatalf("after reconcile: warnings %v, out of sync %v", st.Warnings, outOfSync())
				}
			case presence.PolicyAdopt:
				// Another pass may find the hand change and adopt it before Check looks (under
				// make test's load one did, once): whichever pass looks first adopts, and Check
				// then has nothing left to do. The adoption itself is proven below, by the
				// state and the metric.
				if m.Paused || !res.InSync || (got != "" && !strings.HasPrefix(got, "adopted queue_pause support")) {
					t.Fatalf("adopt: paused %v, in sync %v, outcomes %s", m.Paused, res.InSync, got)
				}
				if len(st.Drift) != 0 || st.Desired.Queues["support"].Paused || st.State.Adopted == nil {
					t.Fatalf("adopt: drift %v, desired %+v, adopted %+v", st.Drift, st.Desired.Queues["support"], st.State.Adopted)
				}
				if a := testutil.ToFloat64(e.Metrics().DriftAdopted.WithLabelValues("queue_pause")); a != 1 {
					t.Fatalf("adopt: adopted %v, want 1", a)
				}
				// The next switch forgets what was adopted.
				if _, err := e.Switch(ctx, presence.SwitchRequest{User: "alice", Profile: "lunch", Source: presence.SourceAPI}); err != nil {
					t.Fatal(err)
				}
				st, _ := e.Status(ctx, "alice")
				if st.State.Adopted != nil || !member(pbx, "support", iface).Paused {
					t.Fatalf("after a switch: adopted %+v, paused %v", st.State.Adopted, member(pbx, "support", iface).Paused)
				}
			}
		})
	}
}

// TestQueueChangesWaitForTheCallToEnd: a repair does not touch the queue state of a user on a
// call (the change is pending and visible) but repairs the rest; the call's end makes it.
// A schedule waits too; the user's own switch does not.
func TestQueueChangesWaitForTheCallToEnd(t *testing.T) {
	ctx := context.Background()
	u := presence.Alice()
	dnd := presence.Profile{ID: "dnd2", Name: "Quiet", OnEnter: []presence.Action{{Kind: presence.ActionDND}, {Kind: presence.ActionQueuePause, Queues: presence.QueueSelector{"all"}, Reason: "Quiet"}}}
	devs := &fakeDevices{}
	e, pbx, _ := newTestEngineWith(t, presence.CatalogConfig{Users: []presence.User{u}, Profiles: []presence.Profile{presence.Lunch(), dnd}}, func(o *presencetest.RigOptions) {
		o.Engine.Devices = devs
	})
	iface := presence.DefaultNaming().Interface(&u)
	for _, p := range []string{presence.ProfileAvailable, "dnd2"} {
		if _, err := e.Switch(ctx, presence.SwitchRequest{User: "alice", Profile: p, Source: presence.SourceAPI}); err != nil {
			t.Fatal(err)
		}
	}
	devs.set("PJSIP/1001", "INUSE")
	unpauseByHand(pbx, "support", iface)
	pbx.Edit(func(state *presence.Target) { delete(state.AstDB, "DND/1001") })

	res, err := e.Check(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	// DND is put back by this pass, or by the one the phone's new state asked for just before.
	got := strings.Join(resultsOf(res), "; ")
	var dndBack *string
	pbx.Edit(func(state *presence.Target) { dndBack = state.AstDB["DND/1001"] })
	if !strings.Contains(got, "deferred queue_pause support") || dndBack == nil || *dndBack != "YES" {
		t.Fatalf("outcomes %s, DND/1001 %v: want the pause deferred and DND put back", got, dndBack)
	}
	if member(pbx, "support", iface).Paused {
		t.Fatal("a user on a call was paused")
	}
	st, err := e.Status(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if st.OnCall != "PJSIP/1001" || len(st.Pending) != 1 || st.Pending[0].Queue != "support" {
		t.Fatalf("status: on call %q, pending %v", st.OnCall, st.Pending)
	}
	// A look during the call (a phone's state changed: the device watcher touches the user)
	// leaves the pause waiting; the call's end makes it.
	if res, err := e.Check(ctx, "alice"); err != nil || member(pbx, "support", iface).Paused {
		t.Fatalf("a look during the call: %v, %s", err, strings.Join(resultsOf(res), "; "))
	}
	devs.set("PJSIP/1001", "NOT_INUSE")
	e.CheckSoon("alice")
	waitFor(t, "the pause made after the call", func() bool { return member(pbx, "support", iface).Paused })
	waitFor(t, "nothing pending", func() bool {
		st, err := e.Status(ctx, "alice")
		return err == nil && len(st.Pending) == 0
	})

	// A schedule waits for the call; the user's own switch does not.
	devs.set("PJSIP/1001", "BUSY")
	res, err = e.Switch(ctx, presence.SwitchRequest{User: "alice", Profile: presence.ProfileAvailable, Source: presence.SourceSchedule})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(resultsOf(res), "; "); !strings.Contains(got, "deferred queue_pause") || !member(pbx, "support", iface).Paused {
		t.Fatalf("scheduled switch during a call: %s", got)
	}
	if _, err = e.Switch(ctx, presence.SwitchRequest{User: "alice", Profile: "lunch", Source: presence.SourceAPI}); err != nil {
		t.Fatal(err)
	}
	if m := member(pbx, "support", iface); !m.Paused || m.Reason != "Lunch" {
		t.Fatalf("the user's own switch during a call: member %+v, want paused (Lunch)", m)
	}
}

// TestCheckAllReadsThePBXOnce: a full reconcile of many users costs one bulk read, which the
// repairs of those that drifted use too (their state did not change meanwhile).
func TestCheckAllReadsThePBXOnce(t *testing.T) {
	ctx := context.Background()
	us := users(300)
	var rt atomic.Uint64
	e, pbx, _ := newTestEngineWith(t, presence.CatalogConfig{Users: us}, func(o *presencetest.RigOptions) { o.Engine.RoundTrips = rt.Load })
	for _, u := range us {
		if _, err := e.Switch(ctx, presence.SwitchRequest{User: u.ID, Profile: presence.ProfileAvailable, Source: presence.SourceAPI}); err != nil {
			t.Fatal(err)
		}
	}
	observes := pbx.Observes()
	rt.Store(100)
	sum, err := e.CheckAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := pbx.Observes() - observes; n != 1 || sum.Users != 300 || sum.Drifted != 0 || sum.Repaired != 0 {
		t.Fatalf("in sync: %d reads, summary %+v; want 1 read and nothing to do", n, sum)
	}
	for _, u := range us[:3] {
		pbx.Edit(func(state *presence.Target) { delete(state.Queues, "sales|"+presence.DefaultNaming().Interface(&u)) })
	}
	observes = pbx.Observes()
	sum, err = e.CheckAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := pbx.Observes() - observes; n != 1 || sum.Drifted != 3 || sum.Repaired != 3 {
		t.Fatalf("3 drifted: %d reads, summary %+v; want 1 read and 3 repaired", n, sum)
	}
	var members int
	pbx.Edit(func(state *presence.Target) { members = len(state.Queues) })
	if members != 600 {
		t.Fatalf("%d queue members after the repair, want 600", members)
	}
}

func TestStatusWarnsWhenTheDeviceInUseWillNotRing(t *testing.T) {
	ctx := context.Background()
	u := presence.Alice()
	deskOnly := presence.Profile{ID: "desk", Name: "Desk", OnEnter: []presence.Action{{Kind: presence.ActionFollowMe, Families: []presence.Family{presence.FamilyDesk}}}}
	devs := &fakeDevices{}
	e, _, _ := newTestEngineWith(t, presence.CatalogConfig{Users: []presence.User{u}, Profiles: []presence.Profile{deskOnly}}, func(o *presencetest.RigOptions) { o.Engine.Devices = devs })
	if _, err := e.Switch(ctx, presence.SwitchRequest{User: "alice", Profile: "desk", Source: presence.SourceAPI}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		online  map[string]string
		device  string
		warning string
	}{
		{"nothing online", nil, "", ""},
		{"desk online", map[string]string{"PJSIP/1001": "NOT_INUSE"}, "", ""},
		{"softphone online", map[string]string{"PJSIP/1001-soft": "NOT_INUSE", "PJSIP/1001-mobile": "UNAVAILABLE"}, "",
			"The device you use will not ring in this profile: PJSIP/1001-soft."},
		{"client names its device", nil, "PJSIP/1001-mobile", "The device you use will not ring in this profile: PJSIP/1001-mobile."},
		{"client on the desk", nil, "pjsip/1001", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			devs.mu.Lock()
			devs.m = tc.online
			devs.mu.Unlock()
			// A phone's change makes a pass (the device watcher), which records the phones:
			// every instance's status says the same.
			if _, err := e.Check(ctx, "alice"); err != nil {
				t.Fatal(err)
			}
			st, err := e.StatusWith(ctx, "alice", presence.StatusOptions{Device: tc.device})
			if err != nil {
				t.Fatal(err)
			}
			var got string
			for _, w := range st.Warnings {
				if w.Code == presence.WarningWillNotRing {
					got = w.Message
				}
			}
			if tc.warning == "" && got != "" || !strings.HasPrefix(got, tc.warning) {
				t.Fatalf("warning %q, want %q", got, tc.warning)
			}
		})
	}
}

func TestPoliciesValidate(t *testing.T) {
	for _, tc := range []struct {
		p    presence.Policies
		want string
	}{
		{nil, ""},
		{presence.Policies{presence.DriftQueuePause: presence.PolicyReport, presence.DriftAstDB: presence.PolicyAdopt, presence.DriftLamp: presence.PolicyEnforce}, ""},
		{presence.Policies{"queue": presence.PolicyReport}, `unknown kind of state "queue"`},
		{presence.Policies{presence.DriftLamp: "ignore"}, `lamp: "ignore" is not enforce, report or adopt`},
		{presence.Policies{presence.DriftLamp: presence.PolicySwitch}, `lamp: "switch" is not enforce, report or adopt (switch is only for dnd)`},
		{presence.Policies{presence.DriftLamp: ""}, `lamp: "" is not enforce, report or adopt`},
		{presence.Policies{presence.DriftDND: ""}, ""},
		{presence.Policies{presence.DriftDND: "toggle"}, `dnd: "toggle" is not enforce, report, adopt or switch`},
	} {
		err := tc.p.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%v: %v, want %q", tc.p, err, tc.want)
		}
	}
}

// waitFor polls cond until it holds, for at most 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestStatusWarnsFromWhatTheDialplanRings: the will-not-ring warning follows what a call
// rings: the default ring list (the desk phones) when no profile touched it, the location on
// top, nothing in DND or with an unconditional forward (no warning then: on purpose).
func TestStatusWarnsFromWhatTheDialplanRings(t *testing.T) {
	ctx := context.Background()
	profiles := []presence.Profile{
		{ID: "plain", Name: "Plain"},
		{ID: "hotdesk", Name: "Hot desk", OnEnter: []presence.Action{{Kind: presence.ActionLocation, Device: "PJSIP/hotdesk-3"}}},
		{ID: "away", Name: "Away", OnEnter: []presence.Action{{Kind: presence.ActionForward, Type: presence.ForwardUnconditional, To: "1002"}}},
	}
	e, _, _ := newTestEngine(t, []presence.User{presence.Alice()}, profiles)
	for _, tc := range []struct {
		profile, device string
		warns           bool
	}{
		{"plain", "PJSIP/1001-mobile", true},
		{"plain", "PJSIP/1001-soft", false},
		{"plain", "PJSIP/1001", false},
		{"hotdesk", "PJSIP/hotdesk-3", false},
		{"hotdesk", "PJSIP/1001-mobile", true},
		{presence.ProfileDND, "PJSIP/1001-mobile", false},
		{"away", "PJSIP/1001", false},
	} {
		if _, err := e.Switch(ctx, presence.SwitchRequest{User: "alice", Profile: tc.profile, Source: presence.SourceAPI}); err != nil {
			t.Fatal(err)
		}
		st, err := e.StatusWith(ctx, "alice", presence.StatusOptions{Device: tc.device})
		if err != nil {
			t.Fatal(err)
		}
		warns := slices.ContainsFunc(st.Warnings, func(w presence.Warning) bool { return w.Code == presence.WarningWillNotRing })
		if warns != tc.warns {
			t.Errorf("%s, at %s: will-not-ring warning %v, want %v (%+v)", tc.profile, tc.device, warns, tc.warns, st.Warnings)
		}
	}
}
