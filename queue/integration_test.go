package queue

import (
	"context"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/presenced/presenced/ami"
	"github.com/presenced/presenced/presence"
)

// TestObserve: the members of the users' interfaces as Asterisk holds them, read with one
// QueueStatus of every queue, or, where the PBX is big and the users few, with one
// QueueStatus per interface.
func TestObserve(t *testing.T) {
	paused, plain, absent := iface(ext(t, 1)), iface(ext(t, 2)), iface(ext(t, 3))
	for _, tc := range []struct {
		name       string
		oneByOne   bool
		pausedName string // how the desired state writes the paused user's interface
		reads      int
	}{
		// Asterisk matches interfaces case-insensitively; so does the read of every queue.
		{"every queue", false, strings.ToUpper(paused), 1},
		// QueueStatus with Member matches exactly: presenced's own interfaces as it adds them.
		{"one by one", true, paused, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			ctx := testCtx(t)
			f.cleanup(t, paused, plain, absent)
			f.add(t, ami.QueueMemberSpec{Queue: "support", Interface: paused, MemberName: "Alice Test",
				StateInterface: "hint:" + ext(t, 1) + "@hints", Penalty: 3, Paused: true, Reason: "Lunch: back at 2"})
			f.add(t, ami.QueueMemberSpec{Queue: "sales", Interface: plain})
			if tc.oneByOne {
				// As if the last read of every queue had listed 100,000 members.
				f.c.size.Store(&pbxSize{queues: 12, members: 100000, interfaces: 20000})
			}
			want := map[presence.UserID]*presence.Target{
				"paused": {Interface: tc.pausedName, Queues: map[string]*presence.QueueMember{"support": {}, "sales": nil}},
				"plain":  {Interface: plain, Queues: map[string]*presence.QueueMember{"sales": {}, "support": {}}},
				"absent": {Interface: absent, Queues: map[string]*presence.QueueMember{"support": {}, "sales": nil}},
				"static": {Interface: "PJSIP/1002", Queues: map[string]*presence.QueueMember{"sales": nil, "support": nil}},
			}
			have := map[presence.UserID]*presence.Target{}
			for id := range want {
				have[id] = presence.NewTarget()
			}
			if err := f.c.Observe(ctx, want, have); err != nil {
				t.Fatal(err)
			}
			for _, m := range []struct {
				user  presence.UserID
				queue string
				want  *presence.QueueMember
			}{
				{"paused", "support", &presence.QueueMember{Interface: paused, MemberName: "Alice Test",
					StateInterface: "hint:" + ext(t, 1) + "@hints", Penalty: 3, Paused: true, Reason: "Lunch: back at 2"}},
				{"paused", "sales", nil},
				{"plain", "sales", &presence.QueueMember{Interface: plain, MemberName: plain, StateInterface: plain}},
				{"plain", "support", nil},
				{"absent", "support", nil},
				{"absent", "sales", nil},
				{"static", "sales", &presence.QueueMember{Interface: "PJSIP/1002", MemberName: "Bob", StateInterface: "PJSIP/1002", Membership: presence.MembershipStatic}},
				{"static", "support", nil},
			} {
				got, ok := have[m.user].Queues[m.queue]
				switch {
				case !ok:
					t.Errorf("%s/%s: no entry", m.user, m.queue)
				case m.want == nil && got != nil:
					t.Errorf("%s/%s: got %+v, want absent", m.user, m.queue, *got)
				case m.want != nil && (got == nil || *got != *m.want):
					t.Errorf("%s/%s: got %+v, want %+v", m.user, m.queue, got, *m.want)
				}
			}
			if n := f.count.count("QueueStatus"); n != tc.reads {
				t.Errorf("%d QueueStatus actions for %d users, want %d", n, len(want), tc.reads)
			}
			if n := f.actions("QueueStatus", resultSuccess); n != tc.reads {
				t.Errorf("presenced_queue_actions_total{QueueStatus,success} = %d, want %d", n, tc.reads)
			}
			// What Apply knows of the interfaces' queues afterwards: the same either way.
			if in, ok := f.c.mem.queuesOf(paused, time.Now(), time.Minute, 0, f.c.reader.Status().Since); !ok || len(in) != 1 {
				t.Errorf("queues of %s after the read: %v (known %v), want support", paused, in, ok)
			}
		})
	}
}

