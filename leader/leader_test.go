package leader_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/presenced/presenced/internal/lab"
	"github.com/presenced/presenced/leader"
)

// defaults are the durations of the default options: DefaultLease, and the intervals
// Options documents as derived from it.
var defaults = struct{ Lease, RenewInterval, ClockDriftMargin time.Duration }{
	leader.DefaultLease, leader.DefaultLease / 3, leader.DefaultLease / 10,
}

// TestOneLeaderAmongElectors: two and three electors on one key, whose leader is stopped,
// cut off from Redis, hung and killed in turn. At no moment do two lead, and every term has a
// higher epoch than the one before.
func TestOneLeaderAmongElectors(t *testing.T) {
	for _, n := range []int{2, 3} {
		t.Run(fmt.Sprintf("%d electors", n), func(t *testing.T) {
			t.Parallel()
			asterisk := lab.Unique("pbx")
			type slot struct {
				rdb   *redis.Client
				proxy *lab.Proxy
				node  *node
				gen   int
			}
			s := watch(t)
			slots := make([]*slot, n)
			byName := map[string]*slot{}
			run := func(sl *slot, i int) {
				sl.gen++
				sl.node = start(t, sl.rdb, asterisk, fmt.Sprintf("e%d-%d", i, sl.gen), fast)
				byName[sl.node.name] = sl
				s.add(sl.node)
			}
			for i := range slots {
				rdb, p := proxied(t)
				slots[i] = &slot{rdb: rdb, proxy: p}
				run(slots[i], i)
			}
			lease := time.Second
			newTerm := func(after int64) change {
				return s.waitFor(t, 10*lease, fmt.Sprintf("a term after epoch %d", after), func(c change) bool {
					return c.on && c.epoch > after
				})
			}
			cur := newTerm(0)
			for round, action := range []string{"stop", "cut", "hang", "kill", "stop", "cut", "hang", "kill"} {
				sl := byName[cur.node]
				i := -1
				for j := range slots {
					if slots[j] == sl {
						i = j
					}
				}
				t.Logf("round %d: %s the leader %s (epoch %d)", round, action, cur.node, cur.epoch)
				switch action {
				case "stop": // graceful: the lease is released
					sl.node.stop()
					run(sl, i)
					cur = newTerm(cur.epoch)
				case "cut": // Redis refuses it, then comes back
					sl.proxy.SetUp(false)
					cur = newTerm(cur.epoch)
					sl.proxy.SetUp(true)
				case "hang": // Redis does not answer, then delivers what it held
					sl.proxy.SetHung(true)
					cur = newTerm(cur.epoch)
					sl.proxy.SetHung(false)
				case "kill": // gone without a release
					sl.proxy.SetUp(false)
					sl.node.stop()
					sl.proxy.SetUp(true)
					run(sl, i)
					cur = newTerm(cur.epoch)
				}
			}
			s.epochsIncrease(t)
		})
	}
}

