package presence_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/presencetest"
)

// stateReads counts the reads of a user's state (HMGET of their key) a Redis client sends.
type stateReads struct {
	key string // the user key's suffix, e.g. ":user:alice"
	n   atomic.Int64
}

func (h *stateReads) count(cmds ...redis.Cmder) {
	for _, c := range cmds {
		if args := c.Args(); strings.EqualFold(c.Name(), "hmget") && len(args) > 1 {
			if k, _ := args[1].(string); strings.HasSuffix(k, h.key) {
				h.n.Add(1)
			}
		}
	}
}

func (h *stateReads) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *stateReads) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { h.count(cmd); return next(ctx, cmd) }
}

func (h *stateReads) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { h.count(cmds...); return next(ctx, cmds) }
}

// TestSwitchReadsThePBXOnce: a switch reads the PBX once, for the state it saves, while it
// saves it (engine_switch.go), and its pass uses that read and the state as saved, loading
// nothing from Redis (engine_pass.go); when something happened about the user meanwhile (here
// a pass), the pass loads the state, and when it wants something else (here a personal profile changed in Redis between the switch's save and its pass), the
// pass reads again and applies what the loaded state wants.
func TestSwitchReadsThePBXOnce(t *testing.T) {
	ctx := context.Background()
	cfg := presence.OpenRules()
	cfg.Users = []presence.User{presence.Alice()}
	cfg.Profiles = []presence.Profile{presence.Lunch()}
	reads := &stateReads{key: ":user:alice"}
	e, pbx, states := newTestEngineWith(t, cfg, func(o *presencetest.RigOptions) { o.Redis.AddHook(reads) })
	mine := func(v string) *presence.Profile {
		return &presence.Profile{ID: "mine", Name: "Mine", Owner: "alice", OnEnter: []presence.Action{
			{Kind: presence.ActionVariable, Name: "PROFILE/1001/var/x", Value: v}}}
	}
	if err := e.SaveProfile(ctx, "alice", mine("1")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Check(ctx, "alice"); err != nil { // the pass the saved profile asked for
		t.Fatal(err)
	}
	// The full check the engine starts with is over too: a pass over alice between a switch's
	// read and its pass makes the pass read again.
	if _, err := e.CheckAll(ctx); err != nil {
		t.Fatal(err)
	}

	// Each switch reads the PBX and alice's state once. A pass the engine starts on its own
	// (a full check retried after a failure) may come between one switch's read and its pass:
	// that switch then reads both again, as it must; one of the four may.
	var again []string
	for _, p := range []string{"lunch", "mine", "lunch", "mine"} {
		before, loads := pbx.Observes(), reads.n.Load()
		res, err := e.Switch(ctx, presence.SwitchRequest{User: "alice", Profile: p, Source: presence.SourceAPI})
		if err != nil {
			t.Fatal(err)
		}
		if !res.InSync {
			t.Fatalf("switch to %s: not in sync: %+v", p, res.Outcomes)
		}
		observes, states := pbx.Observes()-before, reads.n.Load()-loads
		switch {
		case observes == 1 && states == 1:
		case observes <= 2 && states <= 2:
			again = append(again, fmt.Sprintf("switch to %s read the PBX %d times and alice's state %d times", p, observes, states))
		default:
			t.Errorf("switch to %s read the PBX %d times and alice's state from Redis %d times, want once each", p, observes, states)
		}
	}
	if len(again) > 1 {
		t.Errorf("%d switches of 4 read again, want at most 1: %v", len(again), again)
	}
	if v := dbGet(pbx, "PROFILE/1001/var/x"); v != "1" {
		t.Fatalf("PROFILE/1001/var/x = %q after switching to mine, want 1", v)
	}

	// A pass over alice runs (its read takes a while); the switch saves its state and waits
	// for it; meanwhile the profile the switch chose changes in Redis.
	if _, err := e.Switch(ctx, presence.SwitchRequest{User: "alice", Profile: "lunch", Source: presence.SourceAPI}); err != nil {
		t.Fatal(err)
	}
	pbx.SetObserveDelay(300 * time.Millisecond)
	before := pbx.Observes()
	checked := make(chan error, 1)
	go func() { _, err := e.Check(ctx, "alice"); checked <- err }()
	waitFor(t, "the check's read", func() bool { return pbx.Observes() > before })
	switched := make(chan error, 1)
	go func() {
		_, err := e.Switch(ctx, presence.SwitchRequest{User: "alice", Profile: "mine", Source: presence.SourceAPI})
		switched <- err
	}()
	waitFor(t, "the switch's save", func() bool {
		st, _, err := states.Load(ctx, "alice")
		return err == nil && st.Profile == "mine"
	})
	if err := states.SavePersonalProfile(ctx, "alice", mine("2")); err != nil {
		t.Fatal(err)
	}
	for _, ch := range []chan error{checked, switched} {
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
	}
	pbx.SetObserveDelay(0)
	if v := dbGet(pbx, "PROFILE/1001/var/x"); v != "2" {
		t.Errorf("PROFILE/1001/var/x = %q, want 2: the pass applied the state the switch compiled, not the one it loaded "+
			"(a pass over alice ran since the switch loaded her state: its pass loads it again)", v)
	}
	// The check's read; the switch's early read, started before its save and not used (the
	// check's pass ran since it started); and the pass's read, made while it loads the state.
	// The read again for the profile as loaded joins that one: both wait for the switch's
	// early read to end (300 ms), and the later want is the one read (observer.start).
	if n := pbx.Observes() - before; n != 3 {
		t.Errorf("%d reads, want 3 (the check's, the switch's early one, and the pass's)", n)
	}
}