func TestApplyOps(t *testing.T) {
	f := newFixture(t, nil)
	for i, tc := range []struct {
		name    string
		setup   *ami.QueueMemberSpec // added behind the concern's back first
		kind    presence.OpKind
		queue   string
		member  presence.QueueMember // Interface "" = the test's own
		result  presence.Result
		errText []string              // substrings of the error
		check   *presence.QueueMember // the member on the PBX afterwards; nil = absent
		actions map[string]int        // actions sent, by name
	}{
		{name: "add", kind: presence.OpQueueAdd, queue: "support",
			member: presence.QueueMember{MemberName: "Ann", StateInterface: "hint:1001@hints", Penalty: 2},
			result: presence.ResultApplied, check: &presence.QueueMember{MemberName: "Ann", StateInterface: "hint:1001@hints", Penalty: 2},
			actions: map[string]int{"QueueAdd": 1}},
		{name: "add paused with reason, one action", kind: presence.OpQueueAdd, queue: "sales",
			member: presence.QueueMember{MemberName: "Ann", Penalty: 1, Paused: true, Reason: "Lunch (back at 2)"},
			result: presence.ResultApplied, check: &presence.QueueMember{MemberName: "Ann", Penalty: 1, Paused: true, Reason: "Lunch (back at 2)"},
			actions: map[string]int{"QueueAdd": 1, "QueuePause": 0}},
		{name: "add twice", setup: &ami.QueueMemberSpec{Queue: "support", MemberName: "Ann", Penalty: 1, Paused: true, Reason: "Lunch"},
			kind: presence.OpQueueAdd, queue: "support", member: presence.QueueMember{MemberName: "Ann", Penalty: 1, Paused: true, Reason: "Lunch"},
			result: presence.ResultUnchanged, check: &presence.QueueMember{MemberName: "Ann", Penalty: 1, Paused: true, Reason: "Lunch"},
			actions: map[string]int{"QueueAdd": 1, "QueueStatus": 1, "QueuePause": 0, "QueuePenalty": 0}},
		{name: "add, already there unpaused", setup: &ami.QueueMemberSpec{Queue: "support", MemberName: "Other", Penalty: 4},
			kind: presence.OpQueueAdd, queue: "support", member: presence.QueueMember{MemberName: "Ann", Penalty: 1, Paused: true, Reason: "Meeting"},
			result: presence.ResultApplied, check: &presence.QueueMember{MemberName: "Other", Penalty: 1, Paused: true, Reason: "Meeting"},
			actions: map[string]int{"QueueAdd": 1, "QueueStatus": 1, "QueuePause": 1, "QueuePenalty": 1}},
		{name: "remove", setup: &ami.QueueMemberSpec{Queue: "support"}, kind: presence.OpQueueRemove, queue: "support",
			result: presence.ResultApplied, actions: map[string]int{"QueueRemove": 1}},
		{name: "remove, not there", kind: presence.OpQueueRemove, queue: "support",
			result: presence.ResultUnchanged, actions: map[string]int{"QueueRemove": 1}},
		{name: "pause with reason", setup: &ami.QueueMemberSpec{Queue: "support", MemberName: "Ann"},
			kind: presence.OpQueuePause, queue: "support", member: presence.QueueMember{Paused: true, Reason: "Meeting"},
			result: presence.ResultApplied, check: &presence.QueueMember{MemberName: "Ann", Paused: true, Reason: "Meeting"},
			actions: map[string]int{"QueuePause": 1}},
		{name: "unpause", setup: &ami.QueueMemberSpec{Queue: "support", MemberName: "Ann", Paused: true, Reason: "Meeting"},
			kind: presence.OpQueuePause, queue: "support", member: presence.QueueMember{},
			result: presence.ResultApplied, check: &presence.QueueMember{MemberName: "Ann"},
			actions: map[string]int{"QueuePause": 1}},
		{name: "penalty", setup: &ami.QueueMemberSpec{Queue: "sales", MemberName: "Ann", Penalty: 1},
			kind: presence.OpQueuePenalty, queue: "sales", member: presence.QueueMember{Penalty: 5},
			result: presence.ResultApplied, check: &presence.QueueMember{MemberName: "Ann", Penalty: 5},
			actions: map[string]int{"QueuePenalty": 1}},
		{name: "static member cannot be removed", kind: presence.OpQueueRemove, queue: "sales",
			member: presence.QueueMember{Interface: "PJSIP/1002", MemberName: "Bob", Membership: presence.MembershipStatic},
			result: presence.ResultFailed, check: &presence.QueueMember{MemberName: "Bob"},
			errText: []string{"queue remove PJSIP/1002 from sales", "static member", "Member not dynamic"}},
		{name: "add to unknown queue", kind: presence.OpQueueAdd, queue: "nosuchqueue",
			result: presence.ResultFailed, errText: []string{"to nosuchqueue", "no such queue", "Unable to add interface to queue: No such queue"}},
		{name: "pause in unknown queue", kind: presence.OpQueuePause, queue: "nosuchqueue", member: presence.QueueMember{Paused: true},
			result: presence.ResultFailed, errText: []string{"queue pause", "in nosuchqueue", "Interface not found"}},
		{name: "pause of a non-member", kind: presence.OpQueuePause, queue: "support", member: presence.QueueMember{Paused: true},
			result: presence.ResultFailed, errText: []string{"queue pause", "in support: not a member, or no such queue", "Interface not found"}},
		{name: "penalty of a non-member", kind: presence.OpQueuePenalty, queue: "support", member: presence.QueueMember{Penalty: 1},
			result: presence.ResultFailed, errText: []string{"queue penalty 1 for", "in support", "Invalid interface, queuename or penalty"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			me := iface(ext(t, i))
			f.cleanup(t, me)
			if tc.setup != nil {
				spec := *tc.setup
				spec.Interface = me
				f.add(t, spec)
			}
			m := tc.member
			if m.Interface == "" {
				m.Interface = me
			}
			before := map[string]int{}
			for a := range tc.actions {
				before[a] = f.count.count(a)
			}
			op := presence.Op{Kind: tc.kind, Queue: tc.queue, Member: &m}
			out := f.c.Apply(ctx, &presence.User{ID: "u"}, []presence.Op{op})
			if len(out) != 1 {
				t.Fatalf("outcomes %+v", out)
			}
			if out[0].Result != tc.result || out[0].Op.Kind != op.Kind || out[0].Op.Queue != op.Queue {
				t.Errorf("outcome %+v, want %s", out[0], tc.result)
			}
			for _, s := range tc.errText {
				if !strings.Contains(out[0].Error, s) {
					t.Errorf("error %q lacks %q", out[0].Error, s)
				}
			}
			if tc.result == presence.ResultFailed && !strings.Contains(out[0].Error, m.Interface) {
				t.Errorf("error %q does not name the interface", out[0].Error)
			}
			for a, n := range tc.actions {
				if got := f.count.count(a) - before[a]; got != n {
					t.Errorf("%d %s actions sent, want %d", got, a, n)
				}
			}
			if tc.queue == "nosuchqueue" {
				return
			}
			got, ok := f.member(t, tc.queue, m.Interface)
			switch {
			case tc.check == nil && ok:
				t.Errorf("member %s still in %s: %+v", m.Interface, tc.queue, got)
			case tc.check != nil && !ok:
				t.Errorf("member %s not in %s", m.Interface, tc.queue)
			case tc.check != nil:
				w := tc.check
				if got.Name != w.MemberName || got.Penalty != w.Penalty || got.Paused != w.Paused || (w.Paused && got.PausedReason != w.Reason) ||
					(w.StateInterface != "" && got.StateInterface != w.StateInterface) {
					t.Errorf("member on the PBX %+v, want %+v", got, *w)
				}
			}
		})
	}
}

