package presence

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
)

// memPBX is a recording concern over an in-memory PBX: it proves the engine's loop, not
// Asterisk (the concerns' own tests do that against the lab).
type memPBX struct {
	mu           sync.Mutex
	state        Target
	observes     atomic.Int64
	applied      []string
	failKind     OpKind       // ops of this kind fail while set
	observeDelay atomic.Int64 // nanoseconds each read takes; set while the engine runs
}

func newMemPBX() *memPBX { return &memPBX{state: *NewTarget()} }

func (m *memPBX) Name() string { return "mem" }
func (m *memPBX) Kinds() []OpKind {
	return []OpKind{OpQueueAdd, OpQueueRemove, OpQueuePause, OpQueuePenalty, OpDBPut, OpDBDel, OpDeviceState, OpPresence, OpGlobal, OpWebhook}
}

func (m *memPBX) Observe(ctx context.Context, want, have map[UserID]*Target) error {
	m.observes.Add(1)
	time.Sleep(time.Duration(m.observeDelay.Load()))
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, w := range want {
		h := have[id]
		for q := range w.Queues {
			if mem := m.state.Queues[q+"|"+w.Interface]; mem != nil {
				c := *mem
				h.Queues[q] = &c
			} else {
				h.Queues[q] = nil
			}
		}
		for k := range w.AstDB {
			h.AstDB[k] = m.state.AstDB[k]
		}
		for k := range w.Devices {
			h.Devices[k] = m.state.Devices[k]
		}
		for k := range w.Presence {
			h.Presence[k] = m.state.Presence[k]
		}
		for k := range w.Globals {
			h.Globals[k] = m.state.Globals[k]
		}
	}
	return nil
}

func (m *memPBX) Apply(ctx context.Context, u *User, ops []Op) []Outcome {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Outcome, len(ops))
	for i, op := range ops {
		m.applied = append(m.applied, string(u.ID)+": "+op.String())
		if op.Kind == m.failKind {
			out[i] = Failed(op, errors.New("injected failure"))
			continue
		}
		switch op.Kind {
		case OpQueueAdd, OpQueuePause, OpQueuePenalty:
			c := *op.Member
			m.state.Queues[op.Queue+"|"+op.Member.Interface] = &c
		case OpQueueRemove:
			delete(m.state.Queues, op.Queue+"|"+op.Member.Interface)
		case OpDBPut:
			m.state.AstDB[op.Key] = strp(op.Value)
		case OpDBDel:
			delete(m.state.AstDB, op.Key)
		case OpDeviceState:
			m.state.Devices[op.Key] = op.Value
		case OpPresence:
			p := *op.Presence
			m.state.Presence[op.Key] = &p
		case OpGlobal:
			m.state.Globals[op.Key] = strp(op.Value)
		}
		out[i] = Outcome{Op: op, Result: ResultApplied}
	}
	return out
}

func (m *memPBX) setFail(k OpKind) { m.mu.Lock(); m.failKind = k; m.mu.Unlock() }

// newTestEngine runs an engine over the lab Redis with a fresh key prefix.
func newTestEngine(t *testing.T, users []User, profiles []Profile) (*Engine, *memPBX, *StateStore) {
	t.Helper()
	return newTestEngineFrom(t, CatalogConfig{Users: users, Profiles: profiles}, nil)
}

// newTestEngineFrom is newTestEngine with the catalog's rules and limits, and metrics in reg
// (nil for none).
func newTestEngineFrom(t *testing.T, cfg CatalogConfig, reg prometheus.Registerer) (*Engine, *memPBX, *StateStore) {
	t.Helper()
	return newTestEngineWith(t, cfg, func(o *EngineOptions) { o.Registerer = reg })
}