// TestGracefulStopHandsOver: a leader that stops releases the lease, and a standby leads
// within one renew interval instead of waiting for the lease to expire.
func TestGracefulStopHandsOver(t *testing.T) {
	t.Parallel()
	ctx := lab.Context(t)
	rdb := client(t, labAddr(t))
	asterisk := lab.Unique("pbx")
	a := start(t, rdb, asterisk, "a", nil)
	s := watch(t, a)
	ca := s.leads(t, a, time.Time{}, 3*defaults.Lease)
	fa, ok := a.e.Fence()
	if want := (leader.Fence{Key: a.e.Key(), Value: "a " + strconv.FormatInt(ca.epoch, 10), Epoch: ca.epoch}); !ok || fa != want {
		t.Fatalf("a's Fence() = %+v, %v while leading; want %+v", fa, ok, want)
	}
	if v, err := rdb.Get(ctx, fa.Key).Result(); err != nil || v != fa.Value {
		t.Fatalf("the lease key holds %q (%v), a's fence says %q", v, err, fa.Value)
	}
	b := start(t, rdb, asterisk, "b", nil)
	s.add(b)
	if f, ok := b.e.Fence(); ok || f != (leader.Fence{}) {
		t.Fatalf("b's Fence() = %+v, %v while standing by", f, ok)
	}

	// Stop a at a random moment of b's attempts.
	time.Sleep(defaults.RenewInterval + rand.N(defaults.RenewInterval))
	a.stop()
	stopped := time.Now()
	if v, err := rdb.Get(ctx, a.e.Key()).Result(); err == nil && v == "a "+strconv.FormatInt(ca.epoch, 10) {
		t.Fatalf("a stopped but its lease is still in Redis: %q", v)
	}
	if f, ok := a.e.Fence(); ok || f != (leader.Fence{}) {
		t.Fatalf("a's Fence() = %+v, %v after Run returned", f, ok)
	}
	cb := s.leads(t, b, stopped, 2*defaults.Lease)
	if fb, ok := b.e.Fence(); !ok || fb.Epoch != cb.epoch || fb.Value != "b "+strconv.FormatInt(cb.epoch, 10) {
		t.Errorf("b's Fence() = %+v, %v while leading with epoch %d", fb, ok, cb.epoch)
	}
	took := cb.at.Sub(stopped)
	t.Logf("b leads %v after a stopped (renew interval %v)", took.Round(time.Millisecond), defaults.RenewInterval)
	// The slack is for a loaded machine (CI runs every package at once); waiting for the lease
	// to expire instead would take DefaultLease (5 s).
	if slack := time.Second; took > defaults.RenewInterval+slack {
		t.Errorf("b took %v to lead after a released the lease; want at most the renew interval %v (+%v)", took,
			defaults.RenewInterval, slack)
	}
	if cb.epoch <= ca.epoch {
		t.Errorf("b's epoch %d, not above a's %d", cb.epoch, ca.epoch)
	}
	if inst, epoch, err := a.e.Leader(ctx); err != nil || inst != "b" || epoch != cb.epoch {
		t.Errorf("Leader() = %q, %d, %v; want b, %d", inst, epoch, err, cb.epoch)
	}
	if got := a.metric(t, "presenced_leader"); got != 0 {
		t.Errorf("a: presenced_leader %v after stopping", got)
	}
	if got := a.metric(t, "presenced_leader_changes_total"); got != 1 {
		t.Errorf("a: presenced_leader_changes_total %v, want 1", got)
	}
	if got := b.metric(t, "presenced_leader"); got != 1 {
		t.Errorf("b: presenced_leader %v while leading", got)
	}
	if got := b.metric(t, "presenced_leader_epoch"); got != float64(cb.epoch) {
		t.Errorf("b: presenced_leader_epoch %v, want %d", got, cb.epoch)
	}
	terms := a.rec.snapshot()
	if len(terms) != 1 || terms[0].epoch != ca.epoch || terms[0].stopped.IsZero() || terms[0].stopped.After(stopped) {
		t.Errorf("a's callbacks: %+v; want one term of epoch %d stopped before Run returned", terms, ca.epoch)
	}

	b.stop()
	if _, _, err := a.e.Leader(ctx); !errors.Is(err, leader.ErrNoLeader) {
		t.Errorf("Leader() after both stopped: %v, want ErrNoLeader", err)
	}
}