// pauseOps are the ops that pause (or unpause) iface in queues.
func pauseOps(iface string, paused bool, reason string, queues ...string) []presence.Op {
	var ops []presence.Op
	for _, q := range queues {
		ops = append(ops, presence.Op{Kind: presence.OpQueuePause, Queue: q,
			Member: &presence.QueueMember{Interface: iface, Paused: paused, Reason: reason}})
	}
	return ops
}

// observeOne observes one user wanting iface in queues.
func observeOne(t *testing.T, f *fixture, iface string, queues ...string) *presence.Target {
	t.Helper()
	w := &presence.Target{Interface: iface, Queues: map[string]*presence.QueueMember{}}
	for _, q := range queues {
		w.Queues[q] = &presence.QueueMember{Interface: iface}
	}
	have := map[presence.UserID]*presence.Target{"u": presence.NewTarget()}
	if err := f.c.Observe(testCtx(t), map[presence.UserID]*presence.Target{"u": w}, have); err != nil {
		t.Fatal(err)
	}
	return have["u"]
}

func TestCoalescedPauseAll(t *testing.T) {
	for i, tc := range []struct {
		name      string
		window    int // Options.CoalesceWindow in ns; 0 = default
		behind    func(t *testing.T, f *fixture, me string)
		pauses    int // QueuePause actions sent
		coalesced int // presenced_queue_pause_coalesced_ops_total
		result    presence.Result
		paused    bool // on the PBX afterwards, in both queues
	}{
		{name: "one action for every queue", pauses: 1, coalesced: 2, result: presence.ResultApplied, paused: true},
		{name: "stale observation: one action per queue", window: 1, pauses: 2, result: presence.ResultApplied, paused: true},
		{name: "coalescing off", window: -1, pauses: 2, result: presence.ResultApplied, paused: true},
		{name: "member gone from every queue: refused, then one action per queue",
			behind: func(t *testing.T, f *fixture, me string) {
				for _, q := range []string{"support", "sales"} {
					if err := f.pbx.QueueRemove(testCtx(t), me, q); err != nil {
						t.Fatal(err)
					}
				}
			}, pauses: 3, result: presence.ResultFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, func(o *Options) { o.CoalesceWindow = time.Duration(tc.window) })
			me := iface(ext(t, i))
			f.cleanup(t, me)
			f.add(t, ami.QueueMemberSpec{Queue: "support", Interface: me})
			f.add(t, ami.QueueMemberSpec{Queue: "sales", Interface: me})
			observeOne(t, f, me, "support", "sales")
			if tc.behind != nil {
				tc.behind(t, f, me)
			}
			out := f.c.Apply(testCtx(t), &presence.User{ID: "u"}, pauseOps(me, true, "Lunch", "sales", "support"))
			for _, o := range out {
				if o.Result != tc.result {
					t.Errorf("outcome %+v, want %s", o, tc.result)
				}
				if tc.result == presence.ResultFailed && !strings.Contains(o.Error, "in "+o.Op.Queue+": not a member") {
					t.Errorf("error %q does not name its queue", o.Error)
				}
			}
			if n := f.count.count("QueuePause"); n != tc.pauses {
				t.Errorf("%d QueuePause actions sent, want %d", n, tc.pauses)
			}
			if n := int(testutil.ToFloat64(f.c.met.coalesced)); n != tc.coalesced {
				t.Errorf("coalesced ops = %d, want %d", n, tc.coalesced)
			}
			if !tc.paused {
				return
			}
			if n := f.actions("QueuePause", resultSuccess); n != tc.pauses {
				t.Errorf("presenced_queue_actions_total{QueuePause,success} = %d, want %d", n, tc.pauses)
			}
			for _, q := range []string{"support", "sales"} {
				if m, ok := f.member(t, q, me); !ok || !m.Paused || m.PausedReason != "Lunch" {
					t.Errorf("%s on the PBX: %+v (member: %v)", q, m, ok)
				}
			}

			// And back: unpause everywhere, again as one action when it may.
			out = f.c.Apply(testCtx(t), &presence.User{ID: "u"}, pauseOps(me, false, "", "sales", "support"))
			for _, o := range out {
				if o.Result != presence.ResultApplied {
					t.Errorf("unpause outcome %+v", o)
				}
			}
			if n := f.count.count("QueuePause"); n != 2*tc.pauses {
				t.Errorf("%d QueuePause actions after unpausing, want %d", n, 2*tc.pauses)
			}
			for _, q := range []string{"support", "sales"} {
				if m, ok := f.member(t, q, me); !ok || m.Paused {
					t.Errorf("%s on the PBX after unpausing: %+v (member: %v)", q, m, ok)
				}
			}
		})
	}
}

