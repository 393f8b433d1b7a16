package leader_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/presenced/presenced/internal/lab"
	"github.com/presenced/presenced/leader"
	"github.com/presenced/presenced/presence"
)

// replicas stands for the replicas behind Options.Confirm, on a Redis without any: every write
// is made, as a master makes it, and then confirmed, or (while down) reported not confirmed,
// as presence.Redis.Confirmed reports a WAIT too few replicas answered in time. Only the
// elector's side is under test here; TestLeaseAcrossSentinelFailover and
// TestUnconfirmedLeaseOutlivesAFailover use real replicas.
type replicas struct {
	rdb  *redis.Client
	key  string // the lease key
	down atomic.Bool

	confirmed atomic.Int32 // writes confirmed
	refused   atomic.Int32 // writes made, then reported not confirmed
	passed    atomic.Int32 // writes that returned an error: passed back, nothing waited for
	// stale counts acquisitions that found the lease key held: with a single elector, one it
	// took unconfirmed and did not release.
	stale atomic.Int32
}

var errNotConfirmed = errors.New("write not confirmed by the replicas")

func (r *replicas) confirm(ctx context.Context, op string, write func(redis.Cmdable) error) error {
	if strings.Contains(op, "acquire") && r.rdb.Exists(ctx, r.key).Val() == 1 {
		r.stale.Add(1)
	}
	if err := write(r.rdb); err != nil {
		r.passed.Add(1)
		return err
	}
	if r.down.Load() {
		r.refused.Add(1)
		return errNotConfirmed
	}
	r.confirmed.Add(1)
	return nil
}

// through makes an elector write through r.
func through(r *replicas) func(*leader.Options) {
	return func(o *leader.Options) { o.Confirm = r.confirm }
}

// TestUnconfirmedWritesDoNotLead: an elector whose acquisitions are not confirmed never leads
// and releases each lease it took; once they are, it leads. A standby's attempts, which write
// nothing, are not waited for. A leader whose renewals are not confirmed steps down at its
// local deadline (they extended nothing), and the standby leads after it, never beside it.
func TestUnconfirmedWritesDoNotLead(t *testing.T) {
	t.Parallel()
	asterisk := lab.Unique("pbx")
	rdb := client(t, labAddr(t))
	key := leader.DefaultPrefix + "leader:" + asterisk
	ra := &replicas{rdb: rdb, key: key}
	ra.down.Store(true)
	a := start(t, rdb, asterisk, "a", func(o *leader.Options) { fast(o); through(ra)(o) })
	s := watch(t, a)
	const lease = time.Second
	waitFor(t, 10*lease, "three unconfirmed acquisitions", func() bool { return ra.refused.Load() >= 3 })
	if h := s.history(); len(h) > 0 {
		t.Fatalf("a led on unconfirmed acquisitions: %v", h)
	}
	if n := ra.stale.Load(); n > 0 {
		t.Errorf("%d acquisitions found the lease a had taken unconfirmed still held: it was not released", n)
	}
	if got := a.metric(t, "presenced_leader_changes_total"); got != 0 {
		t.Errorf("a: presenced_leader_changes_total %v", got)
	}

	// Confirmed: a leads (after the :until its attempts left, at most a lease).
	ra.down.Store(false)
	on := s.leads(t, a, time.Time{}, 3*lease)
	rb := &replicas{rdb: rdb, key: key}
	b := start(t, rdb, asterisk, "b", func(o *leader.Options) { fast(o); through(rb)(o) })
	s.add(b)
	waitFor(t, 5*lease, "b standing by", func() bool { return b.metric(t, "presenced_leader_epoch") == float64(on.epoch) })
	waitFor(t, 5*lease, "b's attempts", func() bool { return rb.passed.Load() >= 3 })
	if n := rb.confirmed.Load() + rb.refused.Load(); n != 0 {
		t.Errorf("b's attempts found the lease held, yet %d were waited for", n)
	}

	// a's renewals go on in Redis but are not confirmed: its deadline stays where the last
	// confirmed one put it, and a steps down then.
	time.Sleep(rand.N(lease / 3))
	down := time.Now()
	ra.down.Store(true)
	off := s.stopsLeading(t, a, down, 3*lease)
	next := s.leads(t, b, down, 3*lease)
	if bound := lease - lease/10; off.at.Sub(down) > bound+250*time.Millisecond {
		t.Errorf("a stepped down %v after its renewals were no longer confirmed; want at most %v (Lease − ClockDriftMargin)",
			off.at.Sub(down), bound)
	}
	if got := a.metric(t, "presenced_leader_lease_renew_failures_total"); got < 1 {
		t.Errorf("a: presenced_leader_lease_renew_failures_total %v", got)
	}
	if next.epoch <= on.epoch {
		t.Errorf("b leads with epoch %d, not above a's %d", next.epoch, on.epoch)
	}
	t.Logf("renewals unconfirmed from 0: a stepped down at %v, b led at %v",
		off.at.Sub(down).Round(time.Millisecond), next.at.Sub(down).Round(time.Millisecond))
}

