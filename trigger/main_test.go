package trigger

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/presenced/presenced/internal/fakeclock"
	"github.com/presenced/presenced/internal/lab"
	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/presencetest"
)

var env *lab.Env

func TestMain(m *testing.M) {
	os.Exit(lab.Main(m, lab.Options{Redis: true}, func(e *lab.Env) { env = e }))
}

// rig is one presenced instance (engine + scheduler) over the lab Redis.
type rig struct {
	t      testing.TB
	e      *presence.Engine
	s      *Scheduler
	states *presence.StateStore
	rdb    *redis.Client
	clock  *fakeclock.Clock
	pbx    *presencetest.PBX
}

// world is what instances share: Redis, a key prefix, the configuration and the clock.
type world struct {
	rdb      *redis.Client
	prefix   string
	users    []presence.User
	profiles []presence.Profile
	clock    *fakeclock.Clock
	opts     Options // Schedules, Holidays, DefaultLocation

	// The engine (and its PBX) every instance switches through: only one engine writes to
	// Asterisk at a time (the leader's), while every instance's scheduler runs against Redis.
	engine *presence.Engine
	states *presence.StateStore
	pbx    *presencetest.PBX
}

func newWorld(t testing.TB, start time.Time, users []presence.User, profiles []presence.Profile, opts Options) *world {
	t.Helper()
	rdb := env.RedisClient(t, func(o *redis.Options) { o.PoolSize = 200 })
	return &world{rdb: rdb, prefix: fmt.Sprintf("trigtest:%s:%d:", t.Name(), time.Now().UnixNano()),
		users: users, profiles: profiles, clock: fakeclock.New(start), opts: opts}
}

// instance starts one presenced instance (a daemon, as after a restart) in the world: a
// scheduler of its own over the world's engine.
func (w *world) instance(t testing.TB) *rig {
	t.Helper()
	if w.engine == nil {
		r := presencetest.NewRig(t, presencetest.RigOptions{Redis: w.rdb, Prefix: w.prefix, Users: w.users, Profiles: w.profiles,
			Engine: presence.EngineOptions{Now: w.clock.Now}})
		w.engine, w.states, w.pbx = r.Engine, r.States, r.PBX
	}
	e, states, pbx := w.engine, w.states, w.pbx
	opts := w.opts
	opts.Engine, opts.States, opts.Redis, opts.Prefix, opts.Now = e, states, w.rdb, w.prefix, w.clock.Now
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return &rig{t: t, e: e, s: s, states: states, rdb: w.rdb, clock: w.clock, pbx: pbx}
}

func (r *rig) step() {
	r.t.Helper()
	if err := r.s.Step(context.Background()); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) state(id presence.UserID) presence.UserState {
	r.t.Helper()
	st, _, err := r.states.Load(context.Background(), id)
	if err != nil {
		r.t.Fatal(err)
	}
	return st
}

func (r *rig) switchTo(id presence.UserID, profile string, src presence.Source, until time.Time) presence.UserState {
	r.t.Helper()
	res, err := r.e.Switch(context.Background(), presence.SwitchRequest{User: id, Profile: profile, Source: src, Actor: string(id), Until: until})
	if err != nil {
		r.t.Fatal(err)
	}
	if !until.IsZero() {
		if err := r.s.Timed(context.Background(), id, res.State); err != nil {
			r.t.Fatal(err)
		}
	}
	return res.State
}

// expect fails unless the user is in profile, switched by source.
func (r *rig) expect(id presence.UserID, profile string, src presence.Source) {
	r.t.Helper()
	st := r.state(id)
	if st.Profile != profile || st.Source != src {
		r.t.Fatalf("%s is in %q (source %s, actor %s), want %q (source %s)", id, st.Profile, st.Source, st.Actor, profile, src)
	}
}

func (r *rig) journalLen(id presence.UserID) int {
	r.t.Helper()
	j, err := r.states.Journal(context.Background(), id, 1000)
	if err != nil {
		r.t.Fatal(err)
	}
	return len(j)
}

func testUser(id string, ext int, tz string, sched ...presence.Schedule) presence.User {
	e := fmt.Sprint(ext)
	return presence.User{ID: presence.UserID(id), Extension: e, TimeZone: tz, Schedules: sched,
		Devices: []presence.Device{{Dial: "PJSIP/" + e, Family: presence.FamilyDesk}},
		Queues:  []presence.QueueMembership{{Name: "support"}}}
}

func testProfiles() []presence.Profile {
	return []presence.Profile{
		{ID: "lunch", Name: "Lunch", Presence: "away", Priority: 5},
		{ID: "meeting", Name: "Meeting", Presence: "dnd", Priority: 1},
		{ID: "focus", Name: "Focus", Presence: "dnd", Priority: 3},
		{ID: "vacation", Name: "Vacation", Presence: "xa", Sticky: true},
		{ID: "closed", Name: "Closed", Presence: "xa"},
	}
}

func mustLoad(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}
