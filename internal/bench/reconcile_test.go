package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/presenced/presenced/presence"
)

// rcSize sizes one run of TestReconcile.
type rcSize struct {
	users     int // users in 10 queues each: the full size
	fewer     int // the round trips of a full reconcile are compared between fewer and users
	noPersist int // users restored after a restart with persistentmembers = no
	rounds    int // in-sync reconciles (and as many raw reads) timed
}

// rcSizes is the small run by default (in CI: a few seconds and every assertion), the
// benchmark of docs/BENCHMARKS.md with PRESENCED_RECONCILE_BENCH=1, and any number of users
// with PRESENCED_RECONCILE_USERS=n.
func rcSizes(t *testing.T) rcSize {
	t.Helper()
	s := rcSize{users: 400, fewer: 200, noPersist: 100, rounds: 3}
	if os.Getenv("PRESENCED_RECONCILE_BENCH") == "1" {
		s = rcSize{users: 10000, fewer: 1000, noPersist: 1000, rounds: 3}
	}
	if v := os.Getenv("PRESENCED_RECONCILE_USERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 100 {
			t.Fatalf("PRESENCED_RECONCILE_USERS=%q: want a number of users, at least 100", v)
		}
		s.users, s.fewer, s.noPersist = n, n/10, min(n/10, 1000)
	}
	return s
}