// startSentinel starts a lab Sentinel group for the test.
func startSentinel(t *testing.T, opts lab.SentinelOptions) *lab.Sentinel {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	g, err := env.StartSentinel(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close(context.Background()) })
	return g
}

// openStore opens presenced's store (as presenced does, with 300 ms timeouts so that a hung
// master is given up quickly) on g through its sentinels, or on the Redis server at addr
// directly when addr is set; its confirmed writes wait for wait replicas for 500 ms.
func openStore(t *testing.T, g *lab.Sentinel, addr string, wait int) *presence.Redis {
	t.Helper()
	opts := presence.RedisOptions{Password: g.Password, WaitReplicas: wait, WaitTimeout: 500 * time.Millisecond,
		DialTimeout: 300 * time.Millisecond, ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond,
		Logger: lab.Logger(t).With("store", addr)}
	if addr != "" {
		opts.URL = "redis://" + addr
	} else {
		opts.Sentinel = &presence.SentinelOptions{MasterName: g.MasterName, Addresses: g.Addresses, Password: g.SentinelPassword}
	}
	st, err := presence.OpenRedis(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close(context.Background()) })
	return st
}

// confirmedBy makes an elector take and renew its lease through st.Confirmed, as presenced does.
func confirmedBy(st *presence.Redis) func(*leader.Options) {
	return func(o *leader.Options) { o.Confirm = st.Confirmed }
}

// current is the term the sampler saw start last, and whether it still runs.
func current(s *sampler) (change, bool) {
	var last change
	running := map[string]bool{}
	for _, c := range s.history() {
		running[c.node] = c.on
		if c.on {
			last = c
		}
	}
	return last, last.node != "" && running[last.node]
}

