package presence_test

import (
	"context"
	"testing"
	"time"

	"github.com/presenced/presenced/presence"
)

// TestChangesSaySubscribed: Changes delivers an empty id when its subscription is
// established (and again at every resubscription: web/events.go re-reads everyone then), and
// the ids of the users whose state changes.
func TestChangesSaySubscribed(t *testing.T) {
	e, _, states := newTestEngine(t, []presence.User{presence.Alice()}, []presence.Profile{presence.Lunch()})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := states.Changes(ctx, nil)
	next := func() presence.UserID {
		t.Helper()
		select {
		case id := <-ch:
			return id
		case <-time.After(5 * time.Second):
			t.Fatal("no announcement within 5s")
		}
		return ""
	}
	if id := next(); id != "" {
		t.Fatalf("first %q, want the subscription's empty id", id)
	}
	if _, err := e.Switch(ctx, presence.SwitchRequest{User: "alice", Profile: "lunch", Source: presence.SourceAPI}); err != nil {
		t.Fatal(err)
	}
	if id := next(); id != "alice" {
		t.Fatalf("after a switch: %q", id)
	}
	cancel()
	for range ch { // closed when ctx ends
	}
}