// newTestEngineWith is newTestEngine with the catalog's rules and limits, and engine options
// changed by opts.
func newTestEngineWith(t *testing.T, cfg CatalogConfig, opts func(*EngineOptions)) (*Engine, *memPBX, *StateStore) {
	t.Helper()
	ctx := context.Background()
	opt, err := redis.ParseURL(labEnv(t).RedisURL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	states := NewStateStore(rdb, StateStoreOptions{Prefix: "test:" + t.Name() + ":" + fmt.Sprint(time.Now().UnixNano()) + ":"})
	if err := states.CheckSchema(ctx); err != nil {
		t.Fatal(err)
	}
	cat, err := NewCatalogFrom(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pbx := newMemPBX()
	o := testEngineOptions(cat, states, pbx)
	if opts != nil {
		opts(&o)
	}
	e, err := NewEngine(o)
	if err != nil {
		t.Fatal(err)
	}
	runEngine(t, e)
	return e, pbx, states
}

// testEngineOptions are the options of the tests' engines over cat, states and pbx, with
// short retries.
func testEngineOptions(cat *Catalog, states *StateStore, pbx *memPBX) EngineOptions {
	return EngineOptions{Catalog: cat, Naming: DefaultNaming(), States: states, Concerns: []Concern{pbx},
		RetryMin: 20 * time.Millisecond, RetryMax: 100 * time.Millisecond}
}

// runEngine runs e until the test ends (or stopEngine) and returns once it runs (as
// presencetest.Run, which this package's tests cannot import).
func runEngine(t testing.TB, e *Engine) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	stop := sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("engine Run: %v", err)
		}
	})
	engineStops.Store(e, stop)
	t.Cleanup(stop)
	for !e.Running() {
		select {
		case err := <-done:
			t.Fatalf("engine Run: %v", err)
		case <-time.After(time.Millisecond):
		}
	}
}

// engineStops are the stops of the engines runEngine runs (stopEngine).
var engineStops sync.Map // *Engine → func()

// stopEngine ends the term of an engine runEngine runs, as a leader that steps down.
func stopEngine(t testing.TB, e *Engine) {
	t.Helper()
	stop, ok := engineStops.Load(e)
	if !ok {
		t.Fatal("stopEngine: the engine does not run")
	}
	stop.(func())()
}

func users(n int) []User {
	out := make([]User, n)
	for i := range out {
		ext := fmt.Sprint(2000 + i)
		out[i] = User{ID: UserID("u" + ext), Extension: ext, Devices: []Device{{Dial: "PJSIP/" + ext, Family: FamilyDesk}},
			Queues: []QueueMembership{{Name: "support"}, {Name: "sales", Penalty: 1}}}
	}
	return out
}

