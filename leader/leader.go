// Package leader elects, among presenced instances sharing a Redis, the one that writes to a
// given Asterisk: the leader. The others are standbys, ready to take over.
//
// # The lease
//
// The leader holds a lease: a Redis key naming the Asterisk it guards
// (presenced:leader:<asterisk>), set with SET NX PX to "<instance> <epoch>". The epoch comes
// from INCR of presenced:leader:<asterisk>:epoch in the same Lua script, raised to Redis's
// clock in milliseconds when that is higher, so that epochs increase with every term, even
// across a Redis that lost its data, and no two terms share one; it is the term's fencing
// token. The leader renews the lease every RenewInterval
// (Lease/3 by default) with a compare-and-PEXPIRE on its exact value, and releases it with a
// compare-and-DEL when it stops gracefully, so that a standby takes over at its next attempt
// (within RenewInterval) instead of waiting for the lease to expire. A standby tries to take
// the lease every RenewInterval, and right after the lease it sees ends when that is sooner:
// after a kill -9 of the leader, a standby leads between Lease − RenewInterval and Lease (plus
// a round trip) later. An instance that stepped down campaigns again at once, as one more
// standby.
//
// The owner (the engine) learns of its terms through Options.OnStartedLeading, whose context
// ends with the term, and OnStoppedLeading; it asks Leading before every write to Asterisk,
// and makes its Redis writes with the term's Fence:
//
//	e, err := leader.New(leader.Options{Redis: rdb, Asterisk: "pbx1", Instance: host,
//		OnStartedLeading: func(ctx context.Context, epoch int64) {
//			// take the Asterisk over as a new leader; run leader-only work until ctx ends
//		}})
//	go e.Run(ctx)
//	...
//	if _, ok := e.Leading(); ok { /* write to Asterisk */ }
//	f, ok := e.Fence() // the term's fence, for a store's fenced scripts (presence.Fence)
//
// # The safety rule
//
// A leader keeps a local deadline: the start of its last successful renewal (or acquisition)
// + Lease − ClockDriftMargin. Redis started counting the lease after that moment, so the local
// deadline comes at least ClockDriftMargin before the lease can expire in Redis and a standby
// can take it. Leading reports false from the deadline on, by the clock alone (no I/O, no
// goroutine has to notice), whatever Redis would say; presenced checks it before every AMI
// write, so a leader cut off from Redis stops writing to Asterisk before another can start.
// The margin covers a local clock slower than Redis's and the time from a Leading check to the
// write reaching Asterisk.
//
// A lease key that vanishes before its time (deleted by hand, Redis restarted without its
// data) must not let a second leader start while the first still believes it leads until its
// next renewal: a new holder waits until every earlier lease must have ended (Redis keeps that
// time beside the lease, see scripts.go), or one whole lease when Redis has no record of the
// earlier ones (a new or wiped store; so the very first leader of a new store starts after one
// lease). Leading turns true only then, and OnStartedLeading is called.
//
// Writes the leader makes to Redis are fenced with the term's Fence (presence/fence.go): the
// script that writes checks in the same atomic step that the lease key still holds the term's
// value, and refuses the write otherwise.
//
// # A leader that lost its lease steps down
//
// When its deadline passes without a successful renewal, or a renewal finds the lease gone or
// held by another, the leader steps down: Leading is false at once, the term's context is
// cancelled, and once OnStartedLeading has returned, OnStoppedLeading is called, the lease is
// released if it is still this term's, and the instance campaigns again as a standby. It does
// not exit. Exiting would add no safety, since Leading already stopped the AMI writes, fencing
// refuses late Redis writes and the next term begins only after the last one's work returned;
// and it would cost what a standby still gives: every instance serves the API, and an instance
// cut off from Redis for a moment leads again, or stands by, as soon as Redis answers, without
// waiting for a supervisor to restart it. A new term starts from nothing: whoever leads next
// takes over the Asterisk as a new leader does (full reconcile), which is also what makes it
// safe for the same instance to lead again.
//
// # Across a failover of Redis (Sentinel)
//
// Replication is asynchronous: the master answers before any replica has the write, and a
// failover to a replica that lacks the last renewals ends the lease early in the new master,
// while the leader still leads until its local deadline; one that lacks the acquisition loses
// the lease altogether. Either would let a standby lead beside the leader. So the acquisitions
// and renewals go through Options.Confirm when it is set (presenced passes
// presence.Redis.Confirmed, which sends WAIT for redis.sentinel.wait_replicas replicas): an
// acquisition or renewal counts only once replicas hold it. The local deadline then follows
// the last renewal a replica holds, and Sentinel promotes the replica with the most data, so
// the new master keeps the lease (and its :until and :epoch) at least ClockDriftMargin past the
// leader's deadline: a failover either keeps the lease (the leader renews it on the new master)
// or the leader steps down before anyone can take it there. Redis 7 and later replicate an
// expiry as the time it ends, so the new master ends the lease when the old one would have, by
// its own clock: the margin covers the Redis servers' clocks too. While too few replicas confirm (a replica
// down with wait_replicas: 1 and one replica, or right after a failover), no instance can take
// or keep the lease: availability is the price, as for the switches. Without Confirm the rule
// holds only as long as what a failover loses is shorter than ClockDriftMargin. The release is
// not confirmed: a lost release leaves the lease to expire.
//
// # Limits
//
// The deadline is kept on this process's monotonic clock, which goes on while the process is
// paused (a garbage collection, SIGSTOP) but not while the whole machine is suspended; and a
// write allowed by Leading must reach Asterisk within ClockDriftMargin, so check it as close to
// the write as possible. Epochs increase as long as Redis's clock does not go back (see
// scripts.go). The lease is not meant for a Redis Cluster (its keys and a fenced write's keys
// would have to share a hash slot).
package leader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrNoLeader is Leader's answer when no instance holds the lease.
var ErrNoLeader = errors.New("leader: no instance holds the lease")