// TestLeaseAcrossSentinelFailover: two electors, each on its own presenced store that finds the
// master through Sentinel and confirms the lease's writes on one replica of two (the default
// options otherwise: a 5 s lease). The master hangs (docker pause) and later, once it is back
// as a replica, the new master is killed (docker kill). Each failover either keeps the lease
// (the leader renews it on the new master) or the leader steps down and a leader takes it
// again; never do two lead at once, a leader is back within the failover and two leases, every
// new term has a higher epoch, and the new master holds the lease of the leader.
func TestLeaseAcrossSentinelFailover(t *testing.T) {
	t.Parallel()
	g := startSentinel(t, lab.SentinelOptions{Replicas: 2, Passwords: true})
	ctx := lab.Context(t)
	asterisk := lab.Unique("pbx")
	sa, sb := openStore(t, g, "", 1), openStore(t, g, "", 1)
	a := start(t, sa.Client(), asterisk, "a", confirmedBy(sa))
	s := watch(t, a)
	first := s.leads(t, a, time.Time{}, 3*defaults.Lease) // a new store: one lease
	b := start(t, sb.Client(), asterisk, "b", confirmedBy(sb))
	s.add(b)
	waitFor(t, defaults.Lease, "b standing by", func() bool { return b.metric(t, "presenced_leader_epoch") == float64(first.epoch) })

	master := g.FirstMaster
	for _, how := range []string{"paused", "killed"} {
		before, ok := current(s)
		if !ok {
			t.Fatalf("%s: no leader before the failover: %v", how, s.history())
		}
		time.Sleep(rand.N(defaults.RenewInterval)) // any moment of the leader's renewals
		failed := time.Now()
		var err error
		if how == "paused" {
			err = g.Pause(ctx, master)
		} else {
			err = g.Kill(ctx, master)
		}
		if err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		promoted, err := g.WaitForFailover(wctx, master)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		failedOver := time.Now()

		// A term that runs a lease after the failover was renewed or taken on the new master.
		time.Sleep(time.Until(failedOver.Add(defaults.Lease)))
		waitFor(t, 2*defaults.Lease, "a leader after the failover", func() bool { _, ok := current(s); return ok })
		after, _ := current(s)
		var changes []change
		for _, c := range s.history() {
			if c.at.After(failed) {
				changes = append(changes, c)
			}
		}
		switch {
		case after == before && len(changes) == 0:
			t.Logf("master %s at 0: the sentinels agreed on %s at %v; %s kept the lease (epoch %d) throughout", how,
				promoted, failedOver.Sub(failed).Round(time.Millisecond), before.node, before.epoch)
		case after.epoch > before.epoch && len(changes) >= 2 && !changes[0].on && changes[0].node == before.node:
			t.Logf("master %s at 0: the sentinels agreed on %s at %v; %s (epoch %d) stepped down at %v, %s led (epoch %d) at %v",
				how, promoted, failedOver.Sub(failed).Round(time.Millisecond), before.node, before.epoch,
				changes[0].at.Sub(failed).Round(time.Millisecond), after.node, after.epoch, after.at.Sub(failed).Round(time.Millisecond))
		default:
			t.Fatalf("master %s: leader before %+v, after %+v, changes in between %+v", how, before, after, changes)
		}
		nc := g.Client(promoted)
		v, err := nc.Get(ctx, a.e.Key()).Result()
		nc.Close()
		if want := fmt.Sprintf("%s %d", after.node, after.epoch); err != nil || v != want {
			t.Errorf("%s: the new master's lease key holds %q (%v), want %q", how, v, err, want)
		}

		if how == "paused" {
			// The old master comes back, as a replica of the new one: the leader is not disturbed.
			if err := g.Unpause(ctx, master); err != nil {
				t.Fatal(err)
			}
			oc := g.Client(master)
			waitFor(t, time.Minute, "the old master replicating from the new one", func() bool {
				role, err := oc.Do(ctx, "ROLE").Slice()
				return err == nil && len(role) > 3 && role[0] == "slave" && fmt.Sprint(role[3]) == "connected" &&
					net.JoinHostPort(fmt.Sprint(role[1]), fmt.Sprint(role[2])) == promoted
			})
			oc.Close()
			time.Sleep(defaults.Lease)
			if cur, ok := current(s); !ok || cur != after {
				t.Fatalf("after the old master came back: leader %+v (running %v), want %+v still", cur, ok, after)
			}
		}
		master = promoted
	}
	s.epochsIncrease(t)
}

// slow are the options of TestUnconfirmedLeaseOutlivesAFailover: a 10 s lease renewed every
// second, with a 1 s margin.
func slow(o *leader.Options) {
	o.Lease, o.RenewInterval, o.ClockDriftMargin = 10*time.Second, time.Second, time.Second
}