// TestReconcile measures the full reconcile (Engine.CheckAll) of users × 10 queues against
// the lab Asterisk, set up in bulk (rcLoadPBX): the wall time on a PBX in sync and the AMI
// round trips per session (which must not grow with the number of users), compared with the
// same reads sent by the thinnest client; the repair of members removed and unpaused by hand;
// and the time from Asterisk fully booted, after "core restart now", to every user checked and
// in sync, with persistentmembers = yes (Asterisk restores the members) and = no (presenced
// adds them all). It fails when a reconcile of a PBX in sync repairs anything, when the round
// trips differ between the two sizes, when the hand-made drift is not repaired exactly, or
// when anything is left out of sync.
//
//	go test -count=1 -run TestReconcile -v ./internal/bench
//	PRESENCED_RECONCILE_BENCH=1 go test -count=1 -timeout 2h -run TestReconcile -v ./internal/bench
func TestReconcile(t *testing.T) {
	sz := rcSizes(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Hour)
	defer cancel()
	naming := presence.DefaultNaming()
	cat, err := presence.NewCatalogFrom(presence.CatalogConfig{Users: rcUsers(sz.users), Profiles: rcProfiles()})
	if err != nil {
		t.Fatal(err)
	}
	states := rcStates(t)
	r := newRCRig(t, cat, states)
	r.start(t)
	ds := rcDesire(cat, naming)
	members := 0
	for _, d := range ds {
		members += len(d.target.Queues)
	}

	// Setup: Redis first (the states of fewer users: the rest are saved after the first
	// round-trip count), then the PBX in bulk.
	start := time.Now()
	if err := rcSaveStates(ctx, states, ds[:sz.fewer]); err != nil {
		t.Fatal(err)
	}
	redisTook := time.Since(start)
	restart, dbputs := rcLoadPBX(t, ctx, r, ds)
	raw := rcDialRaw(t)
	rcVerifyPBX(t, raw, ds)
	t.Logf("setup: %d users × %d queues = %d members; %d states saved in %v; restart loading the members from astdb until FullyBooted %v; %d DBPut (active profile) pipelined %v; whole setup %v",
		sz.users, len(rcQueues()), members, sz.fewer, redisTook.Round(time.Millisecond), restart.Round(time.Millisecond),
		sz.users, dbputs.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))

	// Round trips: a reconcile of fewer users, then of all of them, in sync.
	reconcile := func(what string, drifted int) (presence.CheckSummary, time.Duration, map[string]int, map[string]int) {
		t.Helper()
		m0, r0 := rcActions(t, r.mainReg, r.writeReg), rcActions(t, r.readReg)
		start := time.Now()
		sum, err := r.engine.CheckAll(ctx)
		took := time.Since(start)
		if err != nil {
			rcAsteriskLog(t)
			t.Fatalf("%s: %v", what, err)
		}
		main, read := rcDiff(m0, rcActions(t, r.mainReg, r.writeReg)), rcDiff(r0, rcActions(t, r.readReg))
		if sum.Drifted != drifted || sum.Repaired != drifted || sum.Failed != 0 {
			t.Fatalf("%s: %+v; want %d drifted, %d repaired, 0 failed", what, sum, drifted, drifted)
		}
		return sum, took, main, read
	}
	sum, took, mainFew, readFew := reconcile(fmt.Sprintf("reconcile of %d users in sync", sz.fewer), 0)
	t.Logf("in sync, %d users: %v (engine %v); round trips: writing sessions %d %v, read %d %v",
		sum.Users, took.Round(time.Millisecond), sum.Took.Round(time.Millisecond), rcTotal(mainFew), mainFew, rcTotal(readFew), readFew)
	start = time.Now()
	if err := rcSaveStates(ctx, states, ds[sz.fewer:]); err != nil {
		t.Fatal(err)
	}
	t.Logf("setup: the other %d states saved in %v", sz.users-sz.fewer, time.Since(start).Round(time.Millisecond))
	sum, took, mainAll, readAll := reconcile(fmt.Sprintf("reconcile of %d users in sync", sz.users), 0)
	t.Logf("in sync, %d users: %v (engine %v); round trips: writing sessions %d %v, read %d %v",
		sum.Users, took.Round(time.Millisecond), sum.Took.Round(time.Millisecond), rcTotal(mainAll), mainAll, rcTotal(readAll), readAll)
	if sum.Users != sz.users {
		t.Fatalf("the reconcile checked %d users, want %d", sum.Users, sz.users)
	}
	if rcTotal(mainFew) != rcTotal(mainAll) || rcTotal(readFew) != rcTotal(readAll) {
		t.Errorf("round trips grow with the users: %d users: writing sessions %v, read %v; %d users: writing sessions %v, read %v",
			sz.fewer, mainFew, readFew, sz.users, mainAll, readAll)
	}

	// Wall time in sync, rounds taking turns with the thinnest client sending the reads a
	// bulk reconcile of these profiles needs (every queue member, the PROFILE family).
	rawReads := []string{"Action: QueueStatus\r\n\r\n", "Action: DBGetTree\r\nFamily: PROFILE\r\n\r\n"}
	// Where the reconcile's time goes: presenced's QueueStatus and DBGetTree round trips (read
	// concurrently), the queue concern's observation (the QueueStatus and its parsing), and
	// the states read from Redis in one LoadMany.
	var engineTimes, rawTimes, queueStatus, dbGetTree, queueObserve, loadMany []float64
	hist := func() (qs, tree, obs float64) {
		return rcHistSum(t, r.readReg, "presenced_ami_action_duration_seconds", "action", "QueueStatus"),
			rcHistSum(t, r.readReg, "presenced_ami_action_duration_seconds", "action", "DBGetTree"),
			rcHistSum(t, r.concernReg, "presenced_queue_observe_duration_seconds", "", "")
	}
	ids := make([]presence.UserID, len(ds))
	for i, d := range ds {
		ids[i] = d.user.ID
	}
	for i := range sz.rounds {
		for turn := range 2 {
			if (i+turn)%2 == 0 {
				start := time.Now()
				if err := raw.lists(rawReads, nil); err != nil {
					t.Fatal(err)
				}
				rawTimes = append(rawTimes, time.Since(start).Seconds())
			} else {
				qs0, tree0, obs0 := hist()
				stop := rcProfile(t, i)
				_, took, _, _ := reconcile("reconcile in sync", 0)
				stop()
				qs1, tree1, obs1 := hist()
				engineTimes = append(engineTimes, took.Seconds())
				queueStatus = append(queueStatus, qs1-qs0)
				dbGetTree = append(dbGetTree, tree1-tree0)
				queueObserve = append(queueObserve, obs1-obs0)
				start := time.Now()
				if _, err := states.LoadMany(ctx, ids); err != nil {
					t.Fatal(err)
				}
				loadMany = append(loadMany, time.Since(start).Seconds())
			}
		}
	}
	t.Logf("in sync, %d users, where the time goes (medians): presenced's QueueStatus %.3f s, DBGetTree %.3f s (concurrent), queue concern's observation %.3f s; Redis LoadMany of every state (apart) %.3f s",
		sz.users, median(queueStatus), median(dbGetTree), median(queueObserve), median(loadMany))
	start = time.Now()
	if err := raw.lists([]string{"Action: DeviceStateList\r\n\r\n", "Action: PresenceStateList\r\n\r\n"}, nil); err != nil {
		t.Fatal(err)
	}
	lampsTook := time.Since(start)
	t.Logf("in sync, %d users, %d rounds: reconcile %s s (median %.3f s); raw QueueStatus + DBGetTree %s s (median %.3f s); reconcile ÷ raw %.2f; raw DeviceStateList + PresenceStateList (not needed by these profiles) %v",
		sz.users, sz.rounds, rcSeconds(engineTimes), median(engineTimes), rcSeconds(rawTimes), median(rawTimes),
		median(engineTimes)/median(rawTimes), lampsTook.Round(time.Millisecond))

	// Drift: members removed (1 % of all) and unpaused by hand. The thinnest client first
	// sends the very actions a repair needs (the raw limit), then the same drift is made again
	// and the reconcile repairs it.
	drift, fix, users := rcDrift(ds)
	start = time.Now()
	if errs, err := raw.do(drift); err != nil || errs != 0 {
		t.Fatalf("drift by hand: %d errors, %v", errs, err)
	}
	driftTook := time.Since(start)
	start = time.Now()
	if errs, err := raw.do(fix); err != nil || errs != 0 {
		t.Fatalf("raw repair: %d errors, %v", errs, err)
	}
	rawFix := time.Since(start)
	t.Logf("drift: %d members removed and unpaused by hand (%d users) in %v; raw limit: the %d actions that repair it, pipelined, %v",
		len(drift), users, driftTook.Round(time.Millisecond), len(fix), rawFix.Round(time.Millisecond))
	rcVerifyPBX(t, raw, ds)
	// The same over as many thin clients as the engine's queue changes go over, each action
	// over the one its interface picks.
	raws := make([]*rcRaw, r.queueSessions())
	for i := range raws {
		raws[i] = rcDialRaw(t)
	}
	if errs, err := raw.do(drift); err != nil || errs != 0 {
		t.Fatalf("drift by hand: %d errors, %v", errs, err)
	}
	start = time.Now()
	if errs, err := rcDoSplit(raws, fix); err != nil || errs != 0 {
		t.Fatalf("raw repair over %d sessions: %d errors, %v", len(raws), errs, err)
	}
	rawFixN := time.Since(start)
	t.Logf("drift: the same %d actions over %d sessions, pipelined, %v", len(fix), len(raws), rawFixN.Round(time.Millisecond))
	rcVerifyPBX(t, raw, ds)
	if errs, err := raw.do(drift); err != nil || errs != 0 {
		t.Fatalf("drift by hand: %d errors, %v", errs, err)
	}
	sum, took, mainDrift, readDrift := reconcile("reconcile after drift by hand", users)
	t.Logf("drift: reconcile %v (engine %v), %d users repaired; round trips: writing sessions %d %v, read %d %v; reconcile ÷ raw %.2f, ÷ raw over %d sessions %.2f",
		took.Round(time.Millisecond), sum.Took.Round(time.Millisecond), sum.Repaired,
		rcTotal(mainDrift), mainDrift, rcTotal(readDrift), readDrift, took.Seconds()/rawFix.Seconds(),
		len(raws), took.Seconds()/rawFixN.Seconds())
	rcVerifyPBX(t, raw, ds)
	reconcile("reconcile after the repair", 0)

	// Restart with persistentmembers = yes: Asterisk restores the members itself.
	rcRestartReconcile(t, ctx, r, "persistentmembers = yes", 0)
	rcVerifyPBX(t, rcDialRaw(t), ds)

	// Restart with persistentmembers = no: every member is gone, presenced adds them all back.
	if err := env.SetPersistentMembers(ctx, false); err != nil {
		t.Fatal(err)
	}
	few, err := presence.NewCatalogFrom(presence.CatalogConfig{Users: rcUsers(sz.noPersist), Profiles: rcProfiles()})
	if err != nil {
		t.Fatal(err)
	}
	r2 := newRCRig(t, few, states)
	// The raw limit first: after a restart of its own, the thinnest client adds every member
	// with the very QueueAdds presenced sends.
	rcRestart(t, ctx, r2.mainReady)
	raw = rcDialRaw(t)
	adds := rcQueueAdds(ds[:sz.noPersist])
	start = time.Now()
	if errs, err := raw.do(adds); err != nil || errs != 0 {
		t.Fatalf("raw QueueAdds: %d errors, %v", errs, err)
	}
	rawAdds := time.Since(start)
	rcVerifyPBX(t, raw, ds[:sz.noPersist])
	r2.start(t) // only now: it checks everyone as it starts, which the raw limit must not meet
	// That check must be over before the restart below: cut short by the restart, it is
	// retried, and the retry races the reconcile measured (it repaired every user itself once,
	// leaving the measured one 1,000 drifted and none repaired).
	if sum, err := r2.engine.CheckAll(ctx); err != nil || sum.Drifted != 0 {
		t.Fatalf("the check after the start: %+v, %v; want nothing drifted", sum, err)
	}
	took = rcRestartReconcile(t, ctx, r2, "persistentmembers = no", sz.noPersist)
	t.Logf("restart, persistentmembers = no: raw limit (the same %d QueueAdds, pipelined, on an empty PBX) %v: reconcile ÷ raw %.2f",
		len(adds), rawAdds.Round(time.Millisecond), took.Seconds()/rawAdds.Seconds())
	rcVerifyPBX(t, rcDialRaw(t), ds[:sz.noPersist])
	if err := env.SetPersistentMembers(ctx, true); err != nil {
		t.Fatal(err)
	}
}