// Elector campaigns for the lease of one Asterisk, renews it while it leads, and calls back
// its owner when leadership starts and ends. Create one with New and run it with Run; its
// other methods are safe for concurrent use, before, during and after Run.
type Elector struct {
	opts     Options
	key      string
	epochKey string
	untilKey string
	log      *slog.Logger
	met      *metrics
	ran      atomic.Bool

	// held is the lease this instance holds; nil when it holds none.
	held atomic.Pointer[lease]
}

// lease is a lease this instance holds. A renewal replaces it by a copy with a later deadline.
type lease struct {
	value string // what the lease key holds: "<instance> <epoch>"
	epoch int64
	// notBefore is when this instance may start leading: every earlier lease has ended.
	notBefore time.Time
	// deadline is when this instance stops leading unless a renewal extended it.
	deadline time.Time
}

// leading reports whether the lease lets this instance lead at now.
func (l *lease) leading(now time.Time) bool {
	return l != nil && !now.Before(l.notBefore) && now.Before(l.deadline)
}

// New checks opts (errors name the field) and returns an Elector. It does no I/O.
func New(opts Options) (*Elector, error) {
	opts.fill()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	key := opts.Prefix + "leader:" + opts.Asterisk
	return &Elector{
		opts:     opts,
		key:      key,
		epochKey: key + ":epoch",
		untilKey: key + ":until",
		log:      log.With("component", "leader", "asterisk", opts.Asterisk, "instance", opts.Instance),
		met:      newMetrics(opts.Registerer),
	}, nil
}

// Leading reports whether this instance leads now, and the term's epoch. It does no I/O:
// it compares the clock with the lease's local deadline, so it turns false at the deadline
// even when nothing else runs. Call it right before every write to Asterisk (as close to the
// socket as possible: the margin covers the time from the check to the write).
func (e *Elector) Leading() (epoch int64, ok bool) {
	l := e.held.Load()
	if !l.leading(time.Now()) {
		return 0, false
	}
	return l.epoch, true
}

// Fence returns what this term's Redis writes carry (see Fence), and whether this instance
// leads now. When it does not, the zero Fence is returned, which every fenced write refuses.
func (e *Elector) Fence() (Fence, bool) {
	l := e.held.Load()
	if !l.leading(time.Now()) {
		return Fence{}, false
	}
	return Fence{Key: e.key, Value: l.value, Epoch: l.epoch}, true
}

// Leader reads from Redis which instance holds the lease, and its epoch; ErrNoLeader when none
// does. The holder may still be waiting for an earlier lease to end before it leads.
func (e *Elector) Leader(ctx context.Context) (instance string, epoch int64, err error) {
	v, err := e.opts.Redis.Get(ctx, e.key).Result()
	if errors.Is(err, redis.Nil) {
		return "", 0, ErrNoLeader
	}
	if err != nil {
		return "", 0, fmt.Errorf("leader: read lease %s: %w", e.key, err)
	}
	instance, epoch, ok := parseValue(v)
	if !ok {
		return "", 0, fmt.Errorf("leader: lease %s holds %q, not \"<instance> <epoch>\"", e.key, v)
	}
	return instance, epoch, nil
}