func TestSwitchAppliesOnlyWhatDiffers(t *testing.T) {
	ctx := context.Background()
	e, pbx, _ := newTestEngine(t, []User{alice()}, []Profile{lunch()})
	res, err := e.Switch(ctx, SwitchRequest{User: "alice", Profile: ProfileAvailable, Source: SourceAPI})
	if err != nil {
		t.Fatal(err)
	}
	if !res.InSync || len(res.Outcomes) == 0 {
		t.Fatalf("first switch: %+v", res)
	}
	res, err = e.Switch(ctx, SwitchRequest{User: "alice", Profile: "lunch", Info: "back 1pm", Source: SourceAPI})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range res.Outcomes {
		got = append(got, o.Op.String())
	}
	want := []string{
		"queue_pause sales Local/1001@presenced-queue-member/n paused (Lunch)",
		"queue_pause support Local/1001@presenced-queue-member/n paused (Lunch)",
		`db_put PROFILE/1001/active="lunch"`,
		`db_put PROFILE/1001/info="back 1pm"`,
		`device_state Custom:PROFILE1001-1="INVALID"`,
		`device_state Custom:PROFILE1001-3="BUSY"`,
		`presence CustomPresence:1001 away "Lunch (back 1pm)"`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("ops:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	st, err := e.Status(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if st.State.Profile != "lunch" || st.State.Previous != ProfileAvailable || len(st.Drift) != 0 {
		t.Fatalf("status %+v drift %v", st.State, st.Drift)
	}
	_ = pbx
}

func TestPreviewChangesNothing(t *testing.T) {
	ctx := context.Background()
	e, pbx, states := newTestEngine(t, []User{alice()}, []Profile{lunch()})
	res, err := e.Preview(ctx, SwitchRequest{User: "alice", Profile: "lunch", Source: SourceAPI})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Preview || len(res.Outcomes) == 0 || res.Outcomes[0].Result != ResultPlanned {
		t.Fatalf("preview %+v", res)
	}
	if len(pbx.applied) != 0 {
		t.Fatalf("preview applied %v", pbx.applied)
	}
	if _, found, _ := states.Load(ctx, "alice"); found {
		t.Fatal("preview saved state")
	}
	if j, _ := states.Journal(ctx, "alice", 10); len(j) != 0 {
		t.Fatal("preview journaled")
	}
}

func TestUnknownUserAndProfile(t *testing.T) {
	e, _, _ := newTestEngine(t, []User{alice()}, nil)
	ctx := context.Background()
	if _, err := e.Switch(ctx, SwitchRequest{User: "nobody", Profile: "dnd"}); !errors.Is(err, ErrUnknownUser) {
		t.Errorf("unknown user: %v", err)
	}
	if _, err := e.Switch(ctx, SwitchRequest{User: "alice", Profile: "golf"}); !errors.Is(err, ErrUnknownProfile) || !strings.Contains(err.Error(), `"golf"`) {
		t.Errorf("unknown profile: %v", err)
	}
}

// TestConcurrentSwitchesOfOneUserAreSerialised: many switches of one user at once end in the
// last one's state with every switch journaled, each computed from its predecessor.
func TestConcurrentSwitchesOfOneUserAreSerialised(t *testing.T) {
	ctx := context.Background()
	e, pbx, states := newTestEngine(t, []User{alice()}, []Profile{lunch()})
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			p := []string{ProfileAvailable, "lunch", ProfileDND}[i%3]
			if _, err := e.Switch(ctx, SwitchRequest{User: "alice", Profile: p, Source: SourceAPI}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	j, err := states.Journal(ctx, "alice", 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(j) != 20 {
		t.Fatalf("journal has %d entries, want 20", len(j))
	}
	for i := 0; i+1 < len(j); i++ { // newest first: each switch starts where the one before ended
		if j[i].From != j[i+1].To {
			t.Fatalf("entry %d from %q, but the switch before went to %q", i, j[i].From, j[i+1].To)
		}
	}
	st, err := e.Status(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if st.State.Profile != j[0].To || len(st.Drift) != 0 {
		t.Fatalf("final %q (journal says %q), drift %v", st.State.Profile, j[0].To, st.Drift)
	}
	_ = pbx
}

// TestManyUsersShareObservations: a burst of switches of different users costs far fewer
// reads of the PBX than switches.
func TestManyUsersShareObservations(t *testing.T) {
	ctx := context.Background()
	us := users(200)
	e, pbx, _ := newTestEngine(t, us, nil)
	// A read long enough that the switches saved meanwhile (each a Redis round trip or two
	// apart, more on a loaded machine) join the next read rather than start their own.
	pbx.observeDelay.Store(int64(20 * time.Millisecond))
	var wg sync.WaitGroup
	for _, u := range us {
		wg.Go(func() {
			res, err := e.Switch(ctx, SwitchRequest{User: u.ID, Profile: ProfileAvailable, Source: SourceSchedule})
			if err != nil || !res.InSync {
				t.Errorf("%s: %v %+v", u.ID, err, res)
			}
		})
	}
	wg.Wait()
	if n := pbx.observes.Load(); n > 40 {
		t.Fatalf("%d reads of the PBX for 200 switches; want them batched", n)
	}
	t.Logf("200 switches, %d batched reads", pbx.observes.Load())
}

// TestFailureIsRetriedAndVisibleAsDrift: a failed operation leaves the switch out of sync,
// shows as drift with a repair due, and is repaired once the PBX accepts it.
func TestFailureIsRetriedAndVisibleAsDrift(t *testing.T) {
	ctx := context.Background()
	e, pbx, states := newTestEngine(t, []User{alice()}, []Profile{lunch()})
	pbx.setFail(OpQueuePause)
	if _, err := e.Switch(ctx, SwitchRequest{User: "alice", Profile: ProfileAvailable, Source: SourceAPI}); err != nil {
		t.Fatal(err)
	}
	res, err := e.Switch(ctx, SwitchRequest{User: "alice", Profile: "lunch", Source: SourceAPI})
	if err != nil {
		t.Fatal(err)
	}
	if res.InSync {
		t.Fatal("a failed pause reported in sync")
	}
	st, err := e.Status(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Drift) != 2 || st.RepairDue == nil {
		t.Fatalf("drift %v, repair due %v", st.Drift, st.RepairDue)
	}
	pbx.setFail("")
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err = e.Status(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Drift) == 0 && st.RepairDue == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not repaired: drift %v", st.Drift)
		}
		time.Sleep(20 * time.Millisecond)
	}
	j, _ := states.Journal(ctx, "alice", 10)
	if len(j) < 3 || j[0].Kind != "repair" || !j[0].InSync {
		t.Fatalf("journal %+v", j)
	}
}

func TestPersonalProfiles(t *testing.T) {
	ctx := context.Background()
	e, _, _ := newTestEngine(t, []User{alice()}, []Profile{lunch()})
	home := &Profile{ID: "home", Name: "Home office", Activation: "7",
		OnEnter: []Action{{Kind: ActionFollowMe, Families: []Family{FamilySoftphone, FamilyMobile}}}}
	if err := e.SaveProfile(ctx, "alice", home); err != nil {
		t.Fatal(err)
	}
	if err := e.SaveProfile(ctx, "alice", &Profile{ID: "lunch"}); !errors.Is(err, ErrSystemProfile) {
		t.Errorf("editing a system profile: %v", err)
	}
	if err := e.SaveProfile(ctx, "alice", &Profile{ID: "gym", Activation: "3"}); err == nil || !strings.Contains(err.Error(), `activation number of profile "lunch"`) {
		t.Errorf("clashing activation: %v", err)
	}
	if err := e.SaveProfile(ctx, "alice", &Profile{ID: "bad", OnEnter: []Action{{Kind: "teleport"}}}); err == nil || !strings.Contains(err.Error(), `unknown action "teleport"`) {
		t.Errorf("bad action: %v", err)
	}
	if err := e.SaveProfile(ctx, "alice", &Profile{ID: "hook", OnEnter: []Action{{Kind: ActionWebhook, URL: "http://10.0.0.1/x"}}}); err == nil || !strings.Contains(err.Error(), "webhooks are for system-wide profiles only") {
		t.Errorf("webhook in a personal profile: %v", err)
	}
	if _, err := e.Switch(ctx, SwitchRequest{User: "alice", Profile: "home", Source: SourceAPI}); err != nil {
		t.Fatal(err)
	}
	if err := e.DeleteProfile(ctx, "alice", "home"); !errors.Is(err, ErrProfileActive) {
		t.Errorf("deleting the active profile: %v", err)
	}
	if err := e.SaveProfile(ctx, "alice", home); !errors.Is(err, ErrProfileActive) {
		t.Errorf("editing the active profile: %v", err)
	}
	if _, err := e.Switch(ctx, SwitchRequest{User: "alice", Profile: ProfileAvailable, Source: SourceAPI}); err != nil {
		t.Fatal(err)
	}
	if err := e.DeleteProfile(ctx, "alice", "home"); err != nil {
		t.Fatal(err)
	}
	if err := e.DeleteProfile(ctx, "alice", "home"); !errors.Is(err, ErrUnknownProfile) {
		t.Errorf("deleting twice: %v", err)
	}
	if err := e.DeleteProfile(ctx, "alice", ProfileDND); !errors.Is(err, ErrSystemProfile) {
		t.Errorf("deleting a system profile: %v", err)
	}
}

// TestCorruptStateIsReportedNotLost: unreadable Redis data is named in the error; a switch
// proceeds from an empty state and the other users are unaffected.
func TestCorruptStateIsReportedNotLost(t *testing.T) {
	ctx := context.Background()
	us := users(2)
	e, _, states := newTestEngine(t, us, nil)
	if err := states.rdb.HSet(ctx, states.userKey(us[0].ID), "state", "{not json", "version", "3").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Status(ctx, us[0].ID); err == nil || !strings.Contains(err.Error(), states.userKey(us[0].ID)) {
		t.Fatalf("status of corrupt user: %v", err)
	}
	everyone, err := e.Everyone(ctx, EveryoneOptions{Admin: true})
	if err != nil || len(everyone) != 1 || everyone[0].User != us[1].ID {
		t.Fatalf("everyone, the unreadable user left out: %+v %v", everyone, err)
	}
	if _, err := e.Switch(ctx, SwitchRequest{User: us[1].ID, Profile: ProfileDND, Source: SourceAPI}); err != nil {
		t.Fatalf("other user: %v", err)
	}
	res, err := e.Switch(ctx, SwitchRequest{User: us[0].ID, Profile: ProfileDND, Source: SourceAPI})
	if err != nil || !res.InSync {
		t.Fatalf("switch of corrupt user: %v %+v", err, res)
	}
	if st, _ := e.Status(ctx, us[0].ID); st.State.Version != 4 {
		t.Fatalf("version after overwrite = %d, want 4", st.State.Version)
	}
}

func TestStateSaveConflict(t *testing.T) {
	ctx := context.Background()
	_, _, states := newTestEngine(t, []User{alice()}, nil)
	st, err := states.Save(ctx, "alice", UserState{Profile: "a"})
	if err != nil || st.Version != 1 {
		t.Fatalf("first save: %+v %v", st, err)
	}
	if _, err := states.Save(ctx, "alice", UserState{Profile: "b", Version: 0}); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale save: %v", err)
	}
	got, _, _ := states.Load(ctx, "alice")
	if got.Profile != "a" {
		t.Fatalf("stale save overwrote: %+v", got)
	}
}

// TestCheckAllPutsBackWhatDrifted: after the PBX lost its state (an Asterisk restart without
// persistent members), CheckAll restores every switched user and leaves the others alone.
func TestCheckAllPutsBackWhatDrifted(t *testing.T) {
	ctx := context.Background()
	us := users(30)
	e, pbx, _ := newTestEngine(t, us, nil)
	for _, u := range us[:20] {
		if _, err := e.Switch(ctx, SwitchRequest{User: u.ID, Profile: ProfileAvailable, Source: SourceAPI}); err != nil {
			t.Fatal(err)
		}
	}
	pbx.mu.Lock()
	before := len(pbx.state.Queues)
	pbx.state = *NewTarget() // Asterisk restarted and forgot everything
	pbx.applied = nil
	pbx.mu.Unlock()

	sum, err := e.CheckAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Users != 20 || sum.Repaired != 20 || sum.Failed != 0 {
		t.Fatalf("summary %+v, want 20 users checked and repaired", sum)
	}
	pbx.mu.Lock()
	after := len(pbx.state.Queues)
	pbx.mu.Unlock()
	if after != before || before != 40 {
		t.Fatalf("queue members before %d, after repair %d; want 40", before, after)
	}
	sum, err = e.CheckAll(ctx)
	if err != nil || sum.Repaired != 0 || sum.Failed != 0 {
		t.Fatalf("second CheckAll in sync: %+v %v", sum, err)
	}
}

// TestEventsRepairAndFlappingIsNotFought: a change the PBX reports is looked at whenever it
// comes (right after presenced's own change too): the echo of presenced's own switch finds
// nothing to do, a change by hand is put back; when someone keeps changing it back, presenced
// reports it and stops repairing until the window has passed, while a reconcile still applies.
func TestEventsRepairAndFlappingIsNotFought(t *testing.T) {
	ctx := context.Background()
	u := alice()
	e, pbx, _ := newTestEngineWith(t, CatalogConfig{Users: []User{u}, Profiles: []Profile{lunch()}}, func(o *EngineOptions) {
		o.FlapLimit, o.FlapWindow = 3, time.Minute
	})
	if _, err := e.Switch(ctx, SwitchRequest{User: "alice", Profile: ProfileAvailable, Source: SourceAPI}); err != nil {
		t.Fatal(err)
	}
	if res, err := e.Check(ctx, "alice"); err != nil || len(res.Outcomes) != 0 || !res.InSync {
		t.Fatalf("the echo of presenced's own switch: %v %v", err, resultsOf(res))
	}
	iface := DefaultNaming().Interface(&u)
	removeByHand := func() {
		pbx.mu.Lock()
		delete(pbx.state.Queues, "support|"+iface)
		pbx.mu.Unlock()
	}
	isMember := func() bool {
		pbx.mu.Lock()
		defer pbx.mu.Unlock()
		return pbx.state.Queues["support|"+iface] != nil
	}
	for i := range 3 {
		removeByHand()
		e.CheckSoon("alice") // what the queue watcher does on QueueMemberRemoved
		waitFor(t, fmt.Sprintf("repair %d", i+1), isMember)
	}
	removeByHand()
	res, err := e.Check(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if isMember() || res.InSync || len(res.Outcomes) == 0 || res.Outcomes[0].Result != ResultReported {
		t.Fatalf("a member changed back three times within the window is still fought: member %v, %v", isMember(), resultsOf(res))
	}
	if n := testutil.ToFloat64(e.metrics.flapping); n != 1 {
		t.Errorf("flapping reported %v times, want 1", n)
	}
	if res, err := e.Enforce(ctx, "alice", "alice"); err != nil || !res.InSync || !isMember() {
		t.Fatalf("a reconcile of a flapping user: %v %v, member %v", err, resultsOf(res), isMember())
	}
}