// TestCoalescingFollowsOwnChanges: the membership Apply relies on follows the adds and
// removes the concern makes itself after the observation.
func TestCoalescingFollowsOwnChanges(t *testing.T) {
	f := newFixture(t, nil)
	me := iface(ext(t, 0))
	f.cleanup(t, me)
	f.add(t, ami.QueueMemberSpec{Queue: "support", Interface: me})
	observeOne(t, f, me, "support", "sales")
	// The concern adds the member to sales: it knows the interface is now in both.
	out := f.c.Apply(testCtx(t), &presence.User{ID: "u"}, []presence.Op{{Kind: presence.OpQueueAdd, Queue: "sales",
		Member: &presence.QueueMember{Interface: me}}})
	if out[0].Result != presence.ResultApplied {
		t.Fatalf("add: %+v", out[0])
	}
	out = f.c.Apply(testCtx(t), &presence.User{ID: "u"}, pauseOps(me, true, "Away", "sales", "support"))
	if n := f.count.count("QueuePause"); n != 1 || out[0].Result != presence.ResultApplied || out[1].Result != presence.ResultApplied {
		t.Errorf("%d QueuePause actions, outcomes %+v; want one for both queues", n, out)
	}
	// The concern removes it from sales: a pause of support and sales no longer covers
	// exactly its queues, so it goes per queue (and sales fails, truthfully).
	out = f.c.Apply(testCtx(t), &presence.User{ID: "u"}, []presence.Op{{Kind: presence.OpQueueRemove, Queue: "sales",
		Member: &presence.QueueMember{Interface: me}}})
	if out[0].Result != presence.ResultApplied {
		t.Fatalf("remove: %+v", out[0])
	}
	out = f.c.Apply(testCtx(t), &presence.User{ID: "u"}, pauseOps(me, false, "", "sales", "support"))
	if n := f.count.count("QueuePause"); n != 3 {
		t.Errorf("%d QueuePause actions in all, want 3", n)
	}
	if out[0].Result != presence.ResultFailed || out[1].Result != presence.ResultApplied {
		t.Errorf("outcomes %+v", out)
	}
	for _, q := range []string{"support"} {
		if m, ok := f.member(t, q, me); !ok || m.Paused {
			t.Errorf("%s on the PBX: %+v (member %v)", q, m, ok)
		}
	}
}

