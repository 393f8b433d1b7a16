package presence_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/presenced/presenced/internal/lab"
	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/presencetest"
)

// logBuffer collects a logger's lines, safe for concurrent writes.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// lines returns the lines that contain every one of subs.
func (l *logBuffer) lines(subs ...string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range strings.Split(l.b.String(), "\n") {
		all := line != ""
		for _, s := range subs {
			all = all && strings.Contains(line, s)
		}
		if all {
			out = append(out, line)
		}
	}
	return out
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// storeFixture is an engine over a StateStore made by Redis.StateStore (with its logs and
// metrics), and a separate client on the lab Redis to tamper with the data behind its back.
type storeFixture struct {
	e      *presence.Engine
	store  *presence.Redis
	states *presence.StateStore
	lab    *redis.Client
	reg    *prometheus.Registry
	logs   *logBuffer
}

// newStoreFixture opens the store at url (the lab Redis, or a proxy in front of it) with short
// timeouts and a fresh key prefix.
func newStoreFixture(t *testing.T, url string, us []presence.User, ps []presence.Profile, schemaEvery time.Duration) *storeFixture {
	t.Helper()
	ctx := context.Background()
	f := &storeFixture{reg: prometheus.NewRegistry(), logs: &logBuffer{}}
	var err error
	f.store, err = presence.OpenRedis(ctx, presence.RedisOptions{URL: url, DialTimeout: 300 * time.Millisecond,
		ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond, Registerer: f.reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.store.Close(context.Background()) })
	f.states = f.store.StateStore(presence.StateStoreOptions{Prefix: lab.Unique("storetest") + ":", SchemaCheckInterval: schemaEvery,
		Logger: f.logs.logger(), Registerer: f.reg})
	f.lab = presence.LabEnv(t).RedisClient(t, nil)
	if err := f.states.CheckSchema(ctx); err != nil {
		t.Fatal(err)
	}
	cat, err := presence.NewCatalogFrom(presence.CatalogConfig{Users: us, Profiles: ps})
	if err != nil {
		t.Fatal(err)
	}
	f.e, err = presence.NewEngine(presence.EngineOptions{Catalog: cat, Naming: presence.DefaultNaming(), States: f.states, Concerns: []presence.Concern{presencetest.NewPBX()},
		RetryMin: 20 * time.Millisecond, RetryMax: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	presencetest.Run(t, f.e)
	// The engine's first full check is done before the test breaks anything: what it reads
	// is not counted with what the test reads.
	if _, err := f.e.CheckAll(ctx); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *storeFixture) switchTo(t *testing.T, id presence.UserID, profile string) {
	t.Helper()
	if _, err := f.e.Switch(context.Background(), presence.SwitchRequest{User: id, Profile: profile, Source: presence.SourceAPI}); err != nil {
		t.Fatalf("switch %s to %s: %v", id, profile, err)
	}
}

func (f *storeFixture) must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func ids(es []presence.PresenceEntry) []presence.UserID {
	var out []presence.UserID
	for _, e := range es {
		out = append(out, e.User)
	}
	return out
}

// TestUnreadableRecordsAreLeftOutNamedAndCounted: a user key of another type, a state that is
// not JSON and a version that is not a number each leave that one user out of everyone's
// presence, named once in the log and counted; the user's own status names the key; a
// profiles key of another type leaves only the profiles out; switches and the full reconcile
// of the others go on, and a bad JSON state is replaced by the next switch.
func TestUnreadableRecordsAreLeftOutNamedAndCounted(t *testing.T) {
	ctx := context.Background()
	us := users(6)
	f := newStoreFixture(t, presence.LabEnv(t).RedisURL, us, nil, time.Hour)
	ok, wrongType, badJSON, badVersion, never, badProfiles := us[0].ID, us[1].ID, us[2].ID, us[3].ID, us[4].ID, us[5].ID
	f.switchTo(t, ok, presence.ProfileDND)
	f.switchTo(t, badVersion, presence.ProfileAvailable)
	f.switchTo(t, badProfiles, presence.ProfileAvailable)
	key := f.states.UserKey
	f.must(t, f.lab.Set(ctx, key(wrongType), "oops", 0).Err())
	f.must(t, f.lab.HSet(ctx, key(badJSON), "state", "{not json", "version", "1").Err())
	f.must(t, f.lab.HSet(ctx, key(badVersion), "version", "x").Err())
	f.must(t, f.lab.RPush(ctx, f.states.ProfilesKey(badProfiles), "not a hash").Err())

	for range 3 {
		all, err := f.e.Everyone(ctx, presence.EveryoneOptions{Admin: true})
		if err != nil {
			t.Fatalf("everyone with unreadable records: %v", err)
		}
		if got, want := fmt.Sprint(ids(all)), fmt.Sprint([]presence.UserID{ok, never, badProfiles}); got != want {
			t.Fatalf("everyone = %s, want %s (the unreadable users left out)", got, want)
		}
		if all[0].Label != "Do not disturb" || all[2].Label != "Available" || all[2].Presence != "available" {
			t.Fatalf("readable users: %+v", all)
		}
	}
	for _, tc := range []struct {
		kind      string
		reads     float64
		knownKeys float64
	}{{presence.KindState, 9, 3}, {presence.KindProfile, 3, 1}, {presence.KindJournal, 0, 0}, {presence.KindRecord, 0, 0}} {
		if got := testutil.ToFloat64(f.states.Metrics().UnreadableReads.WithLabelValues(tc.kind)); got != tc.reads {
			t.Errorf("presenced_store_unreadable_records_total{kind=%q} = %v, want %v", tc.kind, got, tc.reads)
		}
		if got := testutil.ToFloat64(f.states.Metrics().UnreadableKnown.WithLabelValues(tc.kind)); got != tc.knownKeys {
			t.Errorf("presenced_store_unreadable_records{kind=%q} = %v, want %v", tc.kind, got, tc.knownKeys)
		}
	}
	if n := testutil.CollectAndCount(f.reg, "presenced_store_unreadable_records_total"); n != 4 {
		t.Errorf("the counter is registered with %d kinds, want 4", n)
	}
	for _, k := range []string{key(wrongType), key(badJSON), key(badVersion), f.states.ProfilesKey(badProfiles)} {
		if lines := f.logs.lines("unreadable record", "key="+k+" "); len(lines) != 1 {
			t.Errorf("log lines naming %s after three reads: %d, want 1:\n%s", k, len(lines), strings.Join(lines, "\n"))
		}
	}

	for _, tc := range []struct {
		id   presence.UserID
		want string
	}{
		{wrongType, "redis key " + key(wrongType) + ": the key holds another type of value"},
		{badJSON, "redis key " + key(badJSON) + " field state"},
		{badVersion, "redis key " + key(badVersion) + " field version"},
	} {
		_, err := f.e.Status(ctx, tc.id)
		var corrupt *presence.CorruptError
		if !errors.As(err, &corrupt) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("status of %s: %v, want a CorruptError saying %q", tc.id, err, tc.want)
		}
	}
	if st, err := f.e.Status(ctx, badProfiles); err != nil || st.State.Profile != presence.ProfileAvailable {
		t.Errorf("status of a user whose profiles key is unreadable: %v", err)
	}

	// A key of another type is not overwritten: the switch names it and leaves it as it is.
	_, err := f.e.Switch(ctx, presence.SwitchRequest{User: wrongType, Profile: presence.ProfileDND, Source: presence.SourceAPI})
	if err == nil || !strings.Contains(err.Error(), key(wrongType)) {
		t.Errorf("switch of the wrong-typed user: %v, want an error naming the key", err)
	}
	if v, _ := f.lab.Get(ctx, key(wrongType)).Result(); v != "oops" {
		t.Errorf("wrong-typed key now %q, want it left as it was", v)
	}
	// A state that is not JSON is replaced by the next switch; the others switch as before.
	f.switchTo(t, badJSON, presence.ProfileDND)
	f.switchTo(t, ok, presence.ProfileAvailable)
	sum, err := f.e.CheckAll(ctx)
	if err != nil || sum.Users != 3 {
		t.Errorf("full reconcile with unreadable records: %+v %v; want the 3 readable switched users", sum, err)
	}
	all, err := f.e.Everyone(ctx, presence.EveryoneOptions{Admin: true})
	if err != nil || fmt.Sprint(ids(all)) != fmt.Sprint([]presence.UserID{ok, badJSON, never, badProfiles}) {
		t.Fatalf("everyone after the switch replaced the bad state: %v %v", ids(all), err)
	}
	if lines := f.logs.lines("readable again", "key="+key(badJSON)); len(lines) != 1 {
		t.Errorf("'readable again' lines for %s: %d, want 1", key(badJSON), len(lines))
	}
	if got := testutil.ToFloat64(f.states.Metrics().UnreadableKnown.WithLabelValues(presence.KindState)); got != 2 {
		t.Errorf("unreadable state keys known = %v, want 2", got)
	}
}

// TestPipelinedReadsJudgeEachKey: in one pipeline, a key of another type fails only itself.
func TestPipelinedReadsJudgeEachKey(t *testing.T) {
	ctx := context.Background()
	us := users(3)
	f := newStoreFixture(t, presence.LabEnv(t).RedisURL, us, nil, time.Hour)
	for _, u := range us {
		f.must(t, f.states.SavePersonalProfile(ctx, u.ID, &presence.Profile{ID: "home", Name: "Home of " + string(u.ID)}))
		f.switchTo(t, u.ID, presence.ProfileAvailable)
	}
	f.must(t, f.lab.Del(ctx, f.states.UserKey(us[0].ID), f.states.ProfilesKey(us[0].ID)).Err())
	f.must(t, f.lab.SAdd(ctx, f.states.UserKey(us[0].ID), "x").Err())
	f.must(t, f.lab.SAdd(ctx, f.states.ProfilesKey(us[0].ID), "x").Err())
	ids := []presence.UserID{us[0].ID, us[1].ID, us[2].ID}

	states, err := f.states.LoadMany(ctx, ids)
	if len(states) != 2 || !presence.CorruptOnly(err) || !strings.Contains(err.Error(), f.states.UserKey(us[0].ID)) {
		t.Errorf("LoadMany: %d states, %v; want the other two and a CorruptError naming the key", len(states), err)
	}
	profiles, err := f.states.PersonalProfilesMany(ctx, ids)
	if len(profiles) != 2 || len(profiles[us[2].ID]) != 1 || !presence.CorruptOnly(err) ||
		!strings.Contains(err.Error(), f.states.ProfilesKey(us[0].ID)) {
		t.Errorf("PersonalProfilesMany: %v, %v; want the other two and a CorruptError naming the key", profiles, err)
	}
	_, err = f.states.Journal(ctx, us[1].ID, 10)
	f.must(t, err)
	f.must(t, f.lab.Del(ctx, f.states.JournalKey(us[1].ID)).Err())
	f.must(t, f.lab.Set(ctx, f.states.JournalKey(us[1].ID), "x", 0).Err())
	if _, err := f.states.Journal(ctx, us[1].ID, 10); !presence.CorruptOnly(err) {
		t.Errorf("journal key of another type: %v, want a CorruptError", err)
	}
}

// TestStoreDownOrHungIsUnavailable: with Redis cut off or hung (a proxy in front of the lab
// Redis) every operation fails at once with an UnavailableError whose message gives the reason
// and not the address; the outage is logged once when it starts and once when it ends, and
// the operations work again when Redis is back.
func TestStoreDownOrHungIsUnavailable(t *testing.T) {
	ctx := context.Background()
	target := strings.TrimSuffix(strings.TrimPrefix(presence.LabEnv(t).RedisURL, "redis://"), "/0")
	proxy, err := lab.NewProxy(target)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	us := users(2)
	f := newStoreFixture(t, "redis://"+proxy.Addr()+"/0", us, nil, time.Hour)
	f.switchTo(t, us[0].ID, presence.ProfileDND)

	ops := map[string]func() error{
		"Load": func() error { _, _, err := f.states.Load(ctx, us[0].ID); return err },
		"LoadMany": func() error {
			_, err := f.states.LoadMany(ctx, []presence.UserID{us[0].ID, us[1].ID})
			return err
		},
		"Save": func() error {
			_, err := f.states.Save(ctx, us[1].ID, presence.UserState{Profile: "x"})
			if errors.Is(err, presence.ErrConflict) {
				return nil // the store answered: the user's state is past version 0
			}
			return err
		},
		"Version": func() error { _, err := f.states.Version(ctx, us[0].ID); return err },
		"Journal": func() error { _, err := f.states.Journal(ctx, us[0].ID, 5); return err },
		"PersonalProfilesMany": func() error {
			_, err := f.states.PersonalProfilesMany(ctx, []presence.UserID{us[0].ID, us[1].ID})
			return err
		},
		"SavePersonalProfile": func() error {
			return f.states.SavePersonalProfile(ctx, us[1].ID, &presence.Profile{ID: "p", Name: "P"})
		},
		"Everyone": func() error {
			_, err := f.e.Everyone(ctx, presence.EveryoneOptions{Admin: true})
			return err
		},
		"Status": func() error { _, err := f.e.Status(ctx, us[0].ID); return err },
		"Switch": func() error {
			_, err := f.e.Switch(ctx, presence.SwitchRequest{User: us[1].ID, Profile: presence.ProfileDND, Source: presence.SourceAPI})
			return err
		},
	}
	for _, outage := range []struct {
		name, reason string
		start, end   func()
	}{
		{"down", "", func() { proxy.SetUp(false) }, func() { proxy.SetUp(true) }},
		{"hung", "timed out", func() { proxy.SetHung(true) }, func() { proxy.SetHung(false) }},
	} {
		t.Run(outage.name, func(t *testing.T) {
			outage.start()
			for name, op := range ops {
				start := time.Now()
				err := op()
				var u *presence.UnavailableError
				if !errors.Is(err, presence.ErrStoreUnavailable) || !errors.As(err, &u) {
					t.Errorf("%s while Redis is %s: %v, want an UnavailableError", name, outage.name, err)
					continue
				}
				msg := u.Message()
				if !strings.HasPrefix(msg, "state store unavailable: ") || strings.Contains(msg, proxy.Addr()) ||
					!strings.Contains(msg, outage.reason) {
					t.Errorf("%s: message %q, want the reason %q and no address", name, msg, outage.reason)
				}
				if d := time.Since(start); d > 10*time.Second {
					t.Errorf("%s took %v while Redis is %s", name, d, outage.name)
				}
			}
			outage.end()
			deadline := time.Now().Add(10 * time.Second)
			for {
				_, _, err := f.states.Load(ctx, us[0].ID)
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("Redis back, but: %v", err)
				}
				time.Sleep(50 * time.Millisecond)
			}
			for name, op := range ops {
				if err := op(); err != nil {
					t.Errorf("%s once Redis is back: %v", name, err)
				}
			}
		})
	}
	if n := len(f.logs.lines("level=ERROR", "state store unavailable")); n != 2 {
		t.Errorf("outage log lines: %d, want one per outage (2):\n%s", n, strings.Join(f.logs.lines("unavailable"), "\n"))
	}
	if n := len(f.logs.lines("state store available again")); n != 2 {
		t.Errorf("'available again' lines: %d, want 2", n)
	}
}

// TestSchemaMismatchRefusesReadsAndWrites: a schema version changed under a running presenced
// is found within the check interval; from then on nothing is read or written (the refusal
// costs no round trip) and the mismatch is logged once; when the key is right again the store
// is used again. Between checks, operations cost no schema round trip.
func TestSchemaMismatchRefusesReadsAndWrites(t *testing.T) {
	ctx := context.Background()
	const every = 300 * time.Millisecond
	f := newStoreFixture(t, presence.LabEnv(t).RedisURL, users(1), nil, every)
	id := users(1)[0].ID
	f.switchTo(t, id, presence.ProfileDND)
	schemaKey := f.states.Prefix() + "schema"
	gets := func() int { return histogramCount(t, f.reg, "presenced_redis_command_duration_seconds", "get") }

	before := gets()
	for range 20 {
		if _, _, err := f.states.Load(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if after := gets(); after > before+1 {
		t.Errorf("20 loads sent %d GETs (schema checks), want at most one", after-before)
	}

	f.must(t, f.lab.Set(ctx, schemaKey, "2", 0).Err())
	changed := time.Now()
	var schema *presence.SchemaError
	for {
		_, _, err := f.states.Load(ctx, id)
		if errors.As(err, &schema) {
			break
		}
		if err != nil || time.Since(changed) > every+2*time.Second {
			t.Fatalf("load %v after the schema changed: %v", time.Since(changed), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, err := f.states.Save(ctx, id, presence.UserState{Profile: "lunch", Version: 1})
	if !errors.Is(err, presence.ErrStoreUnavailable) || !errors.As(err, &schema) || schema.Found != "2" ||
		!strings.Contains(err.Error(), `redis key `+schemaKey+` is "2" but this presenced uses schema 1`) {
		t.Fatalf("save into a store of schema 2: %v", err)
	}
	if st, _ := f.lab.HGet(ctx, f.states.UserKey(id), "state").Result(); !strings.Contains(st, `"profile":"dnd"`) {
		t.Errorf("state after the refused save: %s", st)
	}
	refusedAt := gets()
	for range 20 {
		f.states.Load(ctx, id)
	}
	if n := gets() - refusedAt; n > 1 {
		t.Errorf("20 refused loads sent %d GETs, want at most one", n)
	}
	if n := len(f.logs.lines("level=ERROR", "schema mismatch", "key="+schemaKey)); n != 1 {
		t.Errorf("mismatch log lines: %d, want 1", n)
	}

	f.must(t, f.lab.Set(ctx, schemaKey, presence.SchemaVersion, 0).Err())
	deadline := time.Now().Add(every + 2*time.Second)
	for {
		_, _, err := f.states.Load(ctx, id)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("schema right again, but: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := len(f.logs.lines("schema version is right again")); n != 1 {
		t.Errorf("'right again' log lines: %d, want 1", n)
	}
}

// TestWatchSchemaFindsMismatchWithoutTraffic: with nothing reading the store, the watcher finds
// and logs a changed schema within its interval, and the next operation is refused without
// checking again.
func TestWatchSchemaFindsMismatchWithoutTraffic(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const every = 200 * time.Millisecond
	f := newStoreFixture(t, presence.LabEnv(t).RedisURL, users(1), nil, every)
	done := make(chan struct{})
	go func() { f.states.WatchSchema(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	f.must(t, f.lab.Set(ctx, f.states.Prefix()+"schema", "7", 0).Err())
	deadline := time.Now().Add(every + 2*time.Second)
	for len(f.logs.lines("schema mismatch", `found=7`)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the watcher did not log the mismatch")
		}
		time.Sleep(20 * time.Millisecond)
	}
	var schema *presence.SchemaError
	if _, err := f.states.Version(ctx, users(1)[0].ID); !errors.As(err, &schema) {
		t.Fatalf("operation after the watcher found a mismatch: %v", err)
	}
}

// TestSchemaCheckedOnReconnect: a store whose schema changed is found at the next connection,
// before any command on it, even with a check interval of an hour.
func TestSchemaCheckedOnReconnect(t *testing.T) {
	ctx := context.Background()
	target := strings.TrimSuffix(strings.TrimPrefix(presence.LabEnv(t).RedisURL, "redis://"), "/0")
	proxy, err := lab.NewProxy(target)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	us := users(1)
	// One connection: the engine's own work (its first full check, a switch's pass) must not
	// open a new one meanwhile, which would check the schema before the test means it to.
	f := newStoreFixture(t, "redis://"+proxy.Addr()+"/0?pool_size=1", us, nil, time.Hour)
	f.switchTo(t, us[0].ID, presence.ProfileDND)
	f.must(t, f.lab.Set(ctx, f.states.Prefix()+"schema", "2", 0).Err())
	if _, _, err := f.states.Load(ctx, us[0].ID); err != nil {
		t.Fatalf("within the interval, without a new connection, the last check stands: %v", err)
	}

	proxy.SetUp(false) // Redis restarted, say, from another data set
	proxy.SetUp(true)
	var schema *presence.SchemaError
	for attempt := 0; ; attempt++ {
		_, err := f.states.Save(ctx, us[0].ID, presence.UserState{Profile: "lunch", Version: 1})
		if errors.As(err, &schema) {
			break
		}
		if err == nil || attempt == 3 || !errors.Is(err, presence.ErrStoreUnavailable) {
			t.Fatalf("save after a reconnect to a store of schema 2: %v", err)
		}
	}
	if st, _ := f.lab.HGet(ctx, f.states.UserKey(us[0].ID), "state").Result(); !strings.Contains(st, `"profile":"dnd"`) {
		t.Errorf("state after the refused save: %s", st)
	}
}

// TestSchemaKeyMissing: a store without presenced data gets the key; a store holding
// presenced's user keys without it is refused, naming one of them.
func TestSchemaKeyMissing(t *testing.T) {
	ctx := context.Background()
	us := users(1)
	f := newStoreFixture(t, presence.LabEnv(t).RedisURL, us, nil, time.Hour)
	schemaKey := f.states.Prefix() + "schema"
	if v, _ := f.lab.Get(ctx, schemaKey).Result(); v != presence.SchemaVersion {
		t.Fatalf("schema key of a new store = %q", v)
	}
	f.switchTo(t, us[0].ID, presence.ProfileDND)
	f.must(t, f.lab.Del(ctx, schemaKey).Err())
	err := f.states.CheckSchema(ctx)
	var schema *presence.SchemaError
	if !errors.As(err, &schema) || schema.Found != "" || !strings.HasPrefix(schema.Sample, f.states.UserKey(us[0].ID)) ||
		!strings.Contains(err.Error(), "is missing but the store holds presenced data") {
		t.Fatalf("store with data but no schema key: %v", err)
	}
	if _, err := f.states.Save(ctx, us[0].ID, presence.UserState{Profile: "x", Version: 1}); !errors.As(err, &schema) {
		t.Fatalf("save into it: %v", err)
	}
	if n, _ := f.lab.Exists(ctx, schemaKey).Result(); n != 0 {
		t.Fatal("the schema key was written into a store holding presenced data")
	}

	// The store wiped: the key is written again.
	f.must(t, f.lab.Del(ctx, f.states.UserKey(us[0].ID), f.states.JournalKey(us[0].ID)).Err())
	if err := f.states.CheckSchema(ctx); err != nil {
		t.Fatalf("wiped store: %v", err)
	}
	if v, _ := f.lab.Get(ctx, schemaKey).Result(); v != presence.SchemaVersion {
		t.Fatalf("schema key of a wiped store = %q", v)
	}
	if n := len(f.logs.lines("level=WARN", "holds no presenced data")); n != 2 {
		t.Errorf("'no presenced data' lines: %d, want 2 (new, then wiped)", n)
	}
}

// histogramCount is the sample count of a histogram series with the given command label.
func histogramCount(t *testing.T, g prometheus.Gatherer, name, command string) int {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "command" && l.GetValue() == command {
					return int(m.GetHistogram().GetSampleCount())
				}
			}
		}
	}
	return 0
}

// TestStartOnStoreOfAnotherSchema: a presenced started on a store of another schema refuses
// it from its first operation on, and the refusals open no connection and send no command.
func TestStartOnStoreOfAnotherSchema(t *testing.T) {
	ctx := context.Background()
	opt, err := redis.ParseURL(presence.LabEnv(t).RedisURL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	prefix := lab.Unique("storetest") + ":"
	if err := rdb.Set(ctx, prefix+"schema", "9", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	store, err := presence.OpenRedis(ctx, presence.RedisOptions{URL: presence.LabEnv(t).RedisURL, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close(ctx)
	states := store.StateStore(presence.StateStoreOptions{Prefix: prefix})
	var schema *presence.SchemaError
	if _, _, err := states.Load(ctx, "alice"); !errors.As(err, &schema) || schema.Found != "9" {
		t.Fatalf("first load: %v", err)
	}
	sent := func() int {
		n := 0
		for _, c := range []string{"get", "hmget", "evalsha", "hset"} {
			n += histogramCount(t, reg, "presenced_redis_command_duration_seconds", c)
		}
		return n
	}
	before := sent()
	for range 20 {
		if _, err := states.Save(ctx, "alice", presence.UserState{Profile: "x"}); !errors.As(err, &schema) {
			t.Fatalf("save: %v", err)
		}
	}
	if n := sent() - before; n != 0 {
		t.Errorf("20 refused saves sent %d commands, want none", n)
	}
	if n, _ := rdb.Exists(ctx, prefix+"user:alice").Result(); n != 0 {
		t.Error("a refused save wrote the user's key")
	}
}
