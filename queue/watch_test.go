package queue

import (
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