// TestRoundTrip runs presenced's loop for one user: Compile → Observe → Plan → Apply →
// Observe → Plan, which must then be empty, through three profiles.
func TestRoundTrip(t *testing.T) {
	f := newFixture(t, nil)
	ctx := testCtx(t)
	u := &presence.User{ID: "ann", Name: "Ann Example", Extension: ext(t, 1),
		Queues: []presence.QueueMembership{{Name: "support", Penalty: 1}, {Name: "sales", Penalty: 2}}}
	naming := presence.DefaultNaming()
	f.cleanup(t, naming.Interface(u))
	all := presence.QueueSelector{"all"}
	lunch := &presence.Profile{ID: "lunch", Name: "Lunch", OnEnter: []presence.Action{
		{Kind: presence.ActionQueueLogin, Queues: all},
		{Kind: presence.ActionQueuePause, Queues: all, Reason: "Lunch break"},
	}}
	available := &presence.Profile{ID: "available", Name: "Available", OnEnter: []presence.Action{
		{Kind: presence.ActionQueueUnpause, Queues: all},
	}}
	gone := &presence.Profile{ID: "gone", Name: "Gone", OnEnter: []presence.Action{
		{Kind: presence.ActionQueueLogout, Queues: all},
	}}
	profiles := []*presence.Profile{lunch, available, gone}

	var steps []presence.Step // the lineage, as the engine records the switches
	var from *presence.Profile
	for _, step := range []struct {
		to      *presence.Profile
		kinds   []presence.OpKind
		actions map[string]int
		check   func(q string, m ami.QueueMember, ok bool) bool
	}{
		{lunch, []presence.OpKind{presence.OpQueueAdd, presence.OpQueueAdd}, map[string]int{"QueueAdd": 2, "QueuePause": 0},
			func(q string, m ami.QueueMember, ok bool) bool {
				return ok && m.Paused && m.PausedReason == "Lunch break" && m.Name == "Ann Example" &&
					m.StateInterface == "hint:"+u.Extension+"@hints" && m.Penalty == map[string]int{"support": 1, "sales": 2}[q]
			}},
		{available, []presence.OpKind{presence.OpQueuePause, presence.OpQueuePause}, map[string]int{"QueuePause": 1},
			func(q string, m ami.QueueMember, ok bool) bool { return ok && !m.Paused }},
		{gone, []presence.OpKind{presence.OpQueueRemove, presence.OpQueueRemove}, map[string]int{"QueueRemove": 2},
			func(q string, m ami.QueueMember, ok bool) bool { return !ok }},
	} {
		if from != nil {
			steps = append(steps, presence.Step{Profile: from.ID, Exit: true})
		}
		steps = append(steps, presence.Step{Profile: step.to.ID})
		in := presence.FoldSteps(u, steps, profiles, nil)
		from = step.to
		full := presence.Compile(u, in, presence.Active{Profile: step.to}, profiles, naming)
		want := &presence.Target{Interface: full.Interface, Queues: full.Queues} // the queue concern's part
		wants := map[presence.UserID]*presence.Target{u.ID: want}

		have := map[presence.UserID]*presence.Target{u.ID: presence.NewTarget()}
		if err := f.c.Observe(ctx, wants, have); err != nil {
			t.Fatal(err)
		}
		ops := presence.Plan(&presence.Desired{Target: *want}, have[u.ID])
		var kinds []presence.OpKind
		for _, op := range ops {
			kinds = append(kinds, op.Kind)
		}
		if !slices.Equal(kinds, step.kinds) {
			t.Fatalf("%s: plan %v, want kinds %v", step.to.ID, ops, step.kinds)
		}
		before := map[string]int{}
		for a := range step.actions {
			before[a] = f.count.count(a)
		}
		for _, o := range f.c.Apply(ctx, u, ops) {
			if o.Result != presence.ResultApplied {
				t.Errorf("%s: outcome %+v", step.to.ID, o)
			}
		}
		for a, n := range step.actions {
			if got := f.count.count(a) - before[a]; got != n {
				t.Errorf("%s: %d %s actions, want %d", step.to.ID, got, a, n)
			}
		}
		for _, q := range []string{"support", "sales"} {
			m, ok := f.member(t, q, naming.Interface(u))
			if !step.check(q, m, ok) {
				t.Errorf("%s: %s on the PBX: %+v (member: %v)", step.to.ID, q, m, ok)
			}
		}

		have = map[presence.UserID]*presence.Target{u.ID: presence.NewTarget()}
		if err := f.c.Observe(ctx, wants, have); err != nil {
			t.Fatal(err)
		}
		if ops := presence.Plan(&presence.Desired{Target: *want}, have[u.ID]); len(ops) != 0 {
			t.Errorf("%s: plan after apply = %v, want empty", step.to.ID, ops)
		}
	}
}