// TestUnconfirmedLeaseOutlivesAFailover: a leader cut off with its master from the rest (the
// replica's replication stream held back; the leader still reaches the master), and the
// sentinels fail over to the replica meanwhile (SENTINEL FAILOVER: the old master runs on until
// they turn it into a replica). Two pairs of electors on one Sentinel group, each pair's leader
// on the first master directly and its standby through the sentinels:
//
//   - without Confirm, the leader renews on the old master, and the new master, which never got
//     those renewals, ends its lease early: the standby leads beside it. That is what
//     confirming prevents.
//   - with Confirm (presence.Redis.Confirmed, one replica), the leader's renewals are not
//     confirmed from the moment the stream is held back, so it steps down by the deadline the
//     replica's copy allows; the standby leads only after that, once the new master has a
//     replica to confirm its lease.
func TestUnconfirmedLeaseOutlivesAFailover(t *testing.T) {
	t.Parallel()
	g := startSentinel(t, lab.SentinelOptions{ReplicationProxy: true})
	ctx := lab.Context(t)
	// The sentinels would put the replica back on the master directly (+fix-slave-config) once
	// failover-timeout (10 s in the lab) has passed since they saw it replicate through the
	// proxy; give them no chance during the test.
	for _, addr := range g.Addresses {
		sent := g.SentinelClient(addr)
		err := sent.Set(ctx, g.MasterName, "failover-timeout", "600000").Err()
		sent.Close()
		if err != nil {
			t.Fatalf("sentinel %s: SENTINEL SET failover-timeout: %v", addr, err)
		}
	}
	confirmedPBX, unconfirmedPBX := lab.Unique("pbx-c"), lab.Unique("pbx-u")
	const lease = 10 * time.Second

	direct := openStore(t, g, g.FirstMaster, 1)
	ac := start(t, direct.Client(), confirmedPBX, "a-confirmed", func(o *leader.Options) { slow(o); confirmedBy(direct)(o) })
	au := start(t, client(t, g.FirstMaster), unconfirmedPBX, "a-unconfirmed", slow)
	sc, su := watch(t, ac), observe(t, au)
	onC := sc.leads(t, ac, time.Time{}, 3*lease) // a new store: one lease
	onU := su.leads(t, au, time.Time{}, 3*lease)
	viaSentinels := openStore(t, g, "", 1)
	bc := start(t, viaSentinels.Client(), confirmedPBX, "b-confirmed", func(o *leader.Options) { slow(o); confirmedBy(viaSentinels)(o) })
	bu := start(t, openStore(t, g, "", 0).Client(), unconfirmedPBX, "b-unconfirmed", slow)
	sc.add(bc)
	su.add(bu)
	waitFor(t, lease, "the standbys standing by", func() bool {
		return bc.metric(t, "presenced_leader_epoch") == float64(onC.epoch) && bu.metric(t, "presenced_leader_epoch") == float64(onU.epoch)
	})

	rc := g.Client(g.FirstReplicas[0])
	info, err := rc.Info(ctx, "replication").Result()
	rc.Close()
	if _, port, _ := net.SplitHostPort(g.Replication.Addr()); err != nil || !strings.Contains(info, "master_port:"+port+"\r\n") {
		t.Fatalf("the replica no longer replicates through the proxy (port %s): %v %s", port, err, info)
	}
	g.Replication.SetHung(true)
	hung := time.Now()
	time.Sleep(lease / 2) // the unconfirmed leader renews on the master alone meanwhile
	sent := g.SentinelClient(g.Addresses[0])
	err = sent.Failover(ctx, g.MasterName).Err()
	sent.Close()
	if err != nil {
		t.Fatalf("SENTINEL FAILOVER: %v", err)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	promoted, err := g.WaitForFailover(wctx, g.FirstMaster)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	failedOver := time.Now()

	// Without Confirm: two leaders.
	nextU := su.leads(t, bu, hung, 3*lease)
	offU := su.stopsLeading(t, au, hung, 3*lease)
	if len(su.twoLeaders()) == 0 {
		t.Fatalf("without Confirm: a-unconfirmed stopped at %v, b-unconfirmed led at %v: the scenario should have shown two leaders",
			offU.at.Sub(hung), nextU.at.Sub(hung))
	}

	// With Confirm: a-confirmed stopped before its lease could end on the new master; b-confirmed
	// leads once the old master replicates from the new one (the sentinels turn it).
	offC := sc.stopsLeading(t, ac, hung, lease)
	nextC := sc.leads(t, bc, hung, time.Minute)
	if nextC.epoch <= onC.epoch {
		t.Errorf("b-confirmed leads with epoch %d, not above a-confirmed's %d", nextC.epoch, onC.epoch)
	}
	if bound := lease - time.Second; offC.at.Sub(hung) > bound+250*time.Millisecond {
		t.Errorf("a-confirmed stepped down %v after the replica stopped getting its renewals; want at most %v", offC.at.Sub(hung), bound)
	}
	t.Logf("replication held back at 0, the sentinels agreed on %s at %v. Without Confirm: a led until %v, b from %v (two leaders "+
		"for %v). With Confirm: a stepped down at %v, b led from %v",
		promoted, failedOver.Sub(hung).Round(time.Millisecond), offU.at.Sub(hung).Round(time.Millisecond),
		nextU.at.Sub(hung).Round(time.Millisecond), offU.at.Sub(nextU.at).Round(time.Millisecond),
		offC.at.Sub(hung).Round(time.Millisecond), nextC.at.Sub(hung).Round(time.Millisecond))
}
