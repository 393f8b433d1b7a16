package presence_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/presencetest"
)

// TestRelayCarriesAStandbysWork: an engine that does not run hands its switches, reconciles
// and repairs to the one that runs, through Redis, and gets their outcomes and errors back;
// with nobody running for longer than RunWait it fails with ErrNoLeader.
func TestRelayCarriesAStandbysWork(t *testing.T) {
	ctx := context.Background()
	rdb := presence.LabEnv(t).RedisClient(t, nil)
	prefix := fmt.Sprintf("test:%s:%d:", t.Name(), time.Now().UnixNano())
	var leaderExists atomic.Bool
	leaderExists.Store(true)
	relay := func(instance string) *presence.Relay {
		r, err := presence.NewRelay(presence.RelayOptions{Redis: rdb, Prefix: prefix, Asterisk: "pbx", Instance: instance,
			LeaderExists: func(context.Context) (bool, error) { return leaderExists.Load(), nil }})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	states := presence.NewStateStore(rdb, presence.StateStoreOptions{Prefix: prefix})
	cat, err := presence.NewCatalogFrom(presence.CatalogConfig{Users: []presence.User{presence.Alice()}, Profiles: []presence.Profile{presence.Lunch()}})
	if err != nil {
		t.Fatal(err)
	}
	pbx := presencetest.NewPBX()
	engine := func(instance string) *presence.Engine {
		e, err := presence.NewEngine(presence.EngineOptions{Catalog: cat, Naming: presence.DefaultNaming(), States: states, Concerns: []presence.Concern{pbx},
			Relay: relay(instance), RunWait: 500 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	leader, standby := engine("leader"), engine("standby")

	// Nobody leads: the standby's switch fails with ErrNoLeader after RunWait.
	leaderExists.Store(false)
	start := time.Now()
	if _, err := standby.Switch(ctx, presence.SwitchRequest{User: "alice", Profile: "lunch", Source: presence.SourceAPI}); !errors.Is(err, presence.ErrNoLeader) {
		t.Fatalf("with no leader: %v, want ErrNoLeader", err)
	} else if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("ErrNoLeader after %v", d)
	}
	leaderExists.Store(true)
	presencetest.Run(t, leader)

	res, err := standby.Switch(ctx, presence.SwitchRequest{User: "alice", Profile: presence.ProfileAvailable, Source: presence.SourceAPI, Actor: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if !res.InSync || len(res.Outcomes) == 0 || res.To != presence.ProfileAvailable || res.State.Version == 0 || res.Actor != "alice" {
		t.Fatalf("the relayed switch: %+v", res)
	}
	iface := presence.DefaultNaming().Interface(&presence.User{Extension: "1001"})
	if m := member(pbx, "support", iface); m == nil {
		t.Fatal("the relayed switch did not reach the PBX")
	}
	if _, err := standby.Switch(ctx, presence.SwitchRequest{User: "alice", Profile: "golf", Source: presence.SourceAPI}); !errors.Is(err, presence.ErrUnknownProfile) || !strings.Contains(err.Error(), `"golf"`) {
		t.Fatalf("a relayed unknown profile: %v", err)
	}
	stale := &presence.Expectation{Version: res.State.Version - 1, Since: res.State.Since}
	if _, err := standby.Switch(ctx, presence.SwitchRequest{User: "alice", Profile: "lunch", Source: presence.SourceSchedule, Expect: stale}); !errors.Is(err, presence.ErrStateChanged) {
		t.Fatalf("a relayed switch whose expectation failed: %v", err)
	}
	pbx.Edit(func(state *presence.Target) { delete(state.Queues, "support|"+iface) }) // removed by hand
	if res, err := standby.Enforce(ctx, "alice", "admin"); err != nil || !res.InSync || member(pbx, "support", iface) == nil {
		t.Fatalf("a relayed reconcile: %v %+v", err, res)
	}
	if res, err := standby.Check(ctx, "alice"); err != nil || !res.InSync {
		t.Fatalf("a relayed repair: %v %+v", err, res)
	}
	j, _ := states.Journal(ctx, "alice", 10)
	if len(j) < 2 || j[0].Kind != "reconcile" || j[0].Actor != "admin" {
		t.Fatalf("journal: %+v", j)
	}
}