// TestConcurrentApply applies 50 users' logins (paused) and then logouts in parallel over one
// AMI connection, observing meanwhile, with at most MaxInFlight actions in flight.
func TestConcurrentApply(t *testing.T) {
	const users, maxInFlight = 50, 4
	f := newFixture(t, func(o *Options) { o.MaxInFlight = maxInFlight })
	ctx := testCtx(t)
	ifaces := make([]string, users)
	want := map[presence.UserID]*presence.Target{}
	for i := range ifaces {
		ifaces[i] = iface(ext(t, i))
		w := &presence.Target{Interface: ifaces[i], Queues: map[string]*presence.QueueMember{}}
		for _, q := range []string{"support", "sales"} {
			w.Queues[q] = &presence.QueueMember{Interface: ifaces[i], MemberName: fmt.Sprintf("User %d", i),
				Penalty: i % 3, Paused: true, Reason: "Mass " + q}
		}
		want[presence.UserID(fmt.Sprint(i))] = w
	}
	f.cleanup(t, ifaces...)

	run := func(plan func(id presence.UserID, have *presence.Target) []presence.Op) {
		have := map[presence.UserID]*presence.Target{}
		for id := range want {
			have[id] = presence.NewTarget()
		}
		if err := f.c.Observe(ctx, want, have); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for _, id := range slices.Sorted(maps.Keys(want)) {
			ops := plan(id, have[id])
			wg.Go(func() {
				for _, o := range f.c.Apply(ctx, &presence.User{ID: id}, ops) {
					if o.Result != presence.ResultApplied {
						t.Errorf("user %s: %+v", id, o)
					}
				}
			})
		}
		wg.Go(func() { // an observation racing the applies
			if err := f.c.Observe(ctx, want, map[presence.UserID]*presence.Target{}); err != nil {
				t.Error(err)
			}
		})
		wg.Wait()
	}

	run(func(id presence.UserID, have *presence.Target) []presence.Op {
		return presence.Plan(&presence.Desired{Target: *want[id]}, have)
	})
	st, err := f.pbx.QueueStatus(ctx, "", "")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]ami.QueueMember{}
	for _, m := range st.Members {
		seen[m.Queue+" "+m.Location] = m
	}
	for i, me := range ifaces {
		for _, q := range []string{"support", "sales"} {
			m, ok := seen[q+" "+me]
			if !ok || !m.Paused || m.PausedReason != "Mass "+q || m.Penalty != i%3 || m.Name != fmt.Sprintf("User %d", i) {
				t.Errorf("%s in %s on the PBX: %+v (member %v)", me, q, m, ok)
			}
		}
	}
	if n := f.count.count("QueueAdd"); n != 2*users {
		t.Errorf("%d QueueAdd actions, want %d", n, 2*users)
	}

	for _, w := range want {
		for q := range w.Queues {
			w.Queues[q] = nil
		}
	}
	run(func(id presence.UserID, have *presence.Target) []presence.Op {
		return presence.Plan(&presence.Desired{Target: *want[id]}, have)
	})
	for _, me := range ifaces {
		for _, q := range []string{"support", "sales"} {
			if m, ok := f.member(t, q, me); ok {
				t.Errorf("%s still in %s: %+v", me, q, m)
			}
		}
	}
	// At most MaxInFlight actions at once, and more than one: pipelined, not serialised.
	if peak := f.count.maxInFlight(); peak > maxInFlight || peak < 2 {
		t.Errorf("%d actions in flight at most, want 2..%d", peak, maxInFlight)
	} else {
		t.Logf("at most %d actions in flight", peak)
	}
}

// TestReaderConnection: with Options.Reader the concern observes through the second client
// and changes the PBX through the first, and pausing in every queue is still one action.
func TestReaderConnection(t *testing.T) {
	reads := newCounter()
	var reader *ami.Client
	f := newFixture(t, func(o *Options) {
		reader = startClient(t, false, func(cfg *ami.Config) { cfg.Dial = reads.dial })
		o.Reader = reader
	})
	me := iface(ext(t, 0))
	f.cleanup(t, me)
	f.add(t, ami.QueueMemberSpec{Queue: "support", Interface: me})
	f.add(t, ami.QueueMemberSpec{Queue: "sales", Interface: me})
	observeOne(t, f, me, "support", "sales")
	if n := reads.count("QueueStatus"); n != 1 {
		t.Errorf("%d QueueStatus on the reading connection, want 1", n)
	}
	if n := f.count.count("QueueStatus"); n != 0 {
		t.Errorf("%d QueueStatus on the changing connection, want 0", n)
	}
	out := f.c.Apply(testCtx(t), &presence.User{ID: "u"}, pauseOps(me, true, "Lunch", "sales", "support"))
	for _, o := range out {
		if o.Result != presence.ResultApplied {
			t.Errorf("outcome %+v", o)
		}
	}
	if n := f.count.count("QueuePause"); n != 1 {
		t.Errorf("%d QueuePause on the changing connection, want 1 (all queues at once)", n)
	}
	if n := reads.count("QueuePause"); n != 0 {
		t.Errorf("%d QueuePause on the reading connection", n)
	}
	for _, q := range []string{"support", "sales"} {
		if m, ok := f.member(t, q, me); !ok || !m.Paused || m.PausedReason != "Lunch" {
			t.Errorf("%s on the PBX: %+v (member: %v)", q, m, ok)
		}
	}
}