// TestCutOffLeaderStepsDownBeforeItsLeaseExpires: a leader that can no longer reach Redis
// (refused, or hung) stops leading strictly before its lease can expire in Redis, so before
// the standby can take it; it steps down, stands by when Redis is back and leads again when
// the other goes.
func TestCutOffLeaderStepsDownBeforeItsLeaseExpires(t *testing.T) {
	for _, mode := range []string{"refused", "hung"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			ctx := lab.Context(t)
			asterisk := lab.Unique("pbx")
			direct := client(t, labAddr(t))
			viaProxy, p := proxied(t)
			a := start(t, viaProxy, asterisk, "a", nil)
			s := watch(t, a)
			ca := s.leads(t, a, time.Time{}, 3*defaults.Lease)
			b := start(t, direct, asterisk, "b", nil)
			s.add(b)
			waitFor(t, defaults.Lease, "b standing by", func() bool {
				return b.metric(t, "presenced_leader_epoch") == float64(ca.epoch)
			})
			valueA := "a " + strconv.FormatInt(ca.epoch, 10)

			time.Sleep(rand.N(defaults.RenewInterval)) // any moment of a's renewals
			cut := time.Now()
			if mode == "refused" {
				p.SetUp(false)
			} else {
				p.SetHung(true)
			}

			// Watch the lease in Redis until b holds it: the earliest moment it can expire is
			// (when the read was sent) + PTTL.
			var expiry time.Time
			for {
				sent := time.Now()
				var get *redis.StringCmd
				var pttl *redis.DurationCmd
				if _, err := direct.TxPipelined(ctx, func(tx redis.Pipeliner) error {
					get = tx.Get(ctx, a.e.Key())
					pttl = tx.PTTL(ctx, a.e.Key())
					return nil
				}); err != nil && !errors.Is(err, redis.Nil) {
					t.Fatal(err)
				}
				if get.Val() != valueA {
					break
				}
				if e := sent.Add(pttl.Val() - time.Millisecond); expiry.IsZero() || e.Before(expiry) {
					expiry = e // PTTL is rounded down to a ms
				}
				time.Sleep(5 * time.Millisecond)
			}
			off := s.stopsLeading(t, a, cut, defaults.Lease)
			on := s.leads(t, b, cut, defaults.Lease)
			t.Logf("cut at 0; a stopped leading at %v, its lease expired in Redis at %v at the earliest, b leads at %v",
				off.at.Sub(cut).Round(time.Millisecond), expiry.Sub(cut).Round(time.Millisecond),
				on.at.Sub(cut).Round(time.Millisecond))
			if !off.at.Before(expiry) {
				t.Errorf("a still led %v after its lease could expire in Redis", off.at.Sub(expiry))
			}
			if !off.at.Before(on.at) {
				t.Errorf("b led %v before a stopped", off.at.Sub(on.at))
			}
			if on.epoch <= ca.epoch {
				t.Errorf("b's epoch %d, a's %d", on.epoch, ca.epoch)
			}
			terms := a.rec.snapshot()
			if len(terms) != 1 || terms[0].ctxDone.IsZero() || !terms[0].ctxDone.Before(on.at) {
				t.Errorf("a's term: %+v; want its context ended before b led (%v)", terms, on.at)
			}
			waitFor(t, defaults.Lease, "a's OnStoppedLeading", func() bool {
				ts := a.rec.snapshot()
				return len(ts) == 1 && !ts[0].stopped.IsZero()
			})
			if got := a.metric(t, "presenced_leader_lease_renew_failures_total"); got < 1 {
				t.Errorf("a: presenced_leader_lease_renew_failures_total %v", got)
			}
			if got := a.metric(t, "presenced_leader"); got != 0 {
				t.Errorf("a: presenced_leader %v after stepping down", got)
			}

			// Redis is back: a stands by (it sees b's term), and leads when b goes.
			if mode == "refused" {
				p.SetUp(true)
			} else {
				p.SetHung(false)
			}
			waitFor(t, 3*defaults.RenewInterval+time.Second, "a standing by", func() bool {
				return a.metric(t, "presenced_leader_epoch") == float64(on.epoch)
			})
			if inst, epoch, err := a.e.Leader(ctx); err != nil || inst != "b" || epoch != on.epoch {
				t.Fatalf("a: Leader() = %q, %d, %v; want b, %d", inst, epoch, err, on.epoch)
			}
			b.stop()
			again := s.leads(t, a, time.Now(), defaults.Lease)
			if again.epoch <= on.epoch {
				t.Errorf("a leads again with epoch %d, not above b's %d", again.epoch, on.epoch)
			}
			if got := a.metric(t, "presenced_leader_changes_total"); got != 2 {
				t.Errorf("a: presenced_leader_changes_total %v, want 2", got)
			}
			s.epochsIncrease(t)
		})
	}
}