// parseValue splits a lease value "<instance> <epoch>".
func parseValue(v string) (instance string, epoch int64, ok bool) {
	instance, n, found := strings.Cut(v, " ")
	if !found || instance == "" {
		return "", 0, false
	}
	epoch, err := strconv.ParseInt(n, 10, 64)
	if err != nil || epoch < 1 {
		return "", 0, false
	}
	return instance, epoch, true
}

// Run campaigns for the lease until ctx ends: it takes the lease when it is free, leads while
// it can renew it, steps down when it cannot and campaigns again. When ctx ends it ends the
// term (OnStartedLeading returned, OnStoppedLeading called), releases the lease and returns
// nil. Redis failures are logged and retried, never returned. Run may be called once.
func (e *Elector) Run(ctx context.Context) error {
	if !e.ran.CompareAndSwap(false, true) {
		return errors.New("leader: Elector.Run called twice")
	}
	for {
		l, err := e.campaign(ctx)
		if err != nil {
			return nil // ctx ended
		}
		if ctx.Err() != nil { // ended while the lease was being taken
			e.held.Store(nil)
			e.release(context.WithoutCancel(ctx), l)
			return nil
		}
		e.hold(ctx, l)
		if ctx.Err() != nil {
			return nil
		}
	}
}

// attempt is the answer to one try to take the lease.
type attempt struct {
	lease *lease        // the lease taken; nil when another holds it
	wait  time.Duration // how long the new holder waits before it leads
	value string        // what the lease key holds
	pttl  time.Duration // the rest of another's lease; negative when the key has no expiry
}

