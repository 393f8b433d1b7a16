package presence_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

// sentinelFixture is an engine whose store finds its master through the lab's Sentinel group.
type sentinelFixture struct {
	group  *lab.Sentinel
	store  *presence.Redis
	states *presence.StateStore
	e      *presence.Engine
	reg    *prometheus.Registry
	logs   *logBuffer
}

// newSentinelFixture opens a store on group with short timeouts (300 ms, so that a hung master
// is given up quickly), waiting for wait replicas (0: none) for at most 500 ms.
func newSentinelFixture(t *testing.T, group *lab.Sentinel, wait int, us []presence.User, schemaEvery time.Duration) *sentinelFixture {
	t.Helper()
	f := &sentinelFixture{group: group, reg: prometheus.NewRegistry(), logs: &logBuffer{}}
	var err error
	f.store, err = presence.OpenRedis(context.Background(), presence.RedisOptions{
		Sentinel: &presence.SentinelOptions{MasterName: group.MasterName, Addresses: group.Addresses, Password: group.SentinelPassword},
		Password: group.Password, WaitReplicas: wait, WaitTimeout: 500 * time.Millisecond,
		DialTimeout: 300 * time.Millisecond, ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond,
		Logger: f.logs.logger(), Registerer: f.reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.store.Close(context.Background()) })
	f.states = f.store.StateStore(presence.StateStoreOptions{Prefix: lab.Unique("sentineltest") + ":", SchemaCheckInterval: schemaEvery,
		Logger: f.logs.logger(), Registerer: f.reg})
	if err := f.states.CheckSchema(context.Background()); err != nil {
		t.Fatal(err)
	}
	cat, err := presence.NewCatalogFrom(presence.CatalogConfig{Users: us})
	if err != nil {
		t.Fatal(err)
	}
	f.e, err = presence.NewEngine(presence.EngineOptions{Catalog: cat, Naming: presence.DefaultNaming(), States: f.states, Concerns: []presence.Concern{presencetest.NewPBX()},
		Logger: f.logs.logger(), RetryMin: 20 * time.Millisecond, RetryMax: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	presencetest.Run(t, f.e)
	return f
}

func startSentinel(t *testing.T, opts lab.SentinelOptions) *lab.Sentinel {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	g, err := presence.LabEnv(t).StartSentinel(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close(context.Background()) })
	return g
}

// stored is what Redis at addr holds for a user: the state's info ("" when none) and the
// infos of the journal's entries.
func (f *sentinelFixture) stored(t *testing.T, addr string, id presence.UserID) (string, map[string]bool) {
	t.Helper()
	ctx := context.Background()
	c := f.group.Client(addr)
	defer c.Close()
	var info string
	raw, err := c.HGet(ctx, f.states.UserKey(id), "state").Result()
	switch {
	case errors.Is(err, redis.Nil):
	case err != nil:
		t.Fatal(err)
	default:
		var st presence.UserState
		if err := json.Unmarshal([]byte(raw), &st); err != nil {
			t.Fatal(err)
		}
		info = st.Info
	}
	msgs, err := c.XRange(ctx, f.states.JournalKey(id), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	journal := map[string]bool{}
	for _, m := range msgs {
		var e presence.JournalEntry
		if err := json.Unmarshal([]byte(m.Values["entry"].(string)), &e); err != nil {
			t.Fatal(err)
		}
		journal[e.Info] = true
	}
	return info, journal
}

// switchAttempt is one switch of the stream and what its caller saw.
type switchAttempt struct {
	info       string
	start, end time.Time
	err        error
}

// TestSwitchesSurviveASentinelFailover: six users switch in a stream, about 60 a second together,
// through a store that finds its master through Sentinel and waits for one replica of two; the
// master hangs (docker pause), the sentinels promote a replica and make the other replicate
// from it. Every switch the engine
// acknowledged is in the new master (the user's state is the last acknowledged switch, or a
// later one whose caller got an error: an unconfirmed write may stay), its journal entry too
// unless the journal write was logged as failed; every failure was an error the caller saw,
// saying the store is unavailable; the store reconnected to the new master by itself. The
// time during which switches failed is logged.
func TestSwitchesSurviveASentinelFailover(t *testing.T) {
	g := startSentinel(t, lab.SentinelOptions{Replicas: 2, Passwords: true})
	us := users(6)
	f := newSentinelFixture(t, g, 1, us, presence.DefaultSchemaCheckInterval)
	ctx := context.Background()

	var (
		mu       sync.Mutex
		attempts = map[presence.UserID][]switchAttempt{}
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	for _, u := range us {
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
				profile := []string{presence.ProfileAvailable, presence.ProfileDND}[n%2]
				a := switchAttempt{info: fmt.Sprintf("%s #%d", u.ID, n), start: time.Now()}
				sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				_, a.err = f.e.Switch(sctx, presence.SwitchRequest{User: u.ID, Profile: profile, Info: a.info, Source: presence.SourceAPI})
				cancel()
				a.end = time.Now()
				mu.Lock()
				attempts[u.ID] = append(attempts[u.ID], a)
				mu.Unlock()
			}
		})
	}

	time.Sleep(time.Second)
	paused := time.Now()
	if err := g.Pause(ctx, g.FirstMaster); err != nil {
		t.Fatal(err)
	}
	frozen := time.Now() // docker pause has returned: the master answers nothing from here
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	promoted, err := g.WaitForFailover(wctx, g.FirstMaster)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	failedOver := time.Now()
	time.Sleep(2 * time.Second)
	close(stop)
	wg.Wait()

	var (
		acked, failed            int
		firstFail, lastFail      time.Time
		firstOKAfter             time.Time
		missingJournal, notWrote int
		okAfterFailover          bool
	)
	for _, u := range us {
		as := attempts[u.ID]
		lastAcked := -1
		for i, a := range as {
			if a.err == nil {
				acked++
				lastAcked = i
				if a.start.After(frozen) && (firstOKAfter.IsZero() || a.end.Before(firstOKAfter)) {
					firstOKAfter = a.end
				}
				okAfterFailover = okAfterFailover || a.start.After(failedOver)
				continue
			}
			failed++
			if !errors.Is(a.err, presence.ErrStoreUnavailable) {
				t.Errorf("%s: %v; want a store-unavailable error (503)", a.info, a.err)
			}
			if firstFail.IsZero() || a.start.Before(firstFail) {
				firstFail = a.start
			}
			if a.end.After(lastFail) {
				lastFail = a.end
			}
		}
		if lastAcked < 0 {
			t.Fatalf("%s: no switch acknowledged", u.ID)
		}
		info, journal := f.stored(t, promoted, u.ID)
		ok := info == as[lastAcked].info
		for _, a := range as[lastAcked+1:] {
			ok = ok || info == a.info // failed, but its write may have stayed
		}
		if !ok {
			t.Errorf("%s: the new master holds %q; the last acknowledged switch was %q", u.ID, info, as[lastAcked].info)
		}
		for _, a := range as {
			if a.err == nil && !journal[a.info] {
				missingJournal++
			}
		}
		notWrote += len(f.logs.lines("journal not written", "user="+string(u.ID)))
	}
	if missingJournal > notWrote {
		t.Errorf("%d acknowledged switches are not in the journal, %d journal writes were logged as failed", missingJournal, notWrote)
	}
	// The sentinels cannot promote a replica before the master has not answered for
	// down-after (1 s); presenced may hear of the new master before the test sees every
	// sentinel agree.
	if !okAfterFailover {
		t.Fatal("no switch begun after the failover succeeded")
	}
	if !firstOKAfter.After(frozen.Add(time.Second)) {
		t.Errorf("a switch begun after the pause succeeded %v after it, before the sentinels could fail over", firstOKAfter.Sub(frozen))
	}
	if failed == 0 {
		t.Error("no switch failed while the master was paused: the pause did not reach the store")
	}

	// The store is on the new master by itself: the server its connections reach is it.
	c := f.group.Client(promoted)
	defer c.Close()
	want, err := c.Info(ctx, "server").Result()
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.store.Client().Info(ctx, "server").Result()
	if err != nil {
		t.Fatal(err)
	}
	if runID(got) == "" || runID(got) != runID(want) {
		t.Errorf("the store's connection reaches run_id %q, the new master is %q", runID(got), runID(want))
	}
	t.Logf("%d switches acknowledged, %d failed (journal: %d acknowledged without an entry, %d writes logged as failed); "+
		"switches failed from %v after the pause to %v after it; the sentinels agreed on the new master %v after the pause; "+
		"the first switch that began once the master was frozen succeeded %v after the pause",
		acked, failed, missingJournal, notWrote, firstFail.Sub(paused).Round(time.Millisecond), lastFail.Sub(paused).Round(time.Millisecond),
		failedOver.Sub(paused).Round(time.Millisecond), firstOKAfter.Sub(paused).Round(time.Millisecond))
}