// rcProfile starts the CPU profile of PRESENCED_RECONCILE_PROFILE for round i, if asked
// for, and returns what stops it: round 0 writes to the file named, round i to that name
// with .i after it (go tool pprof merges the files it is given).
func rcProfile(t *testing.T, round int) (stop func()) {
	t.Helper()
	name := os.Getenv("PRESENCED_RECONCILE_PROFILE")
	if name == "" {
		return func() {}
	}
	if round > 0 {
		name = fmt.Sprintf("%s.%d", name, round)
	}
	return cpuProfile(t, name)
}

// rcRestartReconcile restarts Asterisk and does what the daemon does once it is ready again
// (cmd/presenced asteriskReady): wait for both AMI sessions, forget the phones' states,
// reconcile every user, then read the phones' states. It expects drifted users (all
// repaired), reports the time from FullyBooted (the main session's OnReady) to every user
// checked and in sync, and returns how long the reconcile took.
func rcRestartReconcile(t *testing.T, ctx context.Context, r *rcRig, what string, drifted int) time.Duration {
	t.Helper()
	for _, rd := range r.ready() {
		rd.drain()
	}
	start := time.Now()
	if _, err := env.CLI(ctx, "core restart now"); err != nil && !strings.Contains(err.Error(), "exit code") {
		t.Fatalf("core restart now: %v", err)
	}
	booted, err := r.mainReady.next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	readReady, err := r.readReady.next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, rd := range r.writeReady {
		if _, err := rd.next(ctx); err != nil {
			t.Fatal(err)
		}
	}
	m0, r0 := rcActions(t, r.mainReg, r.writeReg), rcActions(t, r.readReg)
	r.devices.Reset()
	reconcile := time.Now()
	sum, err := r.engine.CheckAll(ctx)
	done := time.Now()
	if err != nil {
		rcAsteriskLog(t)
		t.Fatalf("%s: reconcile after the restart: %v", what, err)
	}
	main, read := rcDiff(m0, rcActions(t, r.mainReg, r.writeReg)), rcDiff(r0, rcActions(t, r.readReg))
	if err := r.devices.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	devices := time.Since(done)
	t.Logf("restart, %s, %d users: restart to FullyBooted %v; FullyBooted to every user in sync %v (read session ready +%v, reconcile %v: %d repaired; round trips: writing sessions %d %v, read %d %v); then the phones' states (DeviceStateList) %v",
		what, sum.Users, booted.Sub(start).Round(time.Millisecond), done.Sub(booted).Round(time.Millisecond),
		max(readReady.Sub(booted), 0).Round(time.Millisecond), done.Sub(reconcile).Round(time.Millisecond),
		sum.Repaired, rcTotal(main), main, rcTotal(read), read, devices.Round(time.Millisecond))
	if sum.Drifted != drifted || sum.Repaired != drifted || sum.Failed != 0 {
		t.Fatalf("%s: reconcile after the restart: %+v; want %d drifted, %d repaired, 0 failed", what, sum, drifted, drifted)
	}
	again, err := r.engine.CheckAll(ctx)
	if err != nil || again.Drifted != 0 || again.Failed != 0 {
		t.Fatalf("%s: second reconcile after the restart: %+v, %v; want nothing drifted", what, again, err)
	}
	return done.Sub(reconcile)
}