// campaign tries to take the lease every RenewInterval (sooner when the lease it sees ends
// sooner) until it has it or ctx ends.
func (e *Elector) campaign(ctx context.Context) (*lease, error) {
	var (
		failing bool   // the last attempt failed
		seen    string // the holder last logged
	)
	for {
		a, err := e.acquire(ctx)
		if ctx.Err() != nil && a.lease == nil {
			return nil, ctx.Err()
		}
		wait := e.opts.RenewInterval
		switch {
		case err != nil:
			if !failing {
				e.log.Warn("cannot campaign for the leader lease; retrying", "key", e.key, "err", err)
			}
			failing = true
		case a.lease != nil:
			if failing {
				e.log.Info("redis answers the campaign again", "key", e.key)
			}
			return a.lease, nil
		default:
			if failing {
				e.log.Info("redis answers the campaign again", "key", e.key)
			}
			failing = false
			if a.value != seen {
				seen = a.value
				e.standby(a)
			}
			if a.pttl >= 0 {
				// Try again right after the lease ends, when it ends before the next round.
				wait = min(wait, a.pttl+time.Millisecond)
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// standby logs and records the holder a standby sees.
func (e *Elector) standby(a attempt) {
	instance, epoch, ok := parseValue(a.value)
	switch {
	case !ok:
		e.log.Error("the leader lease key holds something else than a lease; no instance can lead until it is deleted "+
			"or expires", "key", e.key, "value", a.value, "ttl", a.pttl)
	case a.pttl < 0:
		e.met.epoch.Set(float64(epoch))
		e.log.Error("the leader lease key has no expiry (set by hand?); no other instance can lead until it is deleted",
			"key", e.key, "leader", instance, "epoch", epoch)
	default:
		e.met.epoch.Set(float64(epoch))
		e.log.Info("standing by", "leader", instance, "epoch", epoch)
	}
}

// errHeld and errNotRenewed end a write given to Options.Confirm when the script wrote
// nothing (another holds the lease, or this one is lost), so that nothing is waited for.
var (
	errHeld       = errors.New("leader: the lease is held by another")
	errNotRenewed = errors.New("leader: the lease is no longer this term's")
)

// write runs write on Redis, through Options.Confirm when it is set (see there).
func (e *Elector) write(ctx context.Context, op string, write func(c redis.Cmdable) error) error {
	if e.opts.Confirm == nil {
		return write(e.opts.Redis)
	}
	return e.opts.Confirm(ctx, op, write)
}

// acquire runs the acquire script once. It is not abandoned when ctx ends (a lease taken but
// never heard of would stay until it expired); Run releases what it took. A lease taken but
// not confirmed (Options.Confirm) is released at once and the attempt fails.
func (e *Elector) acquire(ctx context.Context) (attempt, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.opts.RenewInterval)
	defer cancel()
	var a attempt
	op := "leader: acquire lease " + e.key
	err := e.write(ctx, op, func(c redis.Cmdable) error {
		start := time.Now()
		res, err := acquireScript.Run(ctx, c, []string{e.key, e.epochKey, e.untilKey},
			e.opts.Instance, e.opts.Lease.Milliseconds()).Slice()
		if err != nil {
			return err
		}
		if a, err = e.parseAcquired(res, start, time.Now()); err != nil {
			return err
		}
		if a.lease == nil {
			return errHeld
		}
		return nil
	})
	switch {
	case errors.Is(err, errHeld):
		return a, nil
	case err != nil && a.lease != nil:
		// Taken, but perhaps only on a master about to be failed over: not leading on it.
		e.release(context.WithoutCancel(ctx), a.lease)
		return attempt{}, fmt.Errorf("%s: taken but not confirmed, released: %w", op, err)
	case err != nil:
		return attempt{}, fmt.Errorf("%s: %w", op, err)
	}
	return a, nil
}

// parseAcquired reads the acquire script's answer res; start is when the request left,
// received when the answer arrived.
func (e *Elector) parseAcquired(res []any, start, received time.Time) (attempt, error) {
	bad := fmt.Errorf("unexpected answer %v", res)
	if len(res) < 3 {
		return attempt{}, bad
	}
	taken, _ := res[0].(int64)
	value, _ := res[1].(string)
	if taken == 0 {
		pttl, _ := res[2].(int64)
		return attempt{value: value, pttl: time.Duration(pttl) * time.Millisecond}, nil
	}
	if len(res) < 4 {
		return attempt{}, bad
	}
	epoch, _ := res[2].(int64)
	waitMS, _ := res[3].(int64)
	wait := time.Duration(waitMS) * time.Millisecond
	return attempt{
		lease: &lease{
			value: value,
			epoch: epoch,
			// Redis counts the wait from when the script ran, which is before the answer
			// arrived, and the lease from when it ran, which is after the request left.
			notBefore: received.Add(wait),
			deadline:  start.Add(e.opts.Lease - e.opts.ClockDriftMargin),
		},
		wait:  wait,
		value: value,
	}, nil
}

// renewal is the answer to one renewal.
type renewal struct {
	start  time.Time // when the request left
	ours   bool      // the lease was extended
	holder string    // what the key held when it was not extended
	err    error
}

// renew runs the renew script once and sends the answer to out (buffered: never blocks). A
// renewal that Options.Confirm fails is a failed renewal: it does not extend the deadline.
func (e *Elector) renew(ctx context.Context, l *lease, out chan<- renewal) {
	ctx, cancel := context.WithTimeout(ctx, e.opts.RenewInterval)
	defer cancel()
	r := renewal{start: time.Now()}
	err := e.write(ctx, "leader: renew lease "+e.key, func(c redis.Cmdable) error {
		res, err := renewScript.Run(ctx, c, []string{e.key, e.untilKey}, l.value,
			e.opts.Lease.Milliseconds()).Slice()
		switch {
		case err != nil:
			return err
		case len(res) == 0:
			return fmt.Errorf("unexpected answer %v", res)
		}
		if n, _ := res[0].(int64); n != 1 {
			if len(res) > 1 {
				r.holder, _ = res[1].(string)
			}
			return errNotRenewed
		}
		return nil
	})
	switch {
	case errors.Is(err, errNotRenewed):
	case err != nil:
		r.err = fmt.Errorf("leader: renew lease %s: %w", e.key, err)
	default:
		r.ours = true
	}
	out <- r
}

// hold keeps the lease l: it starts the term when l allows, renews the lease, and returns when
// the lease is lost or ctx ends, after the term ended and the lease was released.
func (e *Elector) hold(ctx context.Context, l *lease) {
	e.held.Store(l)
	e.met.epoch.Set(float64(l.epoch))
	if wait := time.Until(l.notBefore); wait > 0 {
		e.log.Info("took the leader lease; waiting for any earlier lease to end before leading", "epoch", l.epoch,
			"wait", wait.Round(time.Millisecond))
	}

	renewCtx, stopRenewing := context.WithCancel(ctx)
	defer stopRenewing()
	var (
		results  = make(chan renewal, 1)
		renewing bool
		failing  bool
		started  bool
		gone     bool // the key no longer holds this lease: nothing to release
		reason   string
		termDone chan struct{}
		endTerm  = func() {} // ends the term's context
	)
	renewTimer := time.NewTimer(e.opts.RenewInterval)
	startTimer := time.NewTimer(time.Until(l.notBefore))
	deadlineTimer := time.NewTimer(time.Until(l.deadline))
	defer renewTimer.Stop()
	defer startTimer.Stop()
	defer deadlineTimer.Stop()

loop:
	for {
		select {
		case <-ctx.Done():
			reason = "stopping"
			break loop

		case <-startTimer.C:
			cur := e.held.Load()
			if !cur.leading(time.Now()) {
				continue // the deadline passed: its timer ends the lease
			}
			started = true
			termCtx, cancel := context.WithCancel(ctx)
			endTerm = cancel
			termDone = make(chan struct{})
			e.met.leader.Set(1)
			e.met.changes.Inc()
			e.log.Info("started leading", "epoch", cur.epoch)
			go func() {
				defer close(termDone)
				if e.opts.OnStartedLeading != nil {
					e.opts.OnStartedLeading(termCtx, cur.epoch)
				}
			}()

		case <-deadlineTimer.C:
			cur := e.held.Load()
			if d := time.Until(cur.deadline); d > 0 {
				deadlineTimer.Reset(d)
				continue
			}
			reason = "the lease could not be renewed before its local deadline"
			break loop

		case <-renewTimer.C:
			if !renewing {
				renewing = true
				go e.renew(renewCtx, e.held.Load(), results)
			}

		case r := <-results:
			renewing = false
			cur := e.held.Load()
			switch {
			case r.err != nil:
				e.met.renewFailures.Inc()
				if !failing {
					e.log.Warn("cannot renew the leader lease; retrying", "epoch", cur.epoch,
						"left", time.Until(cur.deadline).Round(time.Millisecond), "err", r.err)
				}
				failing = true
				renewTimer.Reset(e.opts.RenewInterval / 4)
			case !r.ours:
				e.met.renewFailures.Inc()
				gone = true
				if r.holder == "" {
					reason = "the lease key is gone (deleted, or Redis lost its data)"
				} else {
					reason = "the lease key holds another lease: " + r.holder
				}
				break loop
			default:
				if !time.Now().Before(cur.deadline) {
					// Too late: the lease already ended here, and stays ended.
					reason = "the lease could not be renewed before its local deadline"
					break loop
				}
				if failing {
					e.log.Info("renewed the leader lease again", "epoch", cur.epoch)
					failing = false
				}
				next := *cur
				next.deadline = r.start.Add(e.opts.Lease - e.opts.ClockDriftMargin)
				e.held.Store(&next)
				deadlineTimer.Reset(time.Until(next.deadline))
				renewTimer.Reset(max(0, e.opts.RenewInterval-time.Since(r.start)))
			}
		}
	}

	last := e.held.Swap(nil) // Leading is false from here on
	stopRenewing()
	if started {
		e.endTerm(endTerm, termDone)
		e.met.leader.Set(0)
		if e.opts.OnStoppedLeading != nil {
			e.opts.OnStoppedLeading()
		}
		e.log.Info("stopped leading", "epoch", last.epoch, "reason", reason)
	} else {
		e.log.Info("gave up the leader lease before leading", "epoch", last.epoch, "reason", reason)
	}
	if !gone {
		e.release(context.WithoutCancel(ctx), last)
	}
}

// endTerm cancels the term's context and waits for OnStartedLeading to return, with a warning
// every Lease while it does not.
func (e *Elector) endTerm(cancel func(), done <-chan struct{}) {
	cancel()
	t := time.NewTicker(e.opts.Lease)
	defer t.Stop()
	waited := time.Now()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			e.log.Warn("the term ended but its work (OnStartedLeading) has not returned yet; waiting for it before "+
				"campaigning again", "waited", time.Since(waited).Round(time.Second))
		}
	}
}

// release deletes the lease if the key still holds it, so that a standby takes it at its next
// attempt. When every earlier lease had ended (l's wait was over), the next holder need not
// wait for them: the release says so in :until.
func (e *Elector) release(ctx context.Context, l *lease) {
	ctx, cancel := context.WithTimeout(ctx, e.opts.RenewInterval)
	defer cancel()
	earlierEnded := "0"
	if !time.Now().Before(l.notBefore) {
		earlierEnded = "1"
	}
	n, err := releaseScript.Run(ctx, e.opts.Redis, []string{e.key, e.untilKey}, l.value, earlierEnded).Int64()
	switch {
	case err != nil:
		e.log.Warn("cannot release the leader lease; it expires by itself", "epoch", l.epoch,
			"err", fmt.Errorf("leader: release lease %s: %w", e.key, err))
	case n == 1:
		e.log.Info("released the leader lease", "epoch", l.epoch)
	}
}
