package queue

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/presenced/presenced/ami"
	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/presencetest"
)

// TestWatchNamesTheUserOfAMember: a member of a user's interface added, paused and removed by
// hand (on a second AMI login) is reported as that user's change, with what the event showed
// (which desired states agree with it), a member of nobody's is not, and a reload of app_queue
// asks for everyone.
func TestWatchNamesTheUserOfAMember(t *testing.T) {
	client := startClient(t, false, func(c *ami.Config) { c.Events = "system,agent" })
	c, err := New(Options{AMI: client, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	pbx := startClient(t, true, nil)
	mine, other := ext(t, 0), ext(t, 1)
	cat, err := presence.NewCatalogFrom(presence.CatalogConfig{Users: []presence.User{{ID: "watched", Extension: mine,
		Devices: []presence.Device{{Dial: "PJSIP/" + mine, Family: presence.FamilyDesk}}, Queues: []presence.QueueMembership{{Name: "support"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	rec := presencetest.NewWatchRecorder()
	rec.Start(t, c, cat, 100*time.Millisecond)
	ctx := testCtx(t)
	t.Cleanup(func() {
		_ = pbx.QueueRemove(testCtx(t), iface(mine), "support")
		_ = pbx.QueueRemove(testCtx(t), iface(other), "support")
	})
	if err := pbx.QueueAdd(ctx, ami.QueueMemberSpec{Queue: "support", Interface: iface(other)}); err != nil {
		t.Fatal(err)
	}
	// Each change, and desired states that agree and disagree with what its event shows.
	member := func(paused bool, reason string, penalty int) *presence.Target {
		return &presence.Target{Queues: map[string]*presence.QueueMember{"support": {Interface: iface(mine), Paused: paused, Reason: reason, Penalty: penalty}}}
	}
	out := &presence.Target{Queues: map[string]*presence.QueueMember{"support": nil}}
	optional := &presence.Target{Queues: map[string]*presence.QueueMember{"support": {Interface: iface(mine), Membership: presence.MembershipOptional}}}
	elsewhere := &presence.Target{Queues: map[string]*presence.QueueMember{"sales": nil}}
	steps := []struct {
		name          string
		do            func() error
		agree, differ []*presence.Target
	}{
		{"added", func() error { return pbx.QueueAdd(ctx, ami.QueueMemberSpec{Queue: "support", Interface: iface(mine)}) },
			[]*presence.Target{member(false, "", 0), elsewhere, optional},
			[]*presence.Target{out, member(true, "", 0), member(false, "", 2)}},
		{"paused", func() error { return pbx.QueuePause(ctx, iface(mine), "support", true, "by hand") },
			[]*presence.Target{member(true, "by hand", 0)},
			[]*presence.Target{member(false, "", 0), member(true, "lunch", 0), out}},
		{"penalty", func() error { return pbx.QueuePenalty(ctx, iface(mine), "support", 3) },
			[]*presence.Target{member(true, "by hand", 3)},
			[]*presence.Target{member(true, "by hand", 0)}},
		{"removed", func() error { return pbx.QueueRemove(ctx, iface(mine), "support") },
			[]*presence.Target{out, elsewhere, optional},
			[]*presence.Target{member(true, "by hand", 3), member(false, "", 0)}},
	}
	for i, step := range steps {
		if err := step.do(); err != nil {
			t.Fatal(err)
		}
		rec.WaitFor(t, "the change named alice's user", 5*time.Second, func() bool { return rec.Changed("watched") >= i+1 })
		for _, w := range step.agree {
			if !rec.Agrees("watched", w) {
				t.Errorf("%s: the event disagrees with %+v", step.name, w.Queues["support"])
			}
		}
		for _, w := range step.differ {
			if rec.Agrees("watched", w) {
				t.Errorf("%s: the event agrees with %+v", step.name, w.Queues["support"])
			}
		}
	}
	if n := len(rec.All()); n != 0 {
		t.Fatalf("everyone asked for %d times without a reload: %v", n, rec.All())
	}
	if _, err := env.Exec(ctx, "asterisk", "-rx", "module reload app_queue.so"); err != nil {
		t.Fatal(err)
	}
	rec.WaitFor(t, "a reload of app_queue asks for everyone", 10*time.Second, func() bool { return len(rec.All()) > 0 })
}

// TestObserveAnswersFromWhatItKnows, against the lab: once the concern has read an interface
// while its watch runs, Observe answers for it without reading, following the concern's own
// changes and the events they cause; a change by hand makes it read again (and see the
// change), as does presence.ReadNow.
func TestObserveAnswersFromWhatItKnows(t *testing.T) {
	f := newFixture(t, func(o *Options) {
		o.AMI = startClient(t, false, func(c *ami.Config) { c.Events = "system,agent" })
	})
	mine := ext(t, 0)
	me := iface(mine)
	f.cleanup(t, me)
	cat, err := presence.NewCatalogFrom(presence.CatalogConfig{Users: []presence.User{{ID: "known", Extension: mine,
		Devices: []presence.Device{{Dial: "PJSIP/" + mine, Family: presence.FamilyDesk}}, Queues: []presence.QueueMembership{{Name: "support"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	rec := presencetest.NewWatchRecorder()
	rec.Start(t, f.c, cat, 100*time.Millisecond)
	reads := func() int { return f.actions("QueueStatus", resultSuccess) }
	observe := func(ctx context.Context) *presence.Target {
		t.Helper()
		w := &presence.Target{Interface: me, Queues: map[string]*presence.QueueMember{"support": {Interface: me}, "sales": nil}}
		have := map[presence.UserID]*presence.Target{"known": presence.NewTarget()}
		if err := f.c.Observe(ctx, map[presence.UserID]*presence.Target{"known": w}, have); err != nil {
			t.Fatal(err)
		}
		return have["known"]
	}
	ctx := testCtx(t)
	step := func(name string, wantRead bool, check func(h *presence.Target) error) {
		t.Helper()
		before := reads()
		octx := ctx
		if name == "ReadNow" {
			octx = presence.WithReadNow(ctx)
		}
		h := observe(octx)
		if read := reads() > before; read != wantRead {
			t.Errorf("%s: read the PBX = %v, want %v", name, read, wantRead)
		}
		if err := check(h); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	absent := func(h *presence.Target) error {
		if h.Queues["support"] != nil || h.Queues["sales"] != nil {
			return fmt.Errorf("observed %+v, want in no queue", h.Queues)
		}
		return nil
	}
	in := func(paused bool, reason string, penalty int) func(h *presence.Target) error {
		return func(h *presence.Target) error {
			m := h.Queues["support"]
			if m == nil || m.Paused != paused || m.Reason != reason || m.Penalty != penalty || h.Queues["sales"] != nil {
				return fmt.Errorf("observed support %+v (sales %+v), want paused %v %q penalty %d", m, h.Queues["sales"], paused, reason, penalty)
			}
			return nil
		}
	}
	step("first observation", true, absent)
	step("nothing changed", false, absent)

	// The concern's own add, and its event.
	add := presence.Op{Kind: presence.OpQueueAdd, Queue: "support", Member: &presence.QueueMember{Interface: me, MemberName: "known", Penalty: 2}}
	if o := f.c.Apply(ctx, nil, []presence.Op{add}); o[0].Result != presence.ResultApplied {
		t.Fatalf("add: %+v", o[0])
	}
	rec.WaitFor(t, "the add's event", 5*time.Second, func() bool { return rec.Changed("known") >= 1 })
	step("after its own add", false, in(false, "", 2))

	// A pause by hand: read again, and seen.
	if err := f.pbx.QueuePause(ctx, me, "support", true, "by hand"); err != nil {
		t.Fatal(err)
	}
	rec.WaitFor(t, "the pause's event", 5*time.Second, func() bool { return rec.Changed("known") >= 2 })
	step("after a pause by hand", true, in(true, "by hand", 2))
	step("known again", false, in(true, "by hand", 2))
	step("ReadNow", true, in(true, "by hand", 2))

	// Its own unpause, then a removal by hand.
	unpause := presence.Op{Kind: presence.OpQueuePause, Queue: "support", Member: &presence.QueueMember{Interface: me}}
	if o := f.c.Apply(ctx, nil, []presence.Op{unpause}); o[0].Result != presence.ResultApplied {
		t.Fatalf("unpause: %+v", o[0])
	}
	step("after its own unpause", false, in(false, "", 2))
	rec.WaitFor(t, "the unpause's event", 5*time.Second, func() bool { return rec.Changed("known") >= 3 })
	if err := f.pbx.QueueRemove(ctx, me, "support"); err != nil {
		t.Fatal(err)
	}
	rec.WaitFor(t, "the removal's event", 5*time.Second, func() bool { return rec.Changed("known") >= 4 })
	step("after a removal by hand", true, absent)
	step("known absent", false, absent)
}