// rcDrift is a drift made by hand: every tenth user (from the fourth) removed from one queue
// (1 % of all members), every tenth user at lunch unpaused in one queue. It returns the
// actions that make it, the actions that repair it (what presenced's plan sends), and how many
// users it touches.
func rcDrift(ds []rcDesired) (drift, fix []string, users int) {
	qs := rcQueues()
	for i, d := range ds {
		switch {
		case i%10 == 3:
			q := qs[(i/10)%len(qs)]
			m := d.target.Queues[q]
			drift = append(drift, fmt.Sprintf("Action: QueueRemove\r\nQueue: %s\r\nInterface: %s\r\n\r\n", q, m.Interface))
			fix = append(fix, rcQueueAdd(q, m))
		case i%50 == 0 && rcLunch(i):
			q := qs[(i/50)%len(qs)]
			m := d.target.Queues[q]
			drift = append(drift, fmt.Sprintf("Action: QueuePause\r\nQueue: %s\r\nInterface: %s\r\nPaused: false\r\n\r\n", q, m.Interface))
			fix = append(fix, fmt.Sprintf("Action: QueuePause\r\nQueue: %s\r\nInterface: %s\r\nPaused: true\r\nReason: %s\r\n\r\n", q, m.Interface, m.Reason))
		default:
			continue
		}
		users++
	}
	return drift, fix, users
}

// rcAsteriskLog logs what the Asterisk console said about AMI sessions and problems, for a
// reconcile that failed.
func rcAsteriskLog(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log, err := env.AsteriskLog(ctx)
	if err != nil {
		t.Log(err)
		return
	}
	var lines []string
	for _, l := range strings.Split(log, "\n") {
		if (strings.Contains(l, "WARNING") || strings.Contains(l, "ERROR") || strings.Contains(l, "manager")) &&
			!strings.Contains(l, "refcount") {
			lines = append(lines, l)
		}
	}
	t.Logf("Asterisk console, warnings and errors (last 40):\n%s", strings.Join(lines[max(len(lines)-40, 0):], "\n"))
}

// rcSeconds formats durations in seconds, in the order measured.
func rcSeconds(xs []float64) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.FormatFloat(x, 'f', 3, 64)
	}
	return strings.Join(s, ", ")
}