func runID(info string) string {
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "run_id:"); ok {
			return v
		}
	}
	return ""
}

// TestUnconfirmedSwitchesAreRefusedNotLost: while the replica does not get the master's
// writes (its replication link held back), a switch through a store that does not wait is
// acknowledged, and the failover then loses it: that is the loss WAIT prevents. The same
// switch through a store that waits for one replica fails with a store-unavailable error naming
// the unconfirmed write, after wait_timeout, and is counted. After the failover the waiting
// store refuses switches while the new master has no replica (the price of the guarantee), and
// switches again once the old master is back as its replica.
func TestUnconfirmedSwitchesAreRefusedNotLost(t *testing.T) {
	g := startSentinel(t, lab.SentinelOptions{ReplicationProxy: true})
	us := users(1)
	alice := us[0].ID
	waits := newSentinelFixture(t, g, 1, us, presence.DefaultSchemaCheckInterval)
	fast := newSentinelFixture(t, g, 0, us, presence.DefaultSchemaCheckInterval)
	ctx := context.Background()
	sw := func(f *sentinelFixture, profile, info string) error {
		_, err := f.e.Switch(ctx, presence.SwitchRequest{User: alice, Profile: profile, Info: info, Source: presence.SourceAPI})
		return err
	}
	// The store that does not wait writes first: the other's WAIT then confirms both, the
	// replica taking the master's stream in order (the other way round, the replication of the
	// last write could still be on its way when the stream is held back below).
	for _, f := range []*sentinelFixture{fast, waits} {
		if err := sw(f, presence.ProfileAvailable, "replicated"); err != nil {
			t.Fatal(err)
		}
	}

	g.Replication.SetHung(true)
	if err := sw(fast, presence.ProfileDND, "acknowledged, not replicated"); err != nil {
		t.Fatalf("the store that does not wait: %v", err)
	}
	start := time.Now()
	err := sw(waits, presence.ProfileDND, "not confirmed")
	took := time.Since(start)
	var u *presence.UnavailableError
	if !errors.As(err, &u) || !errors.Is(err, presence.ErrUnconfirmed) || !strings.Contains(u.Message(), "not confirmed by 1 replica(s) within 500ms") {
		t.Fatalf("switch while the replica lags: %v; want an *UnavailableError for ErrUnconfirmed", err)
	}
	if took < 500*time.Millisecond || took > 5*time.Second {
		t.Errorf("the unconfirmed switch failed after %v; want about wait_timeout (500ms)", took)
	}
	if n := testutil.ToFloat64(waits.states.Metrics().Unconfirmed); n != 1 {
		t.Errorf("presenced_store_unconfirmed_writes_total = %v, want 1", n)
	}

	// The master hangs with the writes the replica never got, and they are dropped. A switch
	// waiting for the replica meanwhile fails after the wait and one read timeout (300 ms).
	hung := make(chan error, 1)
	start = time.Now()
	go func() { hung <- sw(waits, presence.ProfileDND, "master hangs while waiting") }()
	time.Sleep(150 * time.Millisecond)
	if err := g.Pause(ctx, g.FirstMaster); err != nil {
		t.Fatal(err)
	}
	if err := <-hung; !errors.Is(err, presence.ErrStoreUnavailable) {
		t.Errorf("switch waiting for the replica when the master hung: %v; want a store-unavailable error", err)
	}
	// 800 ms and a little on a quiet machine; the bound leaves room for a loaded one (CI runs
	// every package at once) and still tells a bounded failure from a switch left hanging.
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the switch waiting for the replica when the master hung failed after %v; want 800ms and a little", took)
	}
	g.Replication.SetUp(false)
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	promoted, err := g.WaitForFailover(wctx, g.FirstMaster)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if info, _ := fast.stored(t, promoted, alice); info != "replicated" {
		t.Fatalf("without WAIT the new master holds %q; the scenario should have lost the acknowledged switch", info)
	}
	if info, _ := waits.stored(t, promoted, alice); info != "replicated" {
		t.Errorf("with WAIT the new master holds %q, want the last acknowledged switch", info)
	}

	// No replica is left: the waiting store refuses, the other goes on.
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := sw(fast, presence.ProfileDND, "after the failover")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the store that does not wait never reached the new master: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := sw(waits, presence.ProfileDND, "no replica"); !errors.Is(err, presence.ErrUnconfirmed) {
		t.Errorf("switch with no replica left: %v; want ErrUnconfirmed", err)
	}

	// The old master comes back as the new master's replica: confirmed again.
	if err := g.Unpause(ctx, g.FirstMaster); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(time.Minute)
	for {
		err := sw(waits, presence.ProfileDND, "replica back")
		if err == nil {
			break
		}
		if !errors.Is(err, presence.ErrStoreUnavailable) || time.Now().After(deadline) {
			t.Fatalf("switch once the old master is back: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if info, _ := waits.stored(t, g.FirstMaster, alice); info != "replica back" {
		t.Errorf("the replica (the old master) holds %q, want the confirmed switch", info)
	}
}

// TestSchemaIsCheckedOnTheNewMastersConnections: after a failover the store's new connections
// go to the new master, and each checks the schema version before it is used: a new master
// holding another version is refused on the connection, although the StateStore's own last
// check (an hour's interval) still stands and nothing failed in between.
func TestSchemaIsCheckedOnTheNewMastersConnections(t *testing.T) {
	g := startSentinel(t, lab.SentinelOptions{})
	us := users(1)
	f := newSentinelFixture(t, g, 0, us, time.Hour) // 0: after the failover no replica is left
	ctx := context.Background()
	if _, err := f.e.Switch(ctx, presence.SwitchRequest{User: us[0].ID, Profile: presence.ProfileDND, Source: presence.SourceAPI}); err != nil {
		t.Fatal(err)
	}

	if err := g.Pause(ctx, g.FirstMaster); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	promoted, err := g.WaitForFailover(wctx, g.FirstMaster)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	c := g.Client(promoted)
	defer c.Close()
	schemaKey := f.states.Prefix() + "schema"
	if err := c.Set(ctx, schemaKey, "99", 0).Err(); err != nil {
		t.Fatal(err)
	}

	// Ping does not go through the StateStore's check: only the connection's can refuse it.
	deadline := time.Now().Add(30 * time.Second)
	var se *presence.SchemaError
	for {
		err := f.store.Client().Ping(ctx).Err()
		if errors.As(err, &se) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ping after the failover: %v; want the new connection refused for its schema", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if se.Found != "99" {
		t.Errorf("schema error %+v", se)
	}
	_, err = f.e.Switch(ctx, presence.SwitchRequest{User: us[0].ID, Profile: presence.ProfileAvailable, Source: presence.SourceAPI})
	if !errors.As(err, &se) || !errors.Is(err, presence.ErrStoreUnavailable) {
		t.Errorf("switch on the new master of another schema: %v", err)
	}
	if v, _ := c.Get(ctx, schemaKey).Result(); v != "99" {
		t.Errorf("the schema key became %q", v)
	}

	if err := c.Set(ctx, schemaKey, presence.SchemaVersion, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := f.states.CheckSchema(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := f.e.Switch(ctx, presence.SwitchRequest{User: us[0].ID, Profile: presence.ProfileAvailable, Source: presence.SourceAPI}); err != nil {
		t.Errorf("switch once the schema is right: %v", err)
	}
}