// TestWriterSessions: with Options.Writers, changes are spread over the sessions, each
// interface's changes (spelled in any case) over one of them, and all of them land.
func TestWriterSessions(t *testing.T) {
	counts := []*counter{newCounter(), newCounter()}
	f := newFixture(t, func(o *Options) {
		for _, c := range counts {
			o.Writers = append(o.Writers, startClient(t, false, func(cfg *ami.Config) { cfg.Dial = c.dial }))
		}
	})
	all := append([]*counter{f.count}, counts...)
	var ifaces []string
	for i := range 12 {
		ifaces = append(ifaces, iface(ext(t, 20+i)))
	}
	f.cleanup(t, ifaces...)
	sessionOf := func(me string) int { // the one session that carried me's changes
		t.Helper()
		before := make([]int, len(all))
		for i, c := range all {
			before[i] = c.count("QueueAdd") + c.count("QueueRemove")
		}
		var ops []presence.Op
		for _, q := range []string{"support", "sales"} {
			ops = append(ops, presence.Op{Kind: presence.OpQueueAdd, Queue: q, Member: &presence.QueueMember{Interface: me, MemberName: "w", StateInterface: me}})
		}
		for _, o := range f.c.Apply(testCtx(t), &presence.User{ID: "u"}, ops) {
			if o.Result != presence.ResultApplied {
				t.Fatalf("%s: outcome %+v", me, o)
			}
		}
		var ops2 []presence.Op
		for _, q := range []string{"support", "sales"} {
			ops2 = append(ops2, presence.Op{Kind: presence.OpQueueRemove, Queue: q, Member: &presence.QueueMember{Interface: strings.ToUpper(me)}})
		}
		for _, o := range f.c.Apply(testCtx(t), &presence.User{ID: "u"}, ops2) {
			if o.Result != presence.ResultApplied {
				t.Fatalf("%s: remove outcome %+v", me, o)
			}
		}
		session := -1
		for i, c := range all {
			switch n := c.count("QueueAdd") + c.count("QueueRemove") - before[i]; {
			case n == 4 && session < 0:
				session = i
			case n != 0:
				t.Fatalf("%s: %d changes over session %d: an interface's changes went over more than one session", me, n, i)
			}
		}
		if session < 0 {
			t.Fatalf("%s: its changes went over no session", me)
		}
		return session
	}
	used := map[int]bool{}
	for _, me := range ifaces {
		used[sessionOf(me)] = true
		if _, ok := f.member(t, "support", me); ok {
			t.Errorf("%s still in support after its removal", me)
		}
	}
	if len(used) < 2 {
		t.Errorf("12 interfaces all went over session %v: the changes are not spread", used)
	}
}