// TestLeaseKeyDeletedByHand: when the lease key is deleted while a leads, a notices at its
// next renewal and steps down; whoever takes the lease next (the standby b, or a again) leads
// only when a's lease would have ended.
func TestLeaseKeyDeletedByHand(t *testing.T) {
	t.Parallel()
	ctx := lab.Context(t)
	rdb := client(t, labAddr(t))
	asterisk := lab.Unique("pbx")
	a := start(t, rdb, asterisk, "a", nil)
	s := watch(t, a)
	ca := s.leads(t, a, time.Time{}, 3*defaults.Lease)
	b := start(t, rdb, asterisk, "b", nil)
	s.add(b)
	waitFor(t, defaults.Lease, "b standing by", func() bool {
		return b.metric(t, "presenced_leader_epoch") == float64(ca.epoch)
	})

	time.Sleep(rand.N(defaults.RenewInterval))
	// Delete it, and read how long a's lease had left by Redis's own clock.
	var left time.Duration
	deleted := time.Now()
	res, err := rdb.Eval(ctx, `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('DEL', KEYS[1])
return tonumber(redis.call('GET', KEYS[2])) - now`, []string{a.e.Key(), a.e.Key() + ":until"}).Int64()
	if err != nil {
		t.Fatal(err)
	}
	left = time.Duration(res) * time.Millisecond

	off := s.stopsLeading(t, a, deleted, defaults.Lease)
	on := s.waitFor(t, 2*defaults.Lease, "a new term", func(c change) bool { return c.on && c.epoch > ca.epoch })
	t.Logf("deleted at 0 with %v left of a's lease; a stepped down at %v, %s leads at %v", left,
		off.at.Sub(deleted).Round(time.Millisecond), on.node, on.at.Sub(deleted).Round(time.Millisecond))
	if took := off.at.Sub(deleted); took > defaults.RenewInterval+time.Second { // slack for a loaded machine
		t.Errorf("a stepped down %v after the deletion; want it at its next renewal (every %v)", took,
			defaults.RenewInterval)
	}
	if !off.at.Before(on.at) {
		t.Errorf("%s led %v before a stopped", on.node, off.at.Sub(on.at))
	}
	if on.at.Before(deleted.Add(left)) {
		t.Errorf("%s led at %v, before a's lease would have ended (%v)", on.node, on.at.Sub(deleted), left)
	}
	s.epochsIncrease(t)
}

// TestRedisRestartedWhileLeading: Redis restarts and loses every key. The leader notices at
// its next renewal and steps down; whoever takes the lease next (the standby b, or a again)
// has no record of the earlier leases and leads only one whole lease later, with a higher
// epoch all the same.
func TestRedisRestartedWhileLeading(t *testing.T) {
	// Not parallel: the restart cuts every test's connections.
	rdb := client(t, labAddr(t))
	asterisk := lab.Unique("pbx")
	a := start(t, rdb, asterisk, "a", nil)
	s := watch(t, a)
	ca := s.leads(t, a, time.Time{}, 3*defaults.Lease)
	b := start(t, rdb, asterisk, "b", nil)
	s.add(b)
	waitFor(t, defaults.Lease, "b standing by", func() bool {
		return b.metric(t, "presenced_leader_epoch") == float64(ca.epoch)
	})

	time.Sleep(rand.N(defaults.RenewInterval))
	restarted := time.Now()
	if err := env.RestartRedis(lab.Context(t)); err != nil {
		t.Fatal(err)
	}
	off := s.stopsLeading(t, a, restarted, defaults.Lease)
	on := s.waitFor(t, 3*defaults.Lease, "a new term", func(c change) bool { return c.on && c.at.After(off.at) })
	t.Logf("restarted at 0; a stepped down at %v, %s leads at %v with epoch %d",
		off.at.Sub(restarted).Round(time.Millisecond), on.node, on.at.Sub(restarted).Round(time.Millisecond), on.epoch)
	// a's deadline was at least Lease − margin − RenewInterval away: stepping down before it
	// means a noticed.
	if took, bound := off.at.Sub(restarted), defaults.Lease-defaults.ClockDriftMargin-defaults.RenewInterval; took >= bound {
		t.Errorf("a stepped down %v after the restart; want it to notice before its deadline (%v)", took, bound)
	}
	if on.at.Before(restarted.Add(defaults.Lease)) {
		t.Errorf("%s led %v after the restart; want it to wait one whole lease (%v)", on.node, on.at.Sub(restarted),
			defaults.Lease)
	}
	if on.epoch <= ca.epoch {
		t.Errorf("%s's epoch %d after Redis lost its data, not above the last %d", on.node, on.epoch, ca.epoch)
	}
	if terms := a.rec.snapshot(); len(terms) == 0 || terms[0].stopped.IsZero() {
		t.Errorf("a's callbacks: %+v; want its first term stopped", terms)
	}
	s.epochsIncrease(t)
}

// waitFor polls cond every 10 ms for up to timeout.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
