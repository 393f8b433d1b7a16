package presence

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestRelayCarriesAStandbysWork: an engine that does not run hands its switches, reconciles
// and repairs to the one that runs, through Redis, and gets their outcomes and errors back;
// with nobody running for longer than RunWait it fails with ErrNoLeader.
func TestRelayCarriesAStandbysWork(t *testing.T) {
	ctx := context.Background()
	opt, err := redis.ParseURL(labEnv(t).RedisURL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	prefix := fmt.Sprintf("test:%s:%d:", t.Name(), time.Now().UnixNano())
	var leaderExists atomic.Bool
	leaderExists.Store(true)
	relay := func(instance string) *Relay {
		r, err := NewRelay(RelayOptions{Redis: rdb, Prefix: prefix, Asterisk: "pbx", Instance: instance,
			LeaderExists: func(context.Context) (bool, error) { return leaderExists.Load(), nil }})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	states := NewStateStore(rdb, StateStoreOptions{Prefix: prefix})
	cat, err := NewCatalogFrom(CatalogConfig{Users: []User{alice()}, Profiles: []Profile{lunch()}})
	if err != nil {
		t.Fatal(err)
	}
	pbx := newMemPBX()
	engine := func(instance string) *Engine {
		e, err := NewEngine(EngineOptions{Catalog: cat, Naming: DefaultNaming(), States: states, Concerns: []Concern{pbx},
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
	if _, err := standby.Switch(ctx, SwitchRequest{User: "alice", Profile: "lunch", Source: SourceAPI}); !errors.Is(err, ErrNoLeader) {
		t.Fatalf("with no leader: %v, want ErrNoLeader", err)
	} else if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("ErrNoLeader after %v", d)
	}
	leaderExists.Store(true)
	runEngine(t, leader)

	res, err := standby.Switch(ctx, SwitchRequest{User: "alice", Profile: ProfileAvailable, Source: SourceAPI, Actor: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if !res.InSync || len(res.Outcomes) == 0 || res.To != ProfileAvailable || res.State.Version == 0 || res.Actor != "alice" {
		t.Fatalf("the relayed switch: %+v", res)
	}
	iface := DefaultNaming().Interface(&User{Extension: "1001"})
	if m := pbx.member("support", iface); m == nil {
		t.Fatal("the relayed switch did not reach the PBX")
	}
	if _, err := standby.Switch(ctx, SwitchRequest{User: "alice", Profile: "golf", Source: SourceAPI}); !errors.Is(err, ErrUnknownProfile) || !strings.Contains(err.Error(), `"golf"`) {
		t.Fatalf("a relayed unknown profile: %v", err)
	}
	stale := &Expectation{Version: res.State.Version - 1, Since: res.State.Since}
	if _, err := standby.Switch(ctx, SwitchRequest{User: "alice", Profile: "lunch", Source: SourceSchedule, Expect: stale}); !errors.Is(err, ErrStateChanged) {
		t.Fatalf("a relayed switch whose expectation failed: %v", err)
	}
	pbx.mu.Lock() // removed by hand
	delete(pbx.state.Queues, "support|"+iface)
	pbx.mu.Unlock()
	if res, err := standby.Enforce(ctx, "alice", "admin"); err != nil || !res.InSync || pbx.member("support", iface) == nil {
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