// TestSurvey: a full check's survey reads every queue only once the last full check wanted
// enough interfaces for that, and then its Fill reads nothing and records what Observe would.
func TestSurvey(t *testing.T) {
	paused, plain := iface(ext(t, 1)), iface(ext(t, 2))
	f := newFixture(t, nil)
	ctx := testCtx(t)
	f.cleanup(t, paused, plain)
	f.add(t, ami.QueueMemberSpec{Queue: "support", Interface: paused, Paused: true, Reason: "Lunch"})
	f.add(t, ami.QueueMemberSpec{Queue: "sales", Interface: plain})
	want := map[presence.UserID]*presence.Target{
		"paused": {Interface: paused, Queues: map[string]*presence.QueueMember{"support": {}, "sales": nil}},
		"plain":  {Interface: plain, Queues: map[string]*presence.QueueMember{"sales": {}, "support": nil}},
	}
	observe := func(fill func(have map[presence.UserID]*presence.Target) error) map[presence.UserID]*presence.Target {
		t.Helper()
		have := map[presence.UserID]*presence.Target{}
		for id := range want {
			have[id] = presence.NewTarget()
		}
		if err := fill(have); err != nil {
			t.Fatal(err)
		}
		return have
	}
	byObserve := observe(func(have map[presence.UserID]*presence.Target) error { return f.c.Observe(ctx, want, have) })
	for i, tc := range []struct {
		name                string
		surveyReads, fillIn int
	}{
		{"first: nothing known, Fill reads", 0, 1},
		{"then: the survey reads every queue, Fill nothing", 1, 0},
	} {
		before := f.count.count("QueueStatus")
		s, err := f.c.Survey(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n := f.count.count("QueueStatus") - before; n != tc.surveyReads {
			t.Errorf("%d %s: the survey sent %d QueueStatus, want %d", i, tc.name, n, tc.surveyReads)
		}
		before = f.count.count("QueueStatus")
		got := observe(func(have map[presence.UserID]*presence.Target) error { return s.Fill(ctx, want, have) })
		if n := f.count.count("QueueStatus") - before; n != tc.fillIn {
			t.Errorf("%d %s: Fill sent %d QueueStatus, want %d", i, tc.name, n, tc.fillIn)
		}
		for id, h := range byObserve {
			for q, m := range h.Queues {
				g := got[id].Queues[q]
				if (m == nil) != (g == nil) || (m != nil && *m != *g) {
					t.Errorf("%s: %s/%s: Fill recorded %+v, Observe %+v", tc.name, id, q, g, m)
				}
			}
		}
	}
	// A full check of interfaces read more cheaply one by one: the next survey reads nothing.
	s, err := f.c.Survey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f.c.size.Store(&pbxSize{queues: 12, members: 100000, interfaces: 20000})
	observe(func(have map[presence.UserID]*presence.Target) error { return s.Fill(ctx, want, have) })
	before := f.count.count("QueueStatus")
	if _, err := f.c.Survey(ctx); err != nil {
		t.Fatal(err)
	}
	if n := f.count.count("QueueStatus") - before; n != 0 {
		t.Errorf("survey after a check of few interfaces sent %d QueueStatus, want 0", n)
	}
}

// TestInFlightPerSession: MaxInFlight bounds each session's actions waiting for a reply, not
// all of them together: with 3 write sessions and a bound of 3, more than 3 actions are in
// flight at once over the three, never more than 3 on one. The bound is what keeps an action
// (and the session's keepalive Ping) from waiting long in line in Asterisk.
func TestInFlightPerSession(t *testing.T) {
	const users, maxInFlight = 60, 3
	all := newCounter() // every session's actions
	var counts []*counter
	dialBoth := func(own *counter) func(ctx context.Context, network, addr string) (net.Conn, error) {
		return func(ctx context.Context, network, addr string) (net.Conn, error) {
			nc, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &countingConn{Conn: &countingConn{Conn: nc, c: all}, c: own}, nil
		}
	}
	f := newFixture(t, func(o *Options) {
		o.MaxInFlight = maxInFlight
		o.Reader = startClient(t, false, nil)
		for range 2 {
			own := newCounter()
			counts = append(counts, own)
			o.Writers = append(o.Writers, startClient(t, false, func(cfg *ami.Config) { cfg.Dial = dialBoth(own) }))
		}
	})
	joinAtOnce(t, f, users)
	// The main session's connection is counted by the fixture alone; the peaks of all are the
	// two further sessions' together, a lower bound of the three's.
	sessions := append([]*counter{f.count}, counts...)
	total := 0
	for i, c := range sessions {
		n := c.count("QueueAdd")
		total += n
		if peak := c.maxInFlight(); peak > maxInFlight {
			t.Errorf("session %d: %d actions in flight at once, want at most %d", i, peak, maxInFlight)
		}
		if n == 0 {
			t.Errorf("session %d carried no QueueAdd", i)
		}
	}
	if total != users {
		t.Errorf("%d QueueAdd over the sessions, want %d", total, users)
	}
	if peak := all.maxInFlight(); peak <= maxInFlight {
		t.Errorf("the two further sessions had %d actions in flight at once at most, want more than %d (a bound per session, not for all)", peak, maxInFlight)
	} else {
		t.Logf("in flight at once over two sessions: %d", peak)
	}
}

// joinAtOnce puts n users' interfaces into support at once, one Apply each, and requires each
// applied. The interfaces leave every lab queue when the test ends.
func joinAtOnce(t *testing.T, f *fixture, n int) {
	t.Helper()
	ctx := testCtx(t)
	ifaces := make([]string, n)
	for i := range ifaces {
		ifaces[i] = iface(ext(t, i))
	}
	f.cleanup(t, ifaces...)
	var wg sync.WaitGroup
	for i, me := range ifaces {
		wg.Go(func() {
			ops := []presence.Op{{Kind: presence.OpQueueAdd, Queue: "support", Member: &presence.QueueMember{Interface: me, MemberName: fmt.Sprint("User ", i)}}}
			for _, o := range f.c.Apply(ctx, &presence.User{ID: presence.UserID(fmt.Sprint(i))}, ops) {
				if o.Result != presence.ResultApplied {
					t.Errorf("%s: %+v", me, o)
				}
			}
		})
	}
	wg.Wait()
}

// TestInFlightFollowsMaxWait: the bound on a session is in time, not in actions. 200 users
// joining a queue at once over one session: with a MaxWait far below the time Asterisk takes
// per QueueAdd the concern keeps only the floor (8) in flight; with a MaxWait of seconds, the
// same Asterisk answers that many within it, and the concern keeps many more in flight, up to
// MaxInFlight.
func TestInFlightFollowsMaxWait(t *testing.T) {
	const users, ceiling = 200, 64
	for _, tc := range []struct {
		name     string
		wait     time.Duration
		atMost   int
		atLeastN int
	}{
		{"a wait shorter than one action", time.Microsecond, minInFlight, 1},
		{"a wait of seconds", 10 * time.Second, ceiling, minInFlight + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, func(o *Options) { o.MaxInFlight, o.MaxWait = ceiling, tc.wait })
			joinAtOnce(t, f, users)
			peak := f.count.maxInFlight()
			t.Logf("MaxWait %v: %d in flight at most; %v per action measured, bound now %d", tc.wait, peak, f.c.writers[0].slots.PerReply(), f.c.writers[0].slots.Limit())
			if peak > tc.atMost || peak < tc.atLeastN {
				t.Errorf("%d actions in flight at once at most, want %d to %d", peak, tc.atLeastN, tc.atMost)
			}
		})
	}
}
