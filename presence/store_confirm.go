package presence

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/redis/go-redis/v9"
)

// ErrUnconfirmed is what an *UnavailableError wraps when a write reached the master but not
// enough replicas confirmed it in time (RedisOptions.WaitReplicas). Whether it survives is
// unknown: a failover now loses it, no failover keeps it.
var ErrUnconfirmed = errors.New("write not confirmed by the replicas")

// waitReplicas is how the store makes the writes presenced acknowledges survive a failover.
//
// Redis replicates asynchronously: the master answers a write before any replica has it, and
// a replica promoted by Sentinel lacks whatever had not reached it, so a switch presenced
// acknowledged can vanish. WAIT <n> <timeout>, sent on the connection that wrote, blocks
// until n replicas have acknowledged every write of that connection, or the timeout; so a
// write presenced acknowledges is on n replicas, and Sentinel promotes the replica with the
// most data. The master's own min-replicas-to-write is no substitute: it refuses writes only
// while fewer replicas have pinged within min-replicas-max-lag seconds (1 s at best), so a
// write answered in that window is still lost; it does stop an old master cut off from its
// replicas from taking writes at all, which suits other clients, so it is worth setting
// besides.
type waitReplicas struct {
	n           int
	timeout     time.Duration
	unconfirmed prometheus.Counter // nil without a registerer
}

// newWaitReplicas returns nil for n == 0: the writes are not waited for.
func newWaitReplicas(n int, timeout time.Duration, reg prometheus.Registerer) *waitReplicas {
	if n <= 0 {
		return nil
	}
	w := &waitReplicas{n: n, timeout: timeout}
	if reg != nil {
		w.unconfirmed = promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "presenced_store_unconfirmed_writes_total",
			Help: "State-store writes that fewer replicas than redis.sentinel.wait_replicas confirmed in time; each failed its request (503).",
		})
	}
	return w
}

// confirmed runs write (the commands of one write presenced acknowledges) and, when the store
// waits for replicas, sends WAIT on the same connection (see Redis.Confirmed). op says what the
// write is, as for fail ("save state of alice").
func (s *StateStore) confirmed(ctx context.Context, op string, write func(c redis.Cmdable) error) error {
	return s.wait.confirm(ctx, s.rdb, "presence: "+op, write)
}

// Confirmed runs write, the commands of one write its caller will acknowledge, and when the
// store waits for replicas (RedisOptions.WaitReplicas) sends WAIT on the same connection, so
// that the write survives a failover once Confirmed returns nil. Packages that keep their own
// keys in the state store use it for the writes they acknowledge, or that must not go back in
// time on a failover (a lease's epoch).
//
// write gets the client, or the connection WAIT will be sent on; it runs its commands there
// (a script's Run included) and returns their error, which Confirmed returns as it is, so that
// the caller tells a script's own reply from a failure and describes it (StoreError); WAIT's
// failure comes back likewise. A write that too few replicas confirmed in time is an
// *UnavailableError wrapping ErrUnconfirmed: the caller must not acknowledge it. op says what
// the write is ("trigger: save external trigger of alice").
//
// The write and WAIT go on one connection taken from the pool for them (go-redis's Conn): a
// command that fails on a broken connection is not retried on another, as the client's own
// commands are once, since WAIT would not cover a write made elsewhere. (The pool drops idle
// connections the server closed before handing them out.)
func (s *Redis) Confirmed(ctx context.Context, op string, write func(c redis.Cmdable) error) error {
	return s.wait.confirm(ctx, s.rdb, op, write)
}

// confirm is Confirmed; w nil writes without waiting.
func (w *waitReplicas) confirm(ctx context.Context, rdb *redis.Client, op string, write func(c redis.Cmdable) error) error {
	if w == nil {
		return write(rdb)
	}
	cn := rdb.Conn()
	defer cn.Close()
	if err := write(cn); err != nil {
		return err
	}
	// go-redis gives WAIT's reply the wait and 10 s more; a master that hangs meanwhile is
	// given up after the wait and one read timeout, as any other command.
	wctx, cancel := context.WithTimeout(ctx, w.timeout+rdb.Options().ReadTimeout)
	defer cancel()
	got, err := cn.Wait(wctx, w.n, w.timeout).Result()
	if err != nil && ctx.Err() == nil && wctx.Err() != nil {
		return &UnavailableError{Reason: "timed out", Op: op, Err: err}
	}
	if err != nil {
		return err
	}
	if got < int64(w.n) {
		if w.unconfirmed != nil {
			w.unconfirmed.Inc()
		}
		return &UnavailableError{
			Reason: fmt.Sprintf("the write was not confirmed by %d replica(s) within %s, so it could be lost if Redis fails over (it may also stay: repeat the request)",
				w.n, w.timeout),
			Op:  op,
			Err: fmt.Errorf("%w (WAIT %d: %d confirmed)", ErrUnconfirmed, w.n, got),
		}
	}
	return nil
}
