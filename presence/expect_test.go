package presence_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/presencetest"
)

// grabWatch is a Watcher that hands the engine's Watch to the test, which then plays the
// concern reporting events.
type grabWatch chan presence.Watch

func (g grabWatch) Watch(ctx context.Context, w presence.Watch) error {
	g <- w
	<-ctx.Done()
	return nil
}

// TestEventsThatAgreeNeedNoPass: an event showing the PBX as the last pass left it (presenced's
// own change arriving) starts no pass; one that disagrees does; after a pass that did not leave
// the PBX as wanted (reported drift), every event is looked at, and one let go while that pass
// ran gets its look after it.
func TestEventsThatAgreeNeedNoPass(t *testing.T) {
	ctx := context.Background()
	grab := make(grabWatch, 1)
	reg := prometheus.NewRegistry()
	e, pbx, states := newTestEngineWith(t, presence.CatalogConfig{Users: []presence.User{presence.Alice()}, Profiles: []presence.Profile{presence.Lunch()}}, func(o *presencetest.RigOptions) {
		o.Engine.Watchers, o.Engine.Registerer, o.Engine.Policies = []presence.Watcher{grab}, reg, presence.Policies{presence.DriftQueuePause: presence.PolicyReport}
	})
	w := <-grab
	for _, p := range []string{presence.ProfileAvailable, "lunch"} {
		if _, err := e.Switch(ctx, presence.SwitchRequest{User: "alice", Profile: p, Source: presence.SourceAPI}); err != nil {
			t.Fatal(err)
		}
	}
	// The full check an engine starts with is over: it reads the PBX too.
	if _, err := e.CheckAll(ctx); err != nil {
		t.Fatal(err)
	}
	u := presence.Alice()
	iface := presence.DefaultNaming().Interface(&u)
	// What a QueueMemberPause event of support shows, as a desired state would compare it.
	shows := func(paused bool) func(*presence.Target) bool {
		return func(want *presence.Target) bool {
			m := want.Queues["support"]
			return m != nil && m.Paused == paused && (!paused || m.Reason == "Lunch")
		}
	}
	agreed := func() float64 { return testutil.ToFloat64(e.Metrics().EventsAgreed) }
	observes := pbx.Observes
	waitObserves := func(what string, n int64) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for observes() < n {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d reads of the PBX, want %d", what, observes(), n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitRecord := func(what string, outOfSync int64) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			n, _, err := states.RecordCounts(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if n == outOfSync {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d users out of sync, want %d", what, n, outOfSync)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	// The switch's own pause arriving: no pass.
	n := observes()
	w.Saw("alice", shows(true))
	if agreed() != 1 {
		t.Fatalf("an event agreeing with the switch just applied: agreed %v, want 1", agreed())
	}
	// A hand unpause: a pass, which reports it (policy report) and so expects nothing after.
	unpauseByHand(pbx, "support", iface)
	w.Saw("alice", shows(false))
	waitObserves("after a hand unpause", n+1)
	waitRecord("after the reported unpause", 1)
	// The hand pause back agrees with the profile, but the record still reports the unpause:
	// it is looked at, and the report goes.
	pbx.Edit(func(state *presence.Target) {
		state.Queues["support|"+iface].Paused, state.Queues["support|"+iface].Reason = true, "Lunch"
	})
	w.Saw("alice", shows(true))
	waitObserves("after the hand pause back", n+2)
	waitRecord("after the pause back", 0)
	if agreed() != 1 {
		t.Fatalf("agreed %v after events following reported drift, want still 1", agreed())
	}

	// An event agreeing with a pass that is running is let go, but looked at after that pass
	// if the pass leaves the PBX otherwise than wanted.
	pbx.SetObserveDelay(300 * time.Millisecond)
	unpauseByHand(pbx, "support", iface)
	w.Saw("alice", shows(false))
	waitObserves("a pass reading slowly", n+3) // the pass is reading now
	w.Saw("alice", shows(true))
	if agreed() != 2 {
		t.Fatalf("an event agreeing with the running pass: agreed %v, want 2", agreed())
	}
	waitObserves("the look after the pass that reported", n+4)
}
